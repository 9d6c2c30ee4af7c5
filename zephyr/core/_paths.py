"""Parameter paths: how its initial key is derived from a leaf's path, which keys a path may
hold, and how ``{path: value}`` becomes nested dicts (the one nesting helper).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from ._types import Path, PathKey, format_path


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
