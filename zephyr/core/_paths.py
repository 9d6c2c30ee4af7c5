"""Parameter paths: how a leaf is named in messages, how its initial key is derived, and how
``{path: value}`` becomes nested dicts (the one nesting helper) and back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import jax

from ._types import Leaf, Path, PathKey


def format_path(path: Path, root: str = "params") -> str:
    """Render a path as the Python expression that reaches it.

    >>> format_path(("encoder", 0, "weights"))
    "params['encoder'][0]['weights']"
    """
    return root + "".join(f"[{key!r}]" for key in path)


def path_hash(path: Path) -> int:
    """A stable 32-bit integer for a path: the same in every process and Python version.

    Leaves fold this into the trace key, so a leaf's initial value depends only on the trace
    key and its own path (adding a layer elsewhere changes nothing else).

    >>> path_hash(("linear", "weights")) == path_hash(("linear", "weights"))
    True
    """
    text = "\x1f".join(f"{type(key).__name__}:{key}" for key in path)
    digest = hashlib.blake2b(text.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def check_key(parent: Path, key: object) -> PathKey:
    """Return ``key`` if it can name a parameter, else raise a ``TypeError`` naming the place."""
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise TypeError(
            f"`{format_path(parent)}[{key!r}]`: parameter keys must be str or int, "
            f"got {type(key).__name__}"
        )
    return key


def nest(values: Mapping[Path, Any], root: str = "params") -> dict[PathKey, Any]:
    """Nest ``{path: value}`` into plain dicts, checking that each dict's keys can be sorted.

    >>> nest({("a", "w"): 1, ("a", "b"): 2, ("c",): 3})
    {'a': {'w': 1, 'b': 2}, 'c': 3}
    """
    tree: dict[PathKey, Any] = {}
    for path, value in values.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    _check_sortable(tree, (), root)
    return tree


def _check_sortable(tree: dict[PathKey, Any], path: Path, root: str) -> None:
    kinds = {type(key) for key in tree}
    if len(kinds) > 1:
        keys = ", ".join(repr(key) for key in tree)
        raise TypeError(
            f"`{format_path(path, root)}` mixes int and str keys ({keys}); jax.tree_util sorts dict "
            "keys and cannot order those: use one kind of key per level"
        )
    for key, child in tree.items():
        if isinstance(child, dict):
            _check_sortable(cast("dict[PathKey, Any]", child), path + (key,), root)


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
