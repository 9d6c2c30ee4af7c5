"""Small typed helpers for tests: params trees are ``Params`` to the checkers, leaves arrays."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def shapes(tree: object) -> Any:
    """The shapes of a params tree, as nested dicts of tuples."""
    return jax.tree.map(jnp.shape, tree)


def leaf(tree: object, *path: str | int) -> jax.Array:
    """The array at ``path`` in a params tree."""
    node: Any = tree
    for key in path:
        node = node[key]
    assert isinstance(node, jax.Array), f"{path} is not a leaf"
    return node


def abstract(shape: tuple[int, ...], dtype: Any = jnp.float32) -> Any:
    """``jax.ShapeDtypeStruct(shape, dtype)``: a sample input that is only a shape."""
    return jax.ShapeDtypeStruct(shape, dtype)  # jax leaves it unannotated
