"""The @flexible calls running in this thread: ``validate(p, "d_in out")`` binds dims from
the innermost one's arguments, run-time checks skip the nets inside a checked call, and
errors name a params subtree by its path from the outermost call that holds it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from ..core._api import resolve_named_shapes
from ..core._types import DType, Path, PathKey, Shape
from ._dims import resolve_call_shape, spec_dims

RunningCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""A @flexible call in progress: the function and its arguments."""

MSG_DIMS_NEED_FLEXIBLE = """\
validate: the shape {shape!r} names dims, which bind from the arguments of the running
@flexible function, and no @flexible function is running. Make the function @flexible, or
give a tuple of ints:

    @flexible
    def dense(params, x: Float[Array, "*batch d_in"], out_dim: int):
        w = validate(params["w"], "d_in out_dim")   # or (x.shape[-1], out_dim)
"""


class _Calls(threading.local):
    def __init__(self) -> None:
        self.stack: list[RunningCall] = []
        self.checked = False  # inside a checked @flexible call: nets it calls are not checked again


_CALLS = _Calls()


def calls_state() -> _Calls:
    """This thread's running calls (``stack``, innermost last: ``flexible`` pushes and pops)
    and whether a checked call is among them.

    A list per thread rather than a context variable: pushing a tuple costs a fraction of a
    ``ContextVar.set`` on every call of every net, and a net's call never spans tasks.
    """
    return _CALLS


def named_shape(shape: object, who: str) -> tuple[Shape, DType | None]:
    """A dim string or jaxtyping annotation given to ``validate``, resolved from the arguments
    of the innermost running @flexible call (see :func:`zephyr.typing._dims.resolve_call_shape`)."""
    dims, dtype = spec_dims(shape, who)
    if not _CALLS.stack:
        raise TypeError(MSG_DIMS_NEED_FLEXIBLE.format(shape=shape))
    fn, args, kwargs = _CALLS.stack[-1]
    return resolve_call_shape(fn, args, kwargs, dims, who), dtype


resolve_named_shapes(named_shape)


def find_below(tree: object, target: object, depth: int = 4) -> Path | None:
    """The path at which ``target`` (by identity) sits in the nested mappings ``tree``, looking
    ``depth`` levels down; ``None`` if it is not there.

    >>> leaf = [1]
    >>> find_below({"a": {0: leaf}}, leaf)
    ('a', 0)
    """
    if depth <= 0 or not isinstance(tree, Mapping):
        return None
    try:
        items = list(cast("Mapping[PathKey, object]", tree).items())
    except TypeError:  # a mapping that cannot be listed (a trace's params node)
        return None
    for key, value in items:
        if value is target:
            return (key,)
    for key, value in items:
        if isinstance(value, Mapping):
            found = find_below(cast(object, value), target, depth - 1)
            if found is not None:
                return (key, *found)
    return None


def params_origin(params: object, calls: Sequence[tuple[Any, ...]]) -> tuple[Path, Any]:
    """Where ``params`` sits in the params of the ``@flexible`` calls running around it.

    ``calls`` are the running calls (``calls_state().stack``: innermost last, each
    ``(fn, args, kwargs)``). Returns the path of ``params`` from the params of the
    outermost call that holds it, and that call's function (``None`` if no call holds it).

    >>> inner = {"w": 1}
    >>> params_origin(inner, [("mlp", ({"layer": inner},), {}), ("dense", (inner,), {})])
    (('layer',), 'mlp')
    """
    path: Path = ()
    outer: Any = None
    current = params
    for call in reversed(calls):
        fn, args = call[0], call[1]
        given = args[0] if args else None
        if given is current:
            outer = fn
            continue
        found = find_below(given, current)
        if found is None:
            break
        path, outer, current = found + path, fn, given
    return path, outer
