"""Tree utilities that ``jax.tree_util`` and optax do not already give: merge, path-aware map,
and (for tags, summary and checkpoints) zephyr paths from jax key paths.

Use ``jax.tree.map`` / ``jax.tree_util.tree_map_with_path`` and ``optax.apply_updates`` for
everything else (``optax.apply_updates`` takes any pytree, e.g. ``(params, state)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import jax

from .core._types import Leaf, Params, Path, PathKey, format_path


def _key_of(entry: object) -> PathKey:
    for attr in ("key", "idx", "name"):
        value = getattr(entry, attr, None)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return value
    return str(entry)


def path_of(key_path: Iterable[object]) -> Path:
    """A zephyr path from a ``jax.tree_util`` key path: ``(DictKey('a'), SequenceKey(0))`` → ``('a', 0)``.

    >>> import jax
    >>> [path_of(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": [1]})[0]]
    [('a', 0)]
    """
    return tuple(_key_of(entry) for entry in key_path)


def is_leaf_record(node: object) -> bool:
    """Whether ``node`` is a :class:`Leaf` (a leaf of a tree of leaf records)."""
    return isinstance(node, Leaf)


def flatten_with_paths(
    tree: object, is_leaf: Callable[[Any], bool] | None = is_leaf_record
) -> tuple[list[tuple[Path, Any]], Any]:
    """``jax.tree_util.tree_flatten_with_path`` with zephyr paths (``Leaf`` records are leaves)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax's KeyPath is untyped
    out: list[tuple[Path, Any]] = [(path_of(key_path), node) for key_path, node in flat]  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]  # same
    return out, treedef  # pyright: ignore[reportUnknownVariableType]  # jax's PyTreeDef is untyped


def merge(*trees: Params | Mapping[Any, object]) -> dict[PathKey, Any]:
    """Join nested dicts with disjoint leaves into one (the inverse of ``tags.partition``).

    Args:
        *trees: nested dicts; a path may be a leaf in at most one of them.

    Returns:
        A new nested dict with every leaf of every tree (the inputs are not changed).

    Raises:
        ValueError: two trees have a leaf (or a leaf and a subtree) at the same path.

    Example:
        >>> from zephyr import tree
        >>> tree.merge({"a": {"w": 1}}, {"a": {"b": 2}, "c": 3})
        {'a': {'w': 1, 'b': 2}, 'c': 3}
    """
    merged: dict[PathKey, Any] = {}
    for i, source in enumerate(trees):
        if not isinstance(source, Mapping):
            raise TypeError(f"zephyr.tree.merge: tree {i} is {type(source).__name__}, not a nested dict")
        _merge_into(merged, cast("Mapping[PathKey, Any]", source), ())
    return merged


def _merge_into(target: dict[PathKey, Any], source: Mapping[PathKey, Any], path: Path) -> None:
    """Add ``source``'s leaves to ``target``, copying its dicts (a new subtree starts empty)."""
    for key, value in source.items():
        here = path + (key,)
        if isinstance(value, Mapping) and isinstance(target.get(key, {}), dict):
            child: Mapping[PathKey, Any] = value  # pyright: ignore[reportUnknownVariableType]  # nested params
            _merge_into(target.setdefault(key, {}), child, here)
        elif key not in target:
            target[key] = value
        else:
            raise ValueError(f"zephyr.tree.merge: `{format_path(here)}` is in more than one tree")


def map_with_path(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``jax.tree.map`` that also hands ``f`` each leaf's path as plain keys, ``('encoder', 0, 'w')``.

    Like ``jax.tree_util.tree_map_with_path``, but the path is zephyr's tuple of str and
    int keys (the keys you index params with), not ``DictKey``/``SequenceKey`` objects.

    Args:
        f: ``f(path, leaf, *rest_leaves)``.
        tree: the tree whose leaves are mapped.
        *rest: more trees with ``tree``'s structure (or with it as a prefix).

    Returns:
        A tree shaped like ``tree``.

    Example:
        >>> from zephyr import tree
        >>> tree.map_with_path(lambda path, x: (path, x), {"a": [1, 2]})
        {'a': [(('a', 0), 1), (('a', 1), 2)]}
    """

    def call(key_path: tuple[object, ...], leaf: Any, *more: Any) -> Any:
        return f(path_of(key_path), leaf, *more)

    return jax.tree_util.tree_map_with_path(call, tree, *rest)
