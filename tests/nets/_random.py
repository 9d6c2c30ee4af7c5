"""Random inputs and params for the nets' reference tests, and their float64 comparison."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from zephyr.typing import Params


def normal(key: jax.Array, i: int, shape: tuple[int, ...]) -> jax.Array:
    """Standard normal values of ``shape``, the ``i``-th draw of ``key``."""
    return jax.random.normal(jax.random.fold_in(key, i), shape)


def perturb(params: Params, key: jax.Array) -> Params:
    """Every leaf moved by 0.3 * normal noise (norm scales and offsets too), so a reference sees them all."""
    keys = iter(jax.random.split(key, len(jax.tree.leaves(params))))

    def leaf(a: jax.Array) -> jax.Array:
        return a + 0.3 * jax.random.normal(next(keys), a.shape)

    result: Params = jax.tree.map(leaf, params)
    return result


def close(a: Any, b: Any, tol: float = 1e-5) -> None:
    """``a`` and ``b`` equal within ``tol`` (absolute and relative), compared in float64."""
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol)
