"""The trace engine: run a net abstractly and collect the leaves it declares.

During ``trace`` the net receives a :class:`TraceNode` instead of a params dict. Indexing a
node gives a child node; ``validate(node, shape)`` declares a leaf at the node's path and
returns an abstract stand-in of that shape; indexing a declared path afterwards gives a
stand-in too. The forward runs under ``jax.eval_shape``: shapes and dtypes only, no FLOPs,
no allocation.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import traceback
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, NoReturn

import jax
import numpy as np
from jax import Array

from .._jax import eval_shape, register_pytree_node, shape_dtype_struct, tree_flatten, tree_unflatten
from ._initializers import StackedInitializer, default_initializer
from ._paths import check_key
from ._types import Leaf, Path, PathKey, Shape, format_path, name_of

MSG_UNDECLARED = """\
A parameter is declared by `validate` before it is used (or by the annotation of the net's
params):

    w = validate(params["weights"], (x.shape[-1], out_dim))
    y = x @ w
"""


class Replayed(NamedTuple):
    """A journal entry for a whole call that replay declared again below ``path`` in one step
    (``_replay.py``; ``record`` is that module's record of the call)."""

    path: Path
    record: object


Declaration = tuple[Leaf, bool] | Replayed
"""An entry of ``TraceState.journal``: a leaf and whether it was declared as a default,
or a replayed call (which stands for the declarations of its record, moved to its path)."""


class TraceState:
    """The leaves declared so far by one ``trace`` call (one per call: traces never share)."""

    __slots__ = ("root", "specs", "prefixes", "defaults", "stand_ins", "entered", "journal", "replays")

    def __init__(self, root: str = "params") -> None:
        self.root = root  # how paths are written in messages: params[...] or state[...]
        self.specs: dict[Path, Leaf] = {}
        # Every proper prefix of a declared path: the subtrees that exist so far.
        self.prefixes: set[Path] = set()
        # Paths declared only as defaults so far (:func:`declare_defaults`): an explicit
        # `validate` of the same shape refines them (its initializer, dtype and tags win).
        self.defaults: set[Path] = set()
        # id(stand-in) -> (weak reference, path): weak, so no tracer outlives its own trace
        # (a jit inside the net ends before the trace does); a reused id has a dead reference.
        self.stand_ins: dict[int, tuple[weakref.ref[Array], Path]] = {}
        # The net last entered and the path of its params, for error notes.
        self.entered: tuple[str, Path] | None = None
        # Every declaration in order, and the calls recorded for replay (``_replay.py``).
        self.journal: list[Declaration] = []
        self.replays: dict[Hashable, Any] = {}

    def stand_in(self, spec: Leaf) -> Array:
        """An abstract array shaped like ``spec``, created in whatever JAX trace is current."""
        value = empty(spec.shape, spec.dtype)
        self.stand_ins[id(value)] = (weakref.ref(value), spec.path)
        return value

    def path_of(self, value: object) -> Path | None:
        """The path of a stand-in this trace handed out, if ``value`` is one."""
        entry = self.stand_ins.get(id(value))
        return entry[1] if entry is not None and entry[0]() is value else None

    def declare(self, spec: Leaf) -> Array:
        """Record ``spec`` (or check it against the earlier declaration) and return a stand-in."""
        self.record(spec)
        return self.stand_in(spec)

    def record(self, spec: Leaf, default: bool = False) -> None:
        """Record ``spec``, or check it against the earlier declaration of its path."""
        self.journal.append((spec, default))
        DECLARATIONS.count += 1
        earlier = self.specs.get(spec.path)
        if earlier is None:
            self._check_no_overlap(spec.path)
            self.specs[spec.path] = spec
            self.prefixes.update(spec.path[:i] for i in range(len(spec.path)))
            if default:
                self.defaults.add(spec.path)
        elif spec.path in self.defaults and not default and earlier.shape == spec.shape:
            self.defaults.discard(spec.path)
            self.specs[spec.path] = replace(spec, tags=_merged(earlier.tags, spec.tags))
        elif earlier.shape != spec.shape or earlier.dtype != spec.dtype:
            raise ValueError(
                f"`{spec.name}`: declared twice with different shapes: first "
                f"{_describe(earlier.shape, earlier.dtype)}, then {_describe(spec.shape, spec.dtype)} "
                "(the same shape twice shares one array, as weight tying does)"
            )
        elif spec.tags and set(spec.tags) - set(earlier.tags):
            self.specs[spec.path] = replace(earlier, tags=_merged(earlier.tags, spec.tags))

    def is_empty_at(self, path: Path) -> bool:
        """Whether no leaf is declared at ``path``, below it or above it."""
        if path in self.specs or path in self.prefixes:
            return False
        return not any(path[:i] in self.specs for i in range(len(path)))

    def add_below(
        self, path: Path, leaves: Sequence[tuple[Path, Leaf, bool]], prefixes: Sequence[Path], entry: Replayed
    ) -> None:
        """Add ``leaves`` below ``path``, where nothing is declared yet (:meth:`is_empty_at`), in
        one step, and journal them as ``entry``.

        Each of ``leaves`` is ``(relative path, leaf, declared only as a default)``,
        in the order of their first declaration; ``prefixes`` are the proper prefixes of the
        relative paths. That is what recording each of their declarations there one by one
        leaves behind, since no earlier leaf can meet them (``_replay.py`` computes both).
        """
        self.journal.append(entry)
        DECLARATIONS.count += 1
        if not leaves:
            return
        specs, defaults = self.specs, self.defaults
        for relative, spec, only_default in leaves:
            full = path + relative
            specs[full] = spec.at(full)
            if only_default:
                defaults.add(full)
        self.prefixes.update(path[:i] for i in range(len(path)))
        self.prefixes.update(path + prefix for prefix in prefixes)

    def _check_no_overlap(self, path: Path) -> None:
        """A new leaf may be neither above nor below an existing leaf."""
        if path in self.prefixes:
            below = next(p for p in self.specs if p[: len(path)] == path)
            raise ValueError(
                f"`{format_path(path, self.root)}` cannot be declared as a leaf: `{format_path(below, self.root)}` "
                "is declared below it (a subtree): one path is either an array or a subtree"
            )
        for i in range(len(path)):
            if path[:i] in self.specs:
                raise ValueError(
                    f"`{format_path(path[:i], self.root)}` is a leaf, so `{format_path(path, self.root)}` "
                    "cannot be declared below it: one path is either an array or a subtree"
                )


class _Declarations(threading.local):
    def __init__(self) -> None:
        self.count = 0


DECLARATIONS = _Declarations()
"""How many leaves this thread has declared, in every trace: a recorded call that declared
anything it did not journal (through another trace's node) is not replayed."""


def _merged(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(first + second))


def _describe(shape: Shape, dtype: np.dtype[Any]) -> str:
    return f"{shape} {dtype.name}"


def empty(shape: Shape, dtype: np.dtype[Any]) -> Array:
    # The cheapest abstract array to stage (about 3x cheaper than jnp.zeros); its values
    # are never computed: the forward only runs abstractly.
    return jax.lax.empty(shape, dtype)  # type: ignore[no-any-return]  # jax types lax.empty partially


_LEAK_CHECK: list[Callable[[], bool]] = []


def check_leaks_when(predicate: Callable[[], bool]) -> None:
    """Run every abstract run under ``jax.checking_leaks`` while ``predicate()`` is true (the
    debug mode of the layers above sets it)."""
    _LEAK_CHECK[:] = [predicate]


_ACTIVE: contextvars.ContextVar[tuple[TraceState, ...]] = contextvars.ContextVar(
    "zephyr_active_trace", default=()
)


def active_stand_in(value: object) -> tuple[TraceState, Path] | None:
    """``(state, path)`` of a stand-in handed out by the innermost running ``trace``, if any."""
    for state in _ACTIVE.get():
        path = state.path_of(value)
        if path is not None:
            return state, path
    return None


def stand_in_name(value: object) -> str | None:
    """The path of a stand-in the running ``trace`` handed out, as ``params[...]``; ``None``
    if ``value`` is not one."""
    found = active_stand_in(value)
    return None if found is None else format_path(found[1], found[0].root)


class TraceNode(Mapping[PathKey, "TraceNode | Array"]):
    """The ``params`` a net receives during ``trace``: a path into the params being built.

    It is indexable like the finished params (a read-only ``Mapping``, so it is ``Params`` to
    the type checkers). Its keys are not known until the net has run, so iterating it raises;
    and it is not an array: using one as an array before declaring it raises a ``TypeError``
    that names its path.
    """

    __slots__ = ("state", "path")

    def __init__(self, state: TraceState, path: Path) -> None:
        self.state = state  # the trace this node belongs to
        self.path = path  # the keys from the root params to this node

    def __getitem__(self, key: PathKey) -> TraceNode | Array:
        path = self.path + (check_key(self.path, key),)
        spec = self.state.specs.get(path)
        if spec is None:
            return TraceNode(self.state, path)
        return self.state.stand_in(spec)

    def __repr__(self) -> str:
        return f"<zephyr trace node {format_path(self.path, self.state.root)}>"

    def _undeclared(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"`{format_path(self.path, self.state.root)}` is used as an array before it is declared.\n"
            + MSG_UNDECLARED
        )

    def __iter__(self) -> Iterator[PathKey]:
        raise TypeError(
            f"`{format_path(self.path, self.state.root)}` cannot be iterated during trace: its "
            "keys are whatever the net declares. Index it with the keys you use."
        )

    def __len__(self) -> int:
        return len(list(iter(self)))

    __array__ = _undeclared
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _undeclared
    __matmul__ = __rmatmul__ = __truediv__ = __rtruediv__ = __pow__ = __rpow__ = _undeclared
    __neg__ = __pos__ = __abs__ = __float__ = __int__ = __bool__ = _undeclared

    def __getattr__(self, name: str) -> NoReturn:
        # An AttributeError, so getattr(node, "shape", None) and hasattr() still work.
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"`{format_path(self.path, self.state.root)}` has no `.{name}`: it is used as an "
            "array before it is declared.\n" + MSG_UNDECLARED
        )


register_pytree_node(TraceNode, lambda node: ((), node), lambda node, _children: node)


def declare_defaults(node: TraceNode, leaves: Iterable[Leaf]) -> None:
    """Declare ``leaves`` (their paths relative to ``node``) as defaults: a later ``validate``
    of the same shape at one of their paths refines it (its initializer, dtype and tags win)."""
    state, root = node.state, node.state.root
    for leaf in leaves:
        state.record(Leaf(node.path + leaf.path, leaf.shape, leaf.dtype, leaf.tags, root=root, initializer=leaf.initializer), True)


def declare_layers(
    who: str, layers: int, node: TraceNode, call: Callable[[TraceNode], Array], x: Array, *, stacked: bool
) -> Array:
    """During trace, ``layers`` layers of one function ``x = call(params_i, x)``, traced once.

    Layer 0 runs on a params stand-in of its own; its output must have ``x``'s shape and
    dtype (it is the carry). Then its leaves are declared for every layer: ``stacked``, as one
    leaf with a leading layer axis at ``node``'s path (for ``lax.scan``); else at
    ``node[i]`` for each ``i`` (an unrolled loop), the same leaves as tracing the loop itself.
    """
    layer_state = TraceState(node.state.root)
    # Active while layer 0 runs: a leaf it declares as a default and then reads and
    # validates again (its initializer, dtype, tags) is refined in this state.
    token = _ACTIVE.set((layer_state, *_ACTIVE.get()))
    try:
        y = call(TraceNode(layer_state, ()))
    finally:
        _ACTIVE.reset(token)
        layer_state.stand_ins.clear()
    if getattr(y, "shape", None) != x.shape or getattr(y, "dtype", None) != x.dtype:
        raise ValueError(
            f"{who}: each layer must map x to the same shape and dtype (it is the carry "
            f"from layer to layer); {x.shape} {x.dtype} became "
            f"{getattr(y, 'shape', None)} {getattr(y, 'dtype', None)}"
        )
    declare = node.state.declare
    for spec in layer_state.specs.values():
        if stacked:
            initializer = StackedInitializer(spec.initializer or default_initializer, layers)
            declare(replace(spec, path=node.path + spec.path, shape=(layers, *spec.shape), layers=layers, initializer=initializer))
        else:
            for i in range(layers):
                declare(spec.at((*node.path, i, *spec.path)))
    return y


def is_array_input(leaf: object) -> bool:
    """Whether ``trace`` sees this argument leaf abstractly (an array) or as a hyperparameter."""
    return isinstance(leaf, jax.Array | np.ndarray | np.generic | jax.ShapeDtypeStruct)


def _unwrap_jit(f: Callable[..., Any]) -> Callable[..., Any]:
    # trace(jax.jit(f), ...) traces f itself: jit changes nothing abstractly, and going
    # through it would keep one cache entry per trace in the jitted function.
    inner = getattr(f, "__wrapped__", None)
    if inner is not None and callable(getattr(f, "lower", None)):
        return _unwrap_jit(inner)
    return f


def run_abstract(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    states: tuple[TraceState, ...],
) -> Any:
    """Run ``f(*nodes, *args, **kwargs)`` under ``jax.eval_shape``; return its output shapes.

    ``nodes`` holds one root ``TraceNode`` per state (params; params and state).

    Array leaves of the arguments become abstract (shape and dtype only); every other leaf
    (ints, strings, callables, ...) is passed through as it is, as a hyperparameter.
    """
    leaves, treedef = tree_flatten((args, kwargs))
    positions = [i for i, leaf in enumerate(leaves) if is_array_input(leaf)]
    abstract = [shape_dtype_struct(tuple(leaves[i].shape), leaves[i].dtype) for i in positions]
    roots = tuple(TraceNode(state, ()) for state in states)
    target = _unwrap_jit(f)

    def forward(*arrays: Any) -> Any:
        filled = list(leaves)
        for i, array in zip(positions, arrays):
            filled[i] = array
        call_args, call_kwargs = tree_unflatten(treedef, filled)
        try:
            out = target(*roots, *call_args, **call_kwargs)
        except TypeError as error:  # before the stand-ins are dropped: one may be named
            if "string indexing" in str(error):
                found = _indexed_leaf(error, states)
                if found is not None:
                    raise found from error
            raise
        finally:
            for state in states:  # drop the stand-ins: no tracer outlives its trace
                state.stand_ins.clear()
        if callable(out):  # a call still waiting for arguments
            raise TypeError(
                f"trace: `{name_of(f)}` returned a function instead of its output: it was called "
                f"as f(params, *args) with {len(leaves)} argument(s) after params and still waits "
                "for more. Give trace every argument after params: trace(net, key, x) for net(params, x)"
            )
        out_leaves = jax.tree_util.tree_leaves(out)
        return [leaf for leaf in out_leaves if isinstance(leaf, jax.Array)]

    token = _ACTIVE.set(states)
    try:
        # Leak checking runs a full garbage collection per trace (60-260 ms in a large process
        # when the net uses custom_jvp functions such as jax.nn.relu): a debug mode.
        with jax.checking_leaks() if _LEAK_CHECK and _LEAK_CHECK[0]() else contextlib.nullcontext():  # pyright: ignore[reportUnknownMemberType]  # jax 0.12 types it partially
            return eval_shape(forward, *abstract)
    except Exception as error:
        if type(error) is Exception and str(error).startswith("Leaked trace"):
            raise ValueError(_leak_message(f, str(error))) from error
        _annotate(error, f, next((s for s in states if s.entered), states[0]))
        raise
    finally:
        _ACTIVE.reset(token)


def _indexed_leaf(error: TypeError, states: Sequence[TraceState]) -> TypeError | None:
    """JAX's "string indexing" ``error``, as a ``TypeError`` naming the declared leaf that was
    indexed like a subtree (found among the locals of the frames it passed), if one was."""
    frames = [frame for frame, _line in traceback.walk_tb(error.__traceback__)]
    for frame in reversed(frames):  # innermost first: JAX's own indexing holds the array
        for value in frame.f_locals.values():
            for state in states:
                path = state.path_of(value)
                if path is not None:
                    spec = state.specs[path]
                    return TypeError(
                        f"`{format_path(path, state.root)}` is declared as a leaf (an array of shape "
                        f"{spec.shape}) and then indexed like a subtree ({error}): one path is either an "
                        "array or a subtree"
                    )
    return None


def _leak_message(f: Callable[..., Any], detail: str) -> str:
    if len(detail) > 3000:
        detail = detail[:3000] + "\n... (the full report is the chained exception)"
    return (
        f"trace: `{name_of(f)}` kept an abstract value from its trace (a tracer leaked), e.g. "
        "in a global, a cache or a closure. trace runs the net abstractly; values from that run "
        "cannot be used afterwards. JAX's report of what holds it:\n" + detail
    )


def _annotate(error: Exception, f: Callable[..., Any], state: TraceState) -> None:
    where = ""
    if state.entered is not None:
        net, path = state.entered
        where = f" (last net entered: `{net}` at `{format_path(path, state.root)}`)"
    note = f"zephyr.trace: raised while running `{name_of(f)}` abstractly{where}."
    if isinstance(error, jax.errors.ConcretizationTypeError | jax.errors.TracerBoolConversionError):
        note += (
            " trace runs the forward like jax.eval_shape, without values: Python control flow "
            "may depend on shapes and hyperparameters, not on array values (use jnp.where or "
            "jax.lax.cond)."
        )
    elif isinstance(error, jax.errors.UnexpectedTracerError):
        note += (
            " A value from an earlier trace (or from inside a transformation) was kept and used "
            "here: a tracer leaked. Do not store arrays from inside the net in globals or caches."
        )
    elif isinstance(error, TypeError) and "string indexing" in str(error):
        note += (
            " A declared parameter (an array) was indexed like a subtree: one path is either an "
            "array or a subtree."
        )
    if note not in getattr(error, "__notes__", ()):
        error.add_note(note)
