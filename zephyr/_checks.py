"""Argument checks shared by every public function: each bad value gets a TypeError or
ValueError that names the function, the argument, what was expected and what was given.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def describe_value(value: object) -> str:
    """``value`` in a message: an array by type, shape and dtype, anything else by its repr.

    >>> import numpy as np
    >>> describe_value(np.zeros((2, 3))), describe_value("a")
    ('ndarray of shape (2, 3) and dtype float64', "str 'a'")
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {value!r}"


def _is_random_key(key: object) -> bool:
    dtype: Any = getattr(key, "dtype", None)
    raw_shape: Any = getattr(key, "shape", None)
    if dtype is None or raw_shape is None or not isinstance(key, jax.Array | np.ndarray):
        return False
    shape: tuple[int, ...] = tuple(raw_shape)
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return shape == ()
    return bool(dtype == np.uint32) and shape == (2,)


def check_random_key(key: object, who: str) -> None:
    """Raise a ``TypeError`` unless ``key`` is a single JAX random key.

    >>> import jax
    >>> check_random_key(jax.random.key(0), "dropout")
    >>> check_random_key(0, "dropout")
    Traceback (most recent call last):
    TypeError: dropout: `key` must be a JAX random key, jax.random.key(0) or jax.random.PRNGKey(0), got int 0
    """
    if not _is_random_key(key):
        raise TypeError(
            f"{who}: `key` must be a JAX random key, jax.random.key(0) or "
            f"jax.random.PRNGKey(0), got {describe_value(key)}"
        )
