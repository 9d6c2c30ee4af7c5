"""Parameter paths: how a leaf is named in messages, how its initial key is derived, and how
``{path: value}`` becomes nested dicts (the one nesting helper).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from ._types import Path, PathKey


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


class MissingParam(KeyError):
    """A key a net asked its params for at apply time and did not find (a ``KeyError``).

    Raised by ``@flexible`` calls: the innermost one whose params lack the key creates it;
    each enclosing ``@flexible`` call puts the key it passed down in front of ``path``, so the
    message names the whole path asked for, from the outermost net's params.

    >>> str(MissingParam("bias", ("encoder", 0), ["weights"]))
    "params['encoder'][0] has no key 'bias' (keys there: 'weights'); the params do not match this model"
    """

    def __init__(self, key: Any, path: tuple[Any, ...], keys: list[Any]) -> None:
        super().__init__(key)
        self.key, self.path, self.keys = key, path, keys
        self.params_at: object = None  # the mapping the path starts at (to extend it upwards)

    def __str__(self) -> str:
        where = format_path(self.path, "params")
        keys = ", ".join(repr(k) for k in self.keys) or "none"
        return f"{where} has no key {self.key!r} (keys there: {keys}); the params do not match this model"


def missing_param(error: KeyError, given: object) -> KeyError:
    """``error`` raised by a net called with ``given`` params, with the path of the missing key.

    A ``KeyError`` of a key ``params`` lacks becomes a :class:`MissingParam`; one raised
    further down gains the key under which ``params`` holds the mapping it started at.
    Anything else (or ``given`` not a mapping) is returned as it is.
    """
    if not isinstance(given, Mapping):
        return error
    params: Mapping[Any, Any] = given  # pyright: ignore[reportUnknownVariableType]  # isinstance narrows to Mapping[Unknown, Unknown]
    if isinstance(error, MissingParam):
        for key, value in params.items():
            if value is error.params_at:
                error.path = (key, *error.path)
                error.params_at = params
                break
        return error
    key = error.args[0] if len(error.args) == 1 else None
    try:
        present = key in params
    except TypeError:  # an unhashable key
        return error
    if present:
        return error
    found = MissingParam(key, (), list(params))
    found.params_at = params
    return found
