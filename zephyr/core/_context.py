"""What a running call can ask about its context: is checking on, and which @flexible call
is running (so that ``validate(p, "d_in out")`` binds dims from that call's arguments).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from typing import Any


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "zephyr_typecheck", default=_env_flag("ZEPHYR_TYPECHECK")
)
"""Whether annotated nets check their arguments at run time (``zephyr.typing.checking``)."""


ShapeResolver = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], object, str], tuple[tuple[int, ...], Any]]
"""``(fn, args, kwargs, spec, who) -> (shape, dtype or None)``: a dim string or annotation
resolved from the arguments of one call of ``fn`` (``zephyr.typing`` gives it)."""

RunningCall = tuple[ShapeResolver, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""A @flexible call in progress, as ``validate`` sees it: the resolver, the function, its arguments."""


class _Calls(threading.local):
    def __init__(self) -> None:
        self.stack: list[RunningCall] = []


_CALLS = _Calls()


def running_calls() -> list[RunningCall]:
    """The @flexible calls running in this thread, innermost last (``flexible`` pushes and pops).

    A list per thread rather than a context variable: pushing a tuple costs a fraction of a
    ``ContextVar.set`` on every call of every net, and a net's call never spans tasks.
    """
    return _CALLS.stack
