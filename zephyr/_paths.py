"""Parameter paths: how a leaf is named in messages and how its initial key is derived."""

from __future__ import annotations

import hashlib

PathKey = str | int
"""One step into a params tree: a string key or an integer index."""

Path = tuple[PathKey, ...]
"""The keys from the root of a params tree to one node, e.g. ``("encoder", 0, "weights")``."""


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
