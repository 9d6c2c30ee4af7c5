"""Functions made @flexible, by code object: how ``validate`` finds the function it runs in."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

_BY_CODE: weakref.WeakValueDictionary[Any, Callable[..., Any]] = weakref.WeakValueDictionary()


def register_function(fn: Callable[..., Any]) -> None:
    """Let ``validate`` find ``fn`` from a frame running its code (done by ``@flexible``)."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        _BY_CODE[code] = fn


def function_of_code(code: Any) -> Callable[..., Any] | None:
    """The registered function whose code is ``code``, if any."""
    return _BY_CODE.get(code)
