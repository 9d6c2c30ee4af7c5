"""Replay: a net called again during ``trace`` with the same function, argument shapes and
hyperparameters is not run again.

During ``trace`` only shapes matter, so such a call's effect is known from the first one: the
leaves it declared (declared again, moved to the new call's params path) and the shapes of
its output (fresh abstract arrays). A Python loop of N identical blocks then runs one block's
forward. Calls that cannot be replayed exactly run as usual: an argument that is a params
node other than the first, a concrete array or an unhashable value; an output that is a
params node, a declared leaf or weakly typed; a body that declared into another trace.

Declaring again is cheap where nothing is declared yet at the new path (a new block of a
loop): the leaves the recorded call left behind (computed once, at its first replay) are
added in one step. Anywhere else (weight tying, a leaf declared there before) the recorded
declarations are recorded again one by one, so the outcome, or the error, is the same as
running the call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, cast

import jax
import numpy as np
from jax import core

from .._jax import tree_flatten, tree_unflatten
from ._trace import DECLARATIONS, Declaration, Replayed, TraceNode, TraceState, active_stand_in, empty
from ._types import Leaf, Path, name_of


class _Below(NamedTuple):
    """A recorded call's declarations, all below its params path, as the leaves they leave
    behind where nothing was declared before: what replay adds in one step at a new path."""

    leaves: tuple[tuple[Path, Leaf, bool], ...]  # (path relative to the call's, leaf, declared only as a default)
    prefixes: tuple[Path, ...]  # the proper prefixes of those relative paths


class _Recorded:
    """One call recorded for replay: where it ran, what it declared, the shapes it returned."""

    def __init__(self, root: str, path: Path, declared: list[Declaration], out_tree: Any, out_leaves: list[Any]) -> None:
        self.root = root  # the trace's root, "params" or "state"
        self.path = path  # the params path of the recorded call
        self.declared = declared  # its journal entries, in order
        self.out_tree = out_tree
        self.out_leaves = out_leaves  # jax.ShapeDtypeStruct for each array, else the value itself

    @functools.cached_property
    def below(self) -> _Below | None:
        """The declarations as leaves below :attr:`path` (computed at the first replay: most
        recorded calls, the outermost net's among them, are never replayed); ``None`` when one
        is not below it (a captured node)."""
        return _below(self.root, self.path, self.declared)


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
    return _Recorded(state.root, path, declared, tree, recorded)


def _below(root: str, path: Path, declared: list[Declaration]) -> _Below | None:
    """What ``declared`` leaves behind below ``path`` where nothing was declared before
    (recorded one by one in a scratch state), or ``None`` if one is not below ``path``."""
    scratch = TraceState(root)
    count = DECLARATIONS.count
    try:
        for entry in declared:
            if isinstance(entry, Replayed):
                record = cast(_Recorded, entry.record)
                if entry.path[: len(path)] != path or record.below is None:
                    return None
                _declare_again(scratch, record, entry.path[len(path) :])
            else:
                spec, default = entry
                if spec.path[: len(path)] != path:
                    return None
                scratch.record(_moved_leaf(spec, path, ()), default)
    except ValueError:  # the declarations disagree among themselves: replayed one by one, they raise
        return None
    finally:
        DECLARATIONS.count = count  # the scratch state's declarations are nobody's
    leaves = tuple((p, spec, p in scratch.defaults) for p, spec in scratch.specs.items())
    return _Below(leaves, tuple(scratch.prefixes))


def _moved(path: Path, old: Path, new: Path) -> Path:
    return new + path[len(old) :] if path[: len(old)] == old else path


def _moved_leaf(spec: Leaf, old: Path, new: Path) -> Leaf:
    return spec.at(_moved(spec.path, old, new))


def _declare_again(state: TraceState, recorded: _Recorded, path: Path) -> None:
    """Declare ``recorded``'s leaves again, moved from its path to ``path``, as running the call
    there would: in one step where nothing is declared yet at ``path``, else one by one."""
    if not recorded.declared:
        return
    below = recorded.below
    if below is not None and state.is_empty_at(path):
        state.add_below(path, below.leaves, below.prefixes, Replayed(path, recorded))
        return
    for entry in recorded.declared:
        if isinstance(entry, Replayed):
            _declare_again(state, cast(_Recorded, entry.record), _moved(entry.path, recorded.path, path))
        else:
            spec, default = entry
            state.record(_moved_leaf(spec, recorded.path, path), default)


def call_during_trace(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], run: Callable[[], Any]) -> Any:
    """``run()`` (the call ``fn(*args, **kwargs)`` during trace, ``args[0]`` a params node),
    or its replay if the same call ran before in this trace."""
    node: TraceNode = args[0]
    state = node.state
    key = _call_key(fn, args, kwargs)
    if key is None:
        return _entered(state, fn, node.path, run)
    recorded: _Recorded | None = state.replays.get(key)
    if recorded is not None:
        _declare_again(state, recorded, node.path)
        leaves = [empty(s.shape, s.dtype) if isinstance(s, jax.ShapeDtypeStruct) else s for s in recorded.out_leaves]
        return tree_unflatten(recorded.out_tree, leaves)
    start, declared_before = len(state.journal), DECLARATIONS.count
    out = _entered(state, fn, node.path, run)
    recorded = _record(state, node.path, start, declared_before, out)
    if recorded is not None:
        state.replays[key] = recorded
    return out


def _entered(state: TraceState, fn: Callable[..., Any], path: Path, run: Callable[[], Any]) -> Any:
    """``run()``, with ``fn`` at ``path`` as the last net entered (for error notes)."""
    previous = state.entered
    state.entered = (name_of(fn), path)
    out = run()
    state.entered = previous  # left as it is on error: the note names the innermost net
    return out
