"""``flexible``: where holes, shapes by signature and run-time checks meet.

A ``@flexible`` net accepts holes (``zephyr.functools``); a call without holes records its
arguments (so ``validate(p, "d_in out")`` binds dims from them), then, during ``trace``,
declares the leaves its params annotation describes (``zephyr.typing``), or, with checking
on, checks its arguments; otherwise it just calls the function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from .core._context import CHECKING, running_calls
from .core._paths import missing_param
from .core._replay import call_during_trace
from .core._trace import TraceNode
from .core._types import Flexible
from .functools._partial import accept_holes, is_flexible
from .typing._checking import call_checked
from .typing._dims import resolve_call_shape
from .typing._signature import call_traced

A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R")


def flexible(fn: Callable[Concatenate[A, P], R]) -> Flexible[A, P, R]:
    """Make ``fn`` accept holes: ``fn(_, _, 256)`` returns a function of the two holes.

    A call without holes calls ``fn`` directly (the wrapper's own cost is a scan of the
    arguments and a context variable, about a microsecond). The wrapper keeps ``__name__``,
    ``__doc__``, ``__wrapped__`` and ``inspect.signature``. During ``trace`` it also declares
    the leaves that ``fn``'s params annotation describes (see ``zephyr.typing``); with
    run-time checking on (``zephyr.typing.checking(True)``) it checks annotated arguments;
    and ``validate(params[...], "d_in out_dim")`` in its body binds dims from the arguments
    of this call.

    Example:
        >>> from zephyr.functools.partial import flexible, placeholder_hole as _
        >>> @flexible
        ... def scale(x, factor, offset=0.0):
        ...     return x * factor + offset
        >>> double = scale(_, 2.0)
        >>> double(5.0)
        10.0
        >>> scale(_, _, offset=1.0)(5.0, 3.0)
        16.0
    """
    if is_flexible(fn):
        already: Flexible[A, P, R] = fn  # type: ignore[assignment]  # made flexible before
        return already

    # A net's own argument checks (``zephyr._checks.checked_by``), run during trace and with
    # checking on, before its params annotation declares anything.
    check: Callable[..., None] | None = getattr(fn, "__zephyr_check__", None)

    def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        calls = running_calls()
        calls.append((resolve_call_shape, fn, args, kwargs))
        try:
            if args and type(args[0]) is TraceNode:
                if check is not None:
                    check(*args, **kwargs)
                return call_during_trace(fn, args, kwargs, lambda: call_traced(fn, args, kwargs))
            if CHECKING.get():
                if check is not None:
                    check(*args, **kwargs)
                return call_checked(fn, args, kwargs)
            return fn(*args, **kwargs)
        except KeyError as error:  # free when nothing is raised: name the missing param's path
            found = missing_param(error, args[0] if args else None)
            if found is error:
                raise
            raise found.with_traceback(error.__traceback__) from None
        finally:
            calls.pop()

    wrapper: Flexible[A, P, R] = accept_holes(fn, call)  # same call signature, plus holes
    return wrapper


def hole_aware(fn: Callable[Concatenate[A, P], R]) -> Flexible[A, P, R]:
    """The same as :func:`flexible` (the original zephyr's name for it).

    Example:
        >>> from zephyr.functools.partial import hole_aware, placeholder_hole as _
        >>> add = hole_aware(lambda a, b: a + b)
        >>> add(_, 1)(2)
        3
    """
    return flexible(fn)
