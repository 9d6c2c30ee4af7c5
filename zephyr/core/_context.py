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


class _Checking:
    """The run-time checking switch: one process-wide value, which a context may override.

    Setting ``value`` is what ``checking(True)`` does (every thread sees it, worker threads
    too); ``set``/``reset`` are what ``with checking(True):`` does (this context only).
    ``get`` is read on every call of every net: one context variable and one attribute.
    """

    __slots__ = ("value", "_override")

    def __init__(self, value: bool) -> None:
        self.value = value
        self._override: contextvars.ContextVar[bool | None] = contextvars.ContextVar("zephyr_typecheck", default=None)

    def get(self) -> bool:
        override = self._override.get()
        return self.value if override is None else override

    def set(self, value: bool) -> contextvars.Token[bool | None]:
        return self._override.set(value)

    def reset(self, token: contextvars.Token[bool | None]) -> None:
        self._override.reset(token)


CHECKING = _Checking(_env_flag("ZEPHYR_TYPECHECK"))
"""Whether annotated nets check their arguments at run time (``zephyr.typing.checking``)."""


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
