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
    "zephyr_checking", default=_env_flag("ZEPHYR_TYPECHECK")
)
"""Whether annotated nets check their arguments at run time (``zephyr.typing.checking``).

A context variable: each thread (and each asyncio task) has its own setting, so
``checking(True)`` in one thread never changes another's. A thread starts from the process
default, ``ZEPHYR_TYPECHECK`` read at import. Read on every call of every net (``.get()``:
one context-variable lookup); nets read it only through ``CHECKING.get()``.
"""


ShapeResolver = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], object, str], tuple[tuple[int, ...], Any]]
"""``(fn, args, kwargs, spec, who) -> (shape, dtype or None)``: a dim string or annotation
resolved from the arguments of one call of ``fn`` (``zephyr.typing`` gives it)."""

RunningCall = tuple[ShapeResolver, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""A @flexible call in progress, as ``validate`` sees it: the resolver, the function, its arguments."""


class _Calls(threading.local):
    def __init__(self) -> None:
        self.stack: list[RunningCall] = []
        self.checked = False  # inside a checked @flexible call: nets it calls are not checked again


_CALLS = _Calls()


def calls_state() -> _Calls:
    """This thread's running calls and whether a checked call is among them."""
    return _CALLS


def running_calls() -> list[RunningCall]:
    """The @flexible calls running in this thread, innermost last (``flexible`` pushes and pops).

    A list per thread rather than a context variable: pushing a tuple costs a fraction of a
    ``ContextVar.set`` on every call of every net, and a net's call never spans tasks.
    """
    return _CALLS.stack
