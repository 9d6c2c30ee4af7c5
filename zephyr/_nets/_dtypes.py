"""Computation dtypes of the nets, as Flax chooses them."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._types import DType


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
    with jax.numpy_dtype_promotion("standard"):  # an explicit choice, not an implicit cast
        for array in arrays[1:]:
            result = np.dtype(jnp.promote_types(result, array.dtype))
    return result
