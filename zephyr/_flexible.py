"""``flexible``: where holes, shapes by signature and run-time checks meet.

A ``@flexible`` net accepts holes (``zephyr.functools``); a call without holes records its
arguments (so ``validate(p, "d_in out")`` binds dims from them), then, during ``trace``,
declares the leaves its params annotation describes (``zephyr.typing``), or, with checking
on, checks its arguments; otherwise it just calls the function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast, overload

from .core._api import call_during_trace
from .core._trace import TraceNode, stand_in_name
from .core._types import format_path, name_of
from .functools._partial import accept_holes, is_flexible
from .functools._protocols import Flexible0, Flexible1, Flexible2, Flexible3, Signature1, Signature2, Signature3
from .typing._calls import calls_state, params_origin
from .typing._checking import CHECKING, call_checked
from .typing._signature import call_traced

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
R = TypeVar("R")
Q = ParamSpec("Q")
P1 = ParamSpec("P1")
P2 = ParamSpec("P2")
P3 = ParamSpec("P3")


# One overload per number of typed leading parameters (see ``Flexible3`` in functools/_protocols.py):
# a function of three or more positional parameters gets the first, of two the second, ...
@overload
def flexible(fn: Signature3[Q, A, P1, B, P2, C, P3, R]) -> Flexible3[Q, A, P1, B, P2, C, P3, R]: ...
@overload
def flexible(fn: Signature2[Q, A, P1, B, P2, R]) -> Flexible2[Q, A, P1, B, P2, R]: ...
@overload
def flexible(fn: Signature1[Q, A, P1, R]) -> Flexible1[Q, A, P1, R]: ...
@overload
def flexible(fn: Callable[Q, R]) -> Flexible0[Q, R]: ...


def flexible(fn: Callable[..., Any]) -> Any:
    """Make ``fn`` accept holes: ``fn(_, _, 256)`` returns a function of the two holes.

    ``zephyr.functools.partial.hole_aware`` is this same function (the original zephyr's name).

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
        return fn  # made flexible before

    # A net's own argument checks (``zephyr._checks.checked_by``), run during trace before its
    # params annotation declares anything (with checking on, ``call_checked`` runs them).
    check: Callable[..., None] | None = getattr(fn, "__zephyr_check__", None)

    def run_traced(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if check is not None:
            check(*args, **kwargs)
        return call_traced(fn, args, kwargs)

    def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = calls_state()
        calls = state.stack
        calls.append((fn, args, kwargs))
        try:
            if args and type(args[0]) is TraceNode:
                # A replayed call skips the check with its body: it repeats a call (same
                # arguments, by the replay key) whose check passed.
                return call_during_trace(fn, args, kwargs, lambda: run_traced(args, kwargs))
            if not state.checked and CHECKING.get():
                # Checked once per call signature (its argument checks too), and so are the
                # nets it calls while it runs for a new signature; once its signature passed,
                # the nets inside are not checked again (their arguments follow from it).
                return call_checked(fn, args, kwargs)
            return fn(*args, **kwargs)
        except TypeError as error:  # free when nothing is raised: an array given as params, indexed
            if args and "string indexing" in str(error) and hasattr(args[0], "shape"):
                raise _leaf_as_params(fn, args[0], calls, error) from error
            raise
        except KeyError as error:  # free when nothing is raised: name the missing param's path
            found = missing_param(error, args[0] if args else None, calls, name_of(fn))
            if found is error:
                raise
            raise found.with_traceback(error.__traceback__) from None
        finally:
            calls.pop()

    return accept_holes(fn, call)  # same call signature, plus holes


def _leaf_as_params(fn: Callable[..., Any], params: Any, calls: list[Any], error: TypeError) -> TypeError:
    """The error for a net given an array as its params, which it indexes like a subtree."""
    declared = stand_in_name(params)
    if declared is not None:  # during trace: a leaf declared earlier
        where, what = declared, "is declared as a leaf"
    else:
        prefix, _outer = params_origin(params, calls)
        where, what = format_path(prefix), "is a leaf"
    # Raised again by an enclosing net also given an array as params: it names the outermost.
    cause = getattr(error, "zephyr_indexing_error", str(error))
    found = TypeError(
        f"`{name_of(fn)}`: its params `{where}` {what} (an array of shape {tuple(params.shape)}), "
        f"and `{name_of(fn)}` indexes it like a subtree ({cause}): one path is either an array or "
        "a subtree; the params do not match this model"
    )
    setattr(found, "zephyr_indexing_error", cause)  # noqa: B010  # read by an enclosing call
    return found


class MissingParam(KeyError, ValueError):
    """A key a net asked its params for at apply time and did not find (a ``KeyError``, and a
    ``ValueError``: the params do not match the model).

    Raised by ``@flexible`` calls: the innermost one whose params lack the key creates it,
    with the path of those params from the params of the outermost ``@flexible`` call that
    holds them (found among the running calls), so the message names the whole path.

    >>> str(MissingParam("bias", ("encoder", 0), ["weights"], "linear", "model"))
    "`params['encoder'][0]['bias']` is missing (asked for by `linear` in `model`; keys at `params['encoder'][0]`: 'weights'): the params do not match this model"
    """

    def __init__(self, key: Any, path: tuple[Any, ...], keys: list[Any], net: str = "", outer: str = "") -> None:
        super().__init__(key)
        self.key, self.path, self.keys = key, path, keys
        self.net, self.outer = net, outer

    def __str__(self) -> str:
        where = format_path(self.path, "params")
        keys = ", ".join(repr(k) for k in self.keys) or "none"
        asked = ""
        if self.net:
            asked = f"asked for by `{self.net}`" + (f" in `{self.outer}`" if self.outer and self.outer != self.net else "") + "; "
        return (
            f"`{format_path((*self.path, self.key))}` is missing ({asked}keys at `{where}`: {keys}): "
            "the params do not match this model"
        )


def missing_param(error: KeyError, given: object, calls: Sequence[tuple[Any, ...]], net: str) -> KeyError:
    """``error`` raised by the net ``net`` called with ``given`` params, as a :class:`MissingParam`
    naming the whole path of the missing key (``calls``: the running ``@flexible`` calls).

    A ``KeyError`` of a key ``given`` lacks becomes a :class:`MissingParam`; one made by a net
    further in, or anything else (or ``given`` not a mapping), is returned as it is.
    """
    if isinstance(error, MissingParam) or not isinstance(given, Mapping):
        return error
    params: Mapping[Any, Any] = given  # pyright: ignore[reportUnknownVariableType]  # isinstance narrows to Mapping[Unknown, Unknown]
    key = error.args[0] if len(error.args) == 1 else None
    try:
        present = key in params
    except TypeError:  # an unhashable key
        return error
    if present:
        return error
    path, outer = params_origin(cast(object, given), calls)
    return MissingParam(key, path, list(params), net, name_of(outer) if outer is not None else "")
