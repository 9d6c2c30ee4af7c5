"""Initializers: the default, the stacked one, the key of each leaf, and one compiled
initialization per kind of leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import CellType
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .._jax import jit
from ._cache import LRU
from ._paths import path_hash
from ._types import DType, Initializer, Leaf, PRNGKey, Shape, name_of

_fan_in_truncated_normal = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


def default_initializer(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """zephyr's default: truncated normal scaled by fan-in for matrices, zeros otherwise.

    A leaf of rank 2 or more (weights, conv kernels) gets a truncated normal with variance
    ``1 / fan_in``, where ``fan_in`` is the product of every axis but the last; a vector or a
    scalar (biases, norm offsets) gets zeros.

    >>> import jax
    >>> default_initializer(jax.random.key(0), (3,)).tolist()
    [0.0, 0.0, 0.0]
    >>> default_initializer(jax.random.key(0), (64, 8)).shape
    (64, 8)
    """
    if len(shape) >= 2:
        return _fan_in_truncated_normal(key, shape, dtype)
    return jnp.zeros(shape, dtype)  # pyright: ignore[reportUnknownMemberType]  # jax's device parameter is partially typed


@dataclass(frozen=True)
class StackedInitializer:
    """Initialize ``layers`` independent copies of a leaf along a new leading axis.

    >>> import jax
    >>> StackedInitializer(jax.nn.initializers.ones, 3)(jax.random.key(0), (3, 2)).tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """

    inner: Initializer
    layers: int

    def __call__(self, key: PRNGKey, shape: Shape, dtype: DType = None) -> Array:
        keys = jax.random.split(key, self.layers)

        def one_layer(layer_key: PRNGKey) -> Array:
            return self.inner(layer_key, shape[1:], dtype)

        stacked: Array = jax.vmap(one_layer)(keys)
        return stacked


def to_dtype(dtype: DType | None) -> np.dtype[Any]:
    """Canonical numpy dtype; ``None`` is JAX's default float (float32 unless x64 is on).

    >>> to_dtype(None).name, to_dtype("bfloat16").name
    ('float32', 'bfloat16')
    """
    # ``float`` canonicalized is ``jnp.result_type(float)`` (float64 with x64 on), read ~20x
    # faster: every leaf declared without a dtype asks.
    return np.dtype(jax.dtypes.canonicalize_dtype(float if dtype is None else dtype))


def initializer_identity(initializer: Initializer) -> Hashable:
    """A hashable stand-in for an initializer, equal for equal closures.

    ``jax.nn.initializers.normal(0.02)`` builds a new closure on every call; two such closures
    with the same code and the same captured values compute the same thing, so they share one
    compiled initialization. Anything else is identified by the object itself.
    """
    itself: Hashable = cast(Hashable, initializer)  # functions hash by identity
    code: object = getattr(initializer, "__code__", None)
    cells: tuple[CellType, ...] | None = getattr(initializer, "__closure__", None)
    if code is None or not cells:
        return itself
    try:
        captured = tuple(cell.cell_contents for cell in cells)
        hash(captured)
    except (TypeError, ValueError):  # an unhashable capture, or an empty cell
        return itself
    return (code, captured)


# The generator each leaf is drawn with (new in JAX 0.10.2, the oldest zephyr supports).
# threefry4x32 is as partitionable as the default threefry2x32 (a sharded leaf gets the same
# values, each device computing only its shard) and identical across backends; on CPU it runs
# ~3x faster with no temporaries, because XLA:CPU gets threefry2x32 as a rolled loop that keeps
# two leaf-sized counters (see benchmarks/README.md). (philox4x32, also new in 0.10.2, fails
# to compile under sharding there.)
LEAF_KEY_IMPL = "threefry4x32"


def leaf_key(key: PRNGKey, path_hash: Any) -> PRNGKey:
    """The key a leaf is initialized with: ``fold_in(key, path_hash)``, on a fast generator.

    A default (threefry2x32) key is carried over to threefry4x32: the 128
    bits of the new key are the two keys of ``split(fold_in(key, path_hash))``. A key of any
    other generator is used as it is.

    >>> import jax, numpy as np
    >>> k = leaf_key(jax.random.key(0), np.uint32(7))
    >>> str(jax.random.key_impl(k))
    'threefry4x32'
    >>> folded = jax.random.fold_in(jax.random.key(0), 7)
    >>> jax.random.key_data(k).tolist() == jax.random.key_data(jax.random.split(folded)).ravel().tolist()
    True
    """
    folded = jax.random.fold_in(key, path_hash)
    if str(jax.random.key_impl(folded)) != "threefry2x32":
        return folded
    words = jax.random.key_data(jax.random.split(folded)).reshape(4)
    leaf_key: PRNGKey = jax.random.wrap_key_data(words, impl=LEAF_KEY_IMPL)
    return leaf_key


def _drop_executables(compiled: Any) -> None:
    clear = getattr(compiled, "clear_cache", None)
    if clear is not None:
        clear()


# Bounded at 128 kinds of leaf, each forgotten program's executables released at once: an
# XLA:CPU executable holds ~5 MB, so memory stays under ~700 MB however many leaf shapes are
# traced (raw eager `jax.random` init grows by the same ~5 MB per new shape, unbounded below
# JAX's own per-function cache of 4096; see benchmarks/_memory_shapes.py).
_COMPILED: LRU[Callable[[PRNGKey, Any], Array]] = LRU(128, on_evict=_drop_executables)


def _leaf_initializer(
    initializer: Initializer, shape: Shape, dtype: np.dtype[Any], sharding: jax.sharding.Sharding | None
) -> Callable[[PRNGKey, Any], Array]:
    """One compiled initialization per kind of leaf, shared by equal initializers (bounded)."""
    cache_key = (initializer_identity(initializer), shape, dtype, sharding)
    compiled = _COMPILED.get(cache_key)
    if compiled is not None:
        return compiled

    def init(key: PRNGKey, path_hash: Any) -> Array:
        key_of_leaf = leaf_key(key, path_hash)
        if isinstance(initializer, StackedInitializer) and str(jax.random.key_impl(key_of_leaf)) != LEAF_KEY_IMPL:
            # Layer by layer with lax.map: the same keys and values as the initializer's own
            # vmap, but the temporaries of XLA:CPU's threefry2x32 loop are one layer's size
            # instead of the whole stack's (peak 2x the stacked leaf instead of 4x). The
            # threefry4x32 leaf keys have no temporaries: their vmap is 2x faster than this.
            inner, layer_shape = initializer.inner, shape[1:]

            def one_layer(layer_key: PRNGKey) -> Array:
                return inner(layer_key, layer_shape, dtype)

            keys = jax.random.split(key_of_leaf, initializer.layers)
            value = cast(Array, jax.lax.map(one_layer, keys))  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax
        else:
            value = initializer(key_of_leaf, shape, dtype)
        return value.astype(dtype)

    # With a sharding, jit writes each shard on its device: the whole leaf never exists on
    # one device.
    compiled = jit(init, out_shardings=sharding)
    _COMPILED.put(cache_key, compiled)
    return compiled


def initialize_leaf(leaf: Leaf, key: PRNGKey, sharding: jax.sharding.Sharding | None = None) -> Array:
    """The initial value of one leaf: ``initializer(leaf_key(key, hash(path)), shape, dtype)``.

    With ``sharding``, the leaf is created already placed (each device computes its shard).
    """
    initializer = leaf.initializer if leaf.initializer is not None else default_initializer
    init = _leaf_initializer(initializer, leaf.shape, leaf.dtype, sharding)
    try:
        value = init(key, np.uint32(path_hash(leaf.path)))
    except Exception as error:
        error.add_note(
            f"zephyr.trace: raised by the initializer of `{leaf.name}` "
            f"({name_of(initializer)}, shape {leaf.shape}, dtype {leaf.dtype.name})."
        )
        raise
    if value.shape != leaf.shape:
        raise ValueError(
            f"`{leaf.name}`: the initializer {name_of(initializer)} returned "
            f"shape {value.shape}, expected {leaf.shape}"
        )
    return value
