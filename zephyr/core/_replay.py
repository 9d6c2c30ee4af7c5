"""Replay: a net called again during ``trace`` with the same function, argument shapes and
hyperparameters is not run again.

During ``trace`` only shapes matter, so such a call's effect is known from the first one: the
leaves it declared (declared again, moved to the new call's params path) and the shapes of
its output (fresh abstract arrays). A Python loop of N identical blocks then runs one block's
forward. Calls that cannot be replayed exactly run as usual: an argument that is a params
node other than the first, a concrete array or an unhashable value; an output that is a
params node, a declared leaf or weakly typed; a body that declared into another trace.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, cast

import jax
import numpy as np
from jax import core

from .._jax import tree_flatten, tree_unflatten
from ._trace import DECLARATIONS, TraceNode, TraceState, active_stand_in, empty
from ._types import Leaf, Path


class _Recorded(NamedTuple):
    path: Path  # the params path of the recorded call
    declared: list[tuple[Leaf, bool]]
    out_tree: Any
    out_leaves: list[Any]  # jax.ShapeDtypeStruct for each array, else the value itself


def _is_node(value: object) -> bool:
    return type(value) is TraceNode


def _aval_of(value: object) -> Any:
    """The shape and dtype (``aval``) of a tracer; ``None`` for anything else."""
    aval: Any = getattr(value, "aval", None)
    return aval if isinstance(value, core.Tracer) else None


def _call_key(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
    """``fn`` with its arguments after the params as the abstract run sees them, or ``None``."""
    leaves, treedef = tree_flatten((args[1:], kwargs), is_leaf=_is_node)
    key: list[Hashable] = [fn, treedef]
    for leaf in leaves:
        aval = _aval_of(leaf)
        if aval is not None:
            key.append((aval.shape, aval.dtype, aval.weak_type))
        elif isinstance(leaf, TraceNode | jax.Array | np.ndarray):
            return None
        else:
            try:
                hash(leaf)
            except TypeError:
                return None
            key.append((type(cast(object, leaf)), leaf))
    return tuple(key)


def _record(state: TraceState, path: Path, start: int, declared_before: int, out: Any) -> _Recorded | None:
    declared = state.journal[start:]
    if DECLARATIONS.count - declared_before != len(declared):
        return None  # the body declared into another trace (a captured node): not replayable
    leaves, tree = tree_flatten(out, is_leaf=_is_node)
    recorded: list[Any] = []
    for leaf in leaves:
        aval = _aval_of(leaf)
        if aval is not None:
            if aval.weak_type or active_stand_in(leaf) is not None:
                return None
            recorded.append(jax.ShapeDtypeStruct(aval.shape, aval.dtype))
        elif isinstance(leaf, TraceNode | jax.Array | np.ndarray):
            return None
        else:
            recorded.append(leaf)
    return _Recorded(path, declared, tree, recorded)


def _moved(path: Path, old: Path, new: Path) -> Path:
    return new + path[len(old) :] if path[: len(old)] == old else path


def call_during_trace(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], run: Callable[[], Any]) -> Any:
    """``run()`` (the call ``fn(*args, **kwargs)`` during trace, ``args[0]`` a params node),
    or its replay if the same call ran before in this trace."""
    node: TraceNode = args[0]
    state = node.state
    key = _call_key(fn, args, kwargs)
    if key is None:
        return run()
    recorded: _Recorded | None = state.replays.get(key)
    if recorded is not None:
        for spec, from_signature in recorded.declared:
            path = _moved(spec.path, recorded.path, node.path)
            moved = Leaf(path, spec.shape, spec.dtype, spec.tags, spec.layers, spec.root, spec.initializer)
            state.record(moved, from_signature)
        leaves = [empty(s.shape, s.dtype) if isinstance(s, jax.ShapeDtypeStruct) else s for s in recorded.out_leaves]
        return tree_unflatten(recorded.out_tree, leaves)
    start, declared_before = len(state.journal), DECLARATIONS.count
    out = run()
    recorded = _record(state, node.path, start, declared_before, out)
    if recorded is not None:
        state.replays[key] = recorded
    return out
