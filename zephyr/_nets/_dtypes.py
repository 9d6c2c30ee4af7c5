"""Computation dtypes of the nets, as Flax chooses them, cheap casts and bias adds, and
whether a mask or bias shape broadcasts to an array's."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core._types import DType


def compute_dtype(dtype: DType | None, *arrays: Any) -> np.dtype[Any]:
    """``dtype`` if given, else the promotion of the arrays' dtypes (bf16 x with f32 params: f32).

    An explicit promotion, so it holds under ``jax_numpy_dtype_promotion=strict``.

    >>> import jax.numpy as jnp
    >>> compute_dtype(None, jnp.ones(1, jnp.bfloat16), jnp.ones(1)).name
    'float32'
    """
    if dtype is not None:
        return np.dtype(dtype)
    result: np.dtype[Any] = np.dtype(arrays[0].dtype)
    if all(array.dtype == result for array in arrays[1:]):
        return result  # the common case: no promotion to look up
    with jax.numpy_dtype_promotion("standard"):  # an explicit choice, not an implicit cast
        for array in arrays[1:]:
            result = np.dtype(jnp.promote_types(result, array.dtype))
    return result


def at_least_float32(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype``, or float32 if it is narrower: statistics and angles of bf16 inputs are f32.

    >>> import jax.numpy as jnp
    >>> at_least_float32(np.dtype(jnp.bfloat16)).name, at_least_float32(np.dtype("float64")).name
    ('float32', 'float64')
    """
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


def broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` unchanged.

    >>> broadcasts((1, 3), (2, 3)), broadcasts((2, 3), (3,))
    (True, False)
    """
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def cast(x: Array, dtype: np.dtype[Any]) -> Array:
    """``x.astype(dtype)``, without an eager op when ``x`` already has that dtype.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones(2)
    >>> cast(x, x.dtype) is x
    True
    """
    return x if x.dtype == dtype else x.astype(dtype)


def add_trailing(y: Array, b: Array) -> Array:
    """``y + b`` for ``b`` shaped like the trailing axes of ``y`` (a bias).

    Broadcasts explicitly only when JAX is set to refuse implicit rank promotion
    (``jax_numpy_rank_promotion`` "raise" or "warn"); the explicit broadcast is an eager op
    of its own, so the default setting takes the cheaper implicit path.

    >>> import jax.numpy as jnp
    >>> add_trailing(jnp.zeros((2, 3)), jnp.arange(3.0)).tolist()
    [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    """
    promotion: object = getattr(jax.config, "jax_numpy_rank_promotion")
    if y.ndim == b.ndim or promotion == "allow":
        return y + b
    return y + jnp.broadcast_to(b, y.shape)
