"""Caches of the engine: one bounded, thread-safe LRU, and the cache of abstract runs.

Like ``jax.jit``, ``trace`` treats the net as a pure function of its arguments: the leaves
it declares depend only on the function, the shapes and dtypes of its array arguments and
the values of its other arguments (hyperparameters). So the result of the abstract run is
cached under exactly that key, and a second ``trace`` with a new key skips the forward.
A net whose structure depends on mutable global state must be traced after
:func:`clear_trace_cache` (or be a new function object), exactly as with ``jax.jit``.
"""

from __future__ import annotations

import functools
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from .._jax import enable_x64
from ._types import Leaf, Path

V = TypeVar("V")


class LRU(Generic[V]):
    """A bounded mapping that forgets the least recently used entry; safe across threads.

    >>> cache: LRU[int] = LRU(2)
    >>> cache.put("a", 1); cache.put("b", 2); cache.get("a"); cache.put("c", 3)
    1
    >>> cache.get("b") is None, cache.get("a"), len(cache)
    (True, 1, 2)
    """

    def __init__(self, max_entries: int, on_evict: Callable[[V], object] | None = None) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._on_evict = on_evict  # called with each value forgotten for the bound

    def get(self, key: Hashable) -> V | None:
        """The value of ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Remember ``value`` for ``key``, forgetting the oldest entries beyond the bound."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            evicted = [self._entries.popitem(last=False)[1] for _ in range(len(self._entries) - self.max_entries)]
        if self._on_evict is not None:
            for old in evicted:
                self._on_evict(old)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


Specs = tuple[dict[Path, Leaf], ...]
"""The leaves each root (params; params and state) declared, by path."""

_TRACES: LRU[Specs] = LRU(256)


def clear_trace_cache() -> None:
    """Forget every cached abstract run, so the next ``trace`` runs each net's forward again.

    Example:
        >>> from zephyr import clear_trace_cache
        >>> clear_trace_cache()
    """
    _TRACES.clear()


def weak_identity(f: object) -> Hashable:
    """``f`` by a weak reference where it has one: a cache key that does not keep ``f`` (and
    what its closure captures) alive. Equal while ``f`` lives; a dead key matches nothing.

    >>> def f(): ...
    >>> weak_identity(f) == weak_identity(f), weak_identity(1)
    (True, 1)
    """
    try:
        if isinstance(f, types.MethodType):  # a new bound method on every access
            return weakref.WeakMethod(f)
        return weakref.ref(f)
    except TypeError:  # no weak references (ints, tuples, some builtins): the value itself
        return f  # hashable or not: function_key checks


def function_key(f: Any) -> Hashable | None:
    """A hashable identity for ``f``: ``f`` by weak reference, or a partial call's content.

    The cache must not keep alive what a traced function captures (``jax.jit``'s own cache
    holds its functions weakly too), so a plain function is keyed by a weak reference.
    """
    content = getattr(f, "cache_key", None)
    if callable(content):  # a call that names its own content (function and arguments given)
        key: Hashable | None = content()
        return key
    if isinstance(f, functools.partial):
        inner = function_key(f.func)
        if inner is None:
            return None
        key = ("partial", inner, f.args, tuple(sorted(f.keywords.items())))
    else:
        key = weak_identity(f)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def signature_key(leaves: list[Any], treedef: Any, is_array: Callable[[Any], bool]) -> Hashable | None:
    """The arguments as the abstract run sees them: array shapes and dtypes, other values."""
    signature: list[Hashable] = []
    for leaf in leaves:
        if is_array(leaf):
            weak = bool(getattr(leaf, "weak_type", False))
            shape: tuple[int, ...] = tuple(getattr(leaf, "shape"))
            signature.append((shape, str(leaf.dtype), weak))
        else:
            try:
                hash(leaf)
            except TypeError:
                return None
            value: Hashable = leaf
            signature.append((type(value).__qualname__, type(value).__module__, value))
    return (treedef, tuple(signature), enable_x64())


def cached_specs(key: Hashable) -> Specs | None:
    """The cached specs for ``key`` (copies: callers may change them), or ``None``."""
    found = _TRACES.get(key)
    return None if found is None else tuple(dict(specs) for specs in found)


def store_specs(key: Hashable, specs: Specs) -> None:
    """Remember ``specs`` for ``key``."""
    _TRACES.put(key, tuple(dict(s) for s in specs))
