"""Default initializers and the cache key that lets equal initializers share compiled code."""

from __future__ import annotations

from collections.abc import Hashable
from types import CellType
from typing import cast

import jax
import jax.numpy as jnp
from jax import Array

from ._types import DType, Initializer, PRNGKey, Shape

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


def ones(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """All ones, whatever the key: the usual initial scale of a normalization.

    >>> import jax
    >>> ones(jax.random.key(0), (2,)).tolist()
    [1.0, 1.0]
    """
    del key
    return jnp.ones(shape, dtype)  # pyright: ignore[reportUnknownMemberType]  # jax's device parameter is partially typed


def zeros(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """All zeros, whatever the key.

    >>> import jax
    >>> zeros(jax.random.key(0), (2,)).tolist()
    [0.0, 0.0]
    """
    del key
    return jnp.zeros(shape, dtype)  # pyright: ignore[reportUnknownMemberType]  # jax's device parameter is partially typed


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
