"""The public face of the engine: ``collect_specs`` and ``initialize`` (the halves of
``zephyr.trace``), ``validate``, and the abstract traces."""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from types import FrameType
from typing import Any, cast

import jax
import numpy as np
from jax import Array, core

from .._checks import check_dtype, check_tags, is_int
from .._jax import shape_dtype_struct, tree_flatten
from .._source import describe_call_argument
from ._cache import cached_specs, function_key, signature_key, store_specs
from ._initializers import default_initializer, initialize_leaf, to_dtype
from ._paths import nest
from ._replay import call_during_trace as call_during_trace  # for the net wrapper above
from ._trace import TraceNode, TraceState, active_stand_in, is_array_input, run_abstract, stand_in_name
from ._types import DType, Initializer, Leaf, ParamsTree, Path, PRNGKey, Shape, format_path

_NAMED_SHAPE: list[Callable[[object, str], tuple[Shape, DType | None]]] = []


def resolve_named_shapes(resolver: Callable[[object, str], tuple[Shape, DType | None]]) -> None:
    """Let :func:`validate` take a shape that is not a tuple of ints: ``resolver(shape, who)``
    returns its sizes and dtype (or ``None``). The layer that names dims sets it."""
    _NAMED_SHAPE[:] = [resolver]


def collect_specs(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    roots: tuple[str, ...] = ("params",),
) -> tuple[dict[Path, Leaf], ...]:
    """Run ``f(*roots, *args, **kwargs)`` abstractly; the leaves each root declared, in order.

    The first half of :func:`trace`: no key, no allocation. Use it to plan (shapes, dtypes,
    tags) or to initialize in another way (sharded, abstract). The result is cached per
    function and argument signature (see :func:`clear_trace_cache`).

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import collect_specs, nets
        >>> (specs,) = collect_specs(nets.linear, (jnp.ones((2, 5)), 3), {})
        >>> [(spec.name, spec.shape) for spec in specs.values()]
        [("params['weights']", (5, 3)), ("params['bias']", (3,))]
    """
    leaves, treedef = tree_flatten((args, kwargs))
    fkey = function_key(f)
    signature = signature_key(leaves, treedef, is_array_input) if fkey is not None else None
    key = (fkey, signature, roots) if signature is not None else None
    if key is not None:
        cached = cached_specs(key)
        if cached is not None:
            return cached
    states = tuple(TraceState(root) for root in roots)
    run_abstract(f, args, kwargs, states)
    specs = tuple(state.specs for state in states)
    if key is not None:
        store_specs(key, specs)
    return specs


def initialize(
    specs: dict[Path, Leaf],
    key: PRNGKey,
    placement: Callable[[Leaf], Any] | None = None,
) -> dict[Any, Any]:
    """The second half of :func:`trace`: initialize each leaf and nest them into dicts.

    ``placement(spec)`` may return a ``jax.sharding.Sharding`` for a leaf (or ``None``); the
    leaf is then created already placed, shard by shard.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import collect_specs, initialize, nets
        >>> (specs,) = collect_specs(nets.linear, (jnp.ones((2, 5)), 3), {})
        >>> params = initialize(specs, jax.random.key(0))
        >>> params["weights"].shape
        (5, 3)
    """
    # Concrete even when called inside another trace (a trace inside a trace): the key is
    # concrete, so the leaves are too. A traced key (trace under jit) still stages.
    # `eval_context`, not `ensure_compile_time_eval`: the latter would also constant-fold
    # inside each initializer's own jit (its random-bit counters became embedded constants,
    # each compiled separately first).
    if placement is None:
        for spec in specs.values():
            check_fits(spec)
    staged = isinstance(key, core.Tracer)
    with nullcontext() if staged else core.eval_context():
        values = {
            path: initialize_leaf(spec, key, placement(spec) if placement else None)
            for path, spec in specs.items()
        }
    root = next(iter(specs.values())).root if specs else "params"
    return nest(values, root)


def validate(
    array: ParamsTree,
    shape: Shape | str | Any,
    initializer: Initializer = default_initializer,
    *,
    dtype: DType | None = None,
    tags: str | Iterable[str] = (),
) -> Array:
    """Declare a parameter during ``trace``; check its shape afterwards. Returns ``array``.

    During ``trace``, ``array`` is a node of the params being built and this declares the
    leaf at its path: its shape, dtype, initializer and tags. On a real array (apply time,
    also under ``jit``) it checks the shape and returns the array unchanged.

    Args:
        array: ``params[...]``, the leaf to declare or check.
        shape: a tuple of ints; or a named shape, a dim string (``"d_in out_dim"``) or an
            array annotation (``Float[Array, "d_in out_dim"]``), whose names bind from the
            arguments the running net was called with, as a net's params annotation does (a
            rebound local changes nothing).
        initializer: ``(key, shape, dtype) -> Array``, e.g. any of ``jax.nn.initializers``.
            Default: truncated normal scaled by fan-in for rank >= 2, zeros otherwise.
        dtype: the storage dtype (default float32, or the annotation's dtype).
        tags: labels for the leaf, used by ``zephyr.tags`` (optimizers, sharding).

    Returns:
        ``array`` itself (a stand-in of that shape during trace).

    Raises:
        ValueError: the shape differs from ``shape`` (naming the path), or one path is
            declared twice with different shapes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import trace, validate
        >>> def affine(params, x):
        ...     w = validate(params["w"], (x.shape[-1], 2))
        ...     return x @ w
        >>> params = trace(affine, jax.random.key(0), jnp.ones((5, 3)))
        >>> params["w"].shape
        (3, 2)
    """
    resolved_dtype: DType | None = dtype
    if isinstance(shape, tuple | list):
        items: list[object] = list(cast("Iterable[object]", shape))
        index = next((i for i, d in enumerate(items) if not is_int(d)), None)  # numpy ints are sizes too
        if index is not None:
            raise TypeError(
                f"validate of {_name_for_error(array, _caller())}: `shape` must be a tuple of ints, got {shape!r} (item {index} is "
                f"{type(items[index]).__name__} {items[index]!r}; sizes computed with / are floats: use //)"
            )
        expected: Shape = tuple(int(cast(int, d)) for d in items)
    else:  # a named shape: the layer above resolves it (importing zephyr sets the resolver)
        expected, annotated_dtype = _NAMED_SHAPE[0](shape, "validate")
        if resolved_dtype is None:
            resolved_dtype = annotated_dtype
    node: object = array  # a TraceNode during trace, typed as the params it stands for
    if type(node) is TraceNode:
        declared: tuple[TraceState, Path] | None = (node.state, node.path)
    else:
        declared = active_stand_in(array)  # a declared leaf read again during trace
    if declared is not None:
        state, path = declared
        who = f"validate of `{format_path(path, state.root)}`"
        if any(d < 0 for d in expected):
            raise ValueError(f"{who}: `shape` must be sizes >= 0, got {expected}")
        if not callable(initializer):
            raise TypeError(f"{who}: `initializer` must be a function (key, shape, dtype) -> Array, got {initializer!r}")
        leaf_dtype = check_dtype(who, "dtype", resolved_dtype) if resolved_dtype is not None else to_dtype(None)
        tag_tuple = check_tags(who, tags)
        spec = Leaf(path, expected, leaf_dtype, tag_tuple, root=state.root, initializer=initializer)
        return state.declare(spec)
    actual = getattr(array, "shape", None)
    if actual is None:
        raise TypeError(
            f"validate: expected an array or `params[...]`, got {type(array).__name__} "
            f"(at {describe_call_argument(_caller())})"
        )
    if tuple(actual) != expected:
        raise ValueError(
            f"{_name_for_error(array, _caller())}: expected shape {expected}, "
            f"got {tuple(actual)}"
        )
    if dtype is not None and np.dtype(array.dtype) != check_dtype("validate", "dtype", dtype):  # type: ignore[union-attr]
        raise ValueError(
            f"{_name_for_error(array, _caller())}: expected dtype {to_dtype(dtype).name}, "
            f"got {np.dtype(array.dtype).name}"  # type: ignore[union-attr]
        )
    return array  # type: ignore[return-value]  # an array-like with a shape: an Array here


@functools.cache
def _device_bytes() -> int:
    """What one device can hold: its memory limit where JAX reports one, else the host's RAM."""
    device = cast(Any, jax.local_devices()[0])  # pyright: ignore[reportUnknownMemberType]  # jax types devices partially
    stats = cast("dict[str, object] | None", device.memory_stats() if hasattr(device, "memory_stats") else None)
    limit = (stats or {}).get("bytes_limit")
    if isinstance(limit, int) and limit > 0:
        return limit
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_fits(spec: Leaf) -> None:
    """Refuse, before allocating, a leaf larger than one device can hold (naming its path).

    ``abstract_trace`` allocates nothing and does not check: use it (then ``zephyr.sharding``
    or ``zephyr.checkpoint.restore``) to plan a model larger than one device.
    """
    nbytes = math.prod(spec.shape) * spec.dtype.itemsize
    if nbytes > _device_bytes():
        raise ValueError(
            f"trace: `{spec.name}` of shape {spec.shape} and dtype {spec.dtype.name} needs "
            f"{nbytes / 2**30:.1f} GiB, more than one device holds ({_device_bytes() / 2**30:.1f} GiB). "
            "Plan it with zephyr.abstract_trace (nothing allocated), or shard it with zephyr.sharding.trace_sharded"
        )


def _caller() -> FrameType:
    """The frame that called ``validate`` (two up from here)."""
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
    if caller is None:  # pragma: no cover  # only without frame support (not CPython)
        raise RuntimeError("validate needs Python frames to name its caller")
    return caller


def _name_for_error(array: object, frame: Any) -> str:
    node: object = array
    if type(node) is TraceNode:
        return f"`{format_path(node.path, node.state.root)}`"
    name = stand_in_name(array)
    return describe_call_argument(frame) if name is None else f"`{name}`"


def abstract_trace(f: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
    """The params of ``f`` as ``jax.ShapeDtypeStruct``s: shapes and dtypes, nothing allocated.

    The first half of :func:`zephyr.trace` (the forward runs like ``jax.eval_shape``), for
    planning models larger than memory. ``orbax``, ``jax.jit(...).lower`` and
    ``zephyr.checkpoint.restore`` take the result as is. Tags: ``zephyr.tags.leaf_info``.

    Args:
        f: the net, a function of ``(params, *args, **kwargs)``.
        *args: sample inputs and hyperparameters, as for ``trace``.
        **kwargs: sample keyword inputs, passed to ``f``.

    Returns:
        A nested dict shaped like the params with ``jax.ShapeDtypeStruct`` leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import abstract_trace, nets
        >>> abstract = abstract_trace(nets.linear, jnp.ones((2, 100_000)), 100_000)  # 40 GB
        >>> abstract["weights"]
        ShapeDtypeStruct(shape=(100000, 100000), dtype=float32)
    """
    (specs,) = collect_specs(f, args, kwargs)
    return _abstract(specs)


def abstract_trace_with_state(f: Callable[..., object], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """:func:`abstract_trace` for a stateful net ``f(params, state, *args)``: both trees, abstract.

    Args:
        f: the net, a function of ``(params, state, *args, **kwargs)``.
        *args: sample inputs and hyperparameters.
        **kwargs: sample keyword inputs, passed to ``f``.

    Returns:
        ``(params, state)``, nested dicts of ``jax.ShapeDtypeStruct``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import abstract_trace_with_state, validate
        >>> def counter(params, state, x):
        ...     return x, {"count": validate(state["count"], (), dtype=jnp.int32) + 1}
        >>> abstract_trace_with_state(counter, jnp.ones(3))
        ({}, {'count': ShapeDtypeStruct(shape=(), dtype=int32)})
    """
    param_specs, state_specs = collect_specs(f, args, kwargs, roots=("params", "state"))
    return _abstract(param_specs), _abstract(state_specs, "state")


def _abstract(specs: dict[Path, Leaf], root: str = "params") -> Any:
    return nest({path: shape_dtype_struct(spec.shape, spec.dtype) for path, spec in specs.items()}, root)
