"""Parameter paths: how a leaf is named in messages, how its initial key is derived, and how
``{path: value}`` becomes nested dicts (the one nesting helper).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ._types import Path, PathKey, name_of


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


def find_below(tree: object, target: object, depth: int = 4) -> Path | None:
    """The path at which ``target`` (by identity) sits in the nested mappings ``tree``, looking
    ``depth`` levels down; ``None`` if it is not there.

    >>> leaf = [1]
    >>> find_below({"a": {0: leaf}}, leaf)
    ('a', 0)
    """
    if depth <= 0 or not isinstance(tree, Mapping):
        return None
    try:
        items = list(cast("Mapping[PathKey, object]", tree).items())
    except TypeError:  # a mapping that cannot be listed (a trace's params node)
        return None
    for key, value in items:
        if value is target:
            return (key,)
    for key, value in items:
        if isinstance(value, Mapping):
            found = find_below(cast(object, value), target, depth - 1)
            if found is not None:
                return (key, *found)
    return None


def params_origin(params: object, calls: Sequence[tuple[Any, ...]]) -> tuple[Path, Any]:
    """Where ``params`` sits in the params of the ``@flexible`` calls running around it.

    ``calls`` are the running calls (``core._context.running_calls()``: innermost last, each
    ``(resolver, fn, args, kwargs)``). Returns the path of ``params`` from the params of the
    outermost call that holds it, and that call's function (``None`` if no call holds it).

    >>> inner = {"w": 1}
    >>> params_origin(inner, [(None, "mlp", ({"layer": inner},), {}), (None, "dense", (inner,), {})])
    (('layer',), 'mlp')
    """
    path: Path = ()
    outer: Any = None
    current = params
    for call in reversed(calls):
        fn, args = call[1], call[2]
        given = args[0] if args else None
        if given is current:
            outer = fn
            continue
        found = find_below(given, current)
        if found is None:
            break
        path, outer, current = found + path, fn, given
    return path, outer


class MissingParam(KeyError, ValueError):
    """A key a net asked its params for at apply time and did not find (a ``KeyError``, and a
    ``ValueError``: the params do not match the model).

    Raised by ``@flexible`` calls: the innermost one whose params lack the key creates it,
    with the path of those params from the params of the outermost ``@flexible`` call that
    holds them (found among the running calls), so the message names the whole path.

    >>> str(MissingParam("bias", ("encoder", 0), ["weights"], "linear", "model"))
    "`params['encoder'][0]['bias']` is missing (asked for by `linear` in `model`; keys at `params['encoder'][0]`: 'weights'): the params do not match this model"
    """

    def __init__(self, key: Any, path: tuple[Any, ...], keys: list[Any], net: str = "", outer: str = "") -> None:
        super().__init__(key)
        self.key, self.path, self.keys = key, path, keys
        self.net, self.outer = net, outer

    def __str__(self) -> str:
        where = format_path(self.path, "params")
        keys = ", ".join(repr(k) for k in self.keys) or "none"
        asked = ""
        if self.net:
            asked = f"asked for by `{self.net}`" + (f" in `{self.outer}`" if self.outer and self.outer != self.net else "") + "; "
        return (
            f"`{format_path((*self.path, self.key))}` is missing ({asked}keys at `{where}`: {keys}): "
            "the params do not match this model"
        )


def missing_param(error: KeyError, given: object, calls: Sequence[tuple[Any, ...]], net: str) -> KeyError:
    """``error`` raised by the net ``net`` called with ``given`` params, as a :class:`MissingParam`
    naming the whole path of the missing key (``calls``: the running ``@flexible`` calls).

    A ``KeyError`` of a key ``given`` lacks becomes a :class:`MissingParam`; one made by a net
    further in, or anything else (or ``given`` not a mapping), is returned as it is.
    """
    if isinstance(error, MissingParam) or not isinstance(given, Mapping):
        return error
    params: Mapping[Any, Any] = given  # pyright: ignore[reportUnknownVariableType]  # isinstance narrows to Mapping[Unknown, Unknown]
    key = error.args[0] if len(error.args) == 1 else None
    try:
        present = key in params
    except TypeError:  # an unhashable key
        return error
    if present:
        return error
    path, outer = params_origin(cast(object, given), calls)
    return MissingParam(key, path, list(params), net, name_of(outer) if outer is not None else "")
