"""Fixtures shared by the tests (the JAX settings for the run are in the root conftest.py)."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture
def key() -> jax.Array:
    """A fresh typed PRNG key."""
    return jax.random.key(0)
