"""Strict JAX for every test, and run-time shape checking on for the whole run."""

from __future__ import annotations

import os

os.environ.setdefault("ZEPHYR_TYPECHECK", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key() -> jax.Array:
    """A fresh typed PRNG key."""
    return jax.random.key(0)
