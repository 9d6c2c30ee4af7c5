"""The cache of abstract runs: a warm ``trace`` of the same net only initializes.

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
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


from ._jax import enable_x64
from ._paths import Path
from ._trace import LeafSpec

_MAX_ENTRIES = 256
_entries: OrderedDict[Hashable, tuple[dict[Path, LeafSpec], ...]] = OrderedDict()
_lock = threading.Lock()


def clear_trace_cache() -> None:
    """Forget every cached abstract run, so the next ``trace`` runs each net's forward again.

    Example:
        >>> from zephyr import clear_trace_cache
        >>> clear_trace_cache()
    """
    with _lock:
        _entries.clear()


def function_key(f: Any) -> Hashable | None:
    """A hashable identity for ``f``: the function itself, or a holed/partial call's content."""
    content = getattr(f, "cache_key", None)
    if callable(content):  # a holed call: its function, filled arguments and holes
        key: Hashable | None = content()
        return key
    if isinstance(f, functools.partial):
        inner = function_key(f.func)
        if inner is None:
            return None
        key = ("partial", inner, f.args, tuple(sorted(f.keywords.items())))
    else:
        key = f
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


def lookup(key: Hashable) -> tuple[dict[Path, LeafSpec], ...] | None:
    """The cached specs for ``key`` (copies: callers may change them), or ``None``."""
    with _lock:
        found = _entries.get(key)
        if found is None:
            return None
        _entries.move_to_end(key)
    return tuple(dict(specs) for specs in found)


def store(key: Hashable, specs: tuple[dict[Path, LeafSpec], ...]) -> None:
    """Remember ``specs`` for ``key``, forgetting the least recently used beyond the bound."""
    with _lock:
        _entries[key] = tuple(dict(s) for s in specs)
        _entries.move_to_end(key)
        while len(_entries) > _MAX_ENTRIES:
            _entries.popitem(last=False)
