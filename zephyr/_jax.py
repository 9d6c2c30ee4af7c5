"""Typed views of the JAX functions whose own annotations pyright strict reads as partial.

Each wrapper is a plain call with one local, explained opt-out, so that the rest of the
library is checked strictly without repeating the same ignore at every call site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax


PyTreeDef = Any
"""``jax.tree_util.PyTreeDef`` (jaxlib's class is not visible to the type checkers)."""


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list[Any], PyTreeDef]:
    """``jax.tree_util.tree_flatten`` with its result typed."""
    leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=is_leaf)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax annotates the leaves as partially unknown
    flat: list[Any] = list(leaves)  # pyright: ignore[reportUnknownArgumentType]  # see above
    return flat, cast("PyTreeDef", treedef)


def tree_unflatten(treedef: PyTreeDef, leaves: list[Any]) -> Any:
    """``jax.tree_util.tree_unflatten``."""
    return jax.tree_util.tree_unflatten(treedef, leaves)  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax


def eval_shape(f: Callable[..., Any], *args: Any) -> Any:
    """``jax.eval_shape``."""
    return jax.eval_shape(f, *args)  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax


def jit(f: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``jax.jit``."""
    compiled: Callable[..., Any] = jax.jit(f, **options)  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax
    return compiled


def register_pytree_node(
    cls: type[Any], flatten: Callable[[Any], tuple[tuple[Any, ...], Any]], unflatten: Callable[[Any, Any], Any]
) -> None:
    """``jax.tree_util.register_pytree_node``."""
    jax.tree_util.register_pytree_node(cls, flatten, unflatten)  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax


def shape_dtype_struct(shape: tuple[int, ...], dtype: Any) -> Any:
    """``jax.ShapeDtypeStruct(shape, dtype)``."""
    return jax.ShapeDtypeStruct(shape, dtype)  # jax leaves its __init__ unannotated


def enable_x64() -> bool:
    """Whether JAX runs with 64-bit types on (``jax_enable_x64``)."""
    return bool(jax.config.read("jax_enable_x64"))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # jax.config is untyped


def broadcast_in_dim(operand: jax.Array, shape: tuple[int, ...], dimensions: tuple[int, ...]) -> jax.Array:
    """``jax.lax.broadcast_in_dim``."""
    return jax.lax.broadcast_in_dim(operand, shape, dimensions)  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax


def reduce_sum(operand: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """``jax.lax.reduce_sum``."""
    return jax.lax.reduce_sum(operand, axes)  # pyright: ignore[reportUnknownMemberType]  # partial annotation in jax
