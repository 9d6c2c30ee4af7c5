"""Run-time shape checking of annotated nets: beartype + jaxtyping, switched on or off.

With checking off (the default) a net's call costs nothing extra: the flexible wrapper reads
one context variable. With checking on, each call of an annotated @flexible net is checked:
its array arguments and return value by ``jaxtyping.jaxtyped(typechecker=beartype)``, and
its params leaves against the dims its params annotation gives them. Under ``jax.jit`` the
checks run once, while jit traces; eagerly, likewise once per call signature: a check depends
only on the arguments' structure, types, shapes, dtypes and plain values, so a call whose
signature passed before is not checked again (as jit does not trace it again).
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Hashable
from typing import Any, cast

import jax
import numpy as np

from beartype import beartype
from jaxtyping import jaxtyped  # pyright: ignore[reportUnknownVariableType]  # jaxtyping's decorator is partially annotated

from ..core._cache import LRU
from ..core._context import CHECKING
from ..core._paths import format_path
from ..core._types import name_of
from ._dims import Bound
from ._signature import ParamsLayout, bound_dims, leaf_specs, params_layout

_CHECKED: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = weakref.WeakKeyDictionary()

# The call signatures each function's check passed (weakly keyed by the function, as jit's
# cache is; at most 256 signatures each).
_PASSED: weakref.WeakKeyDictionary[Callable[..., Any], LRU[bool]] = weakref.WeakKeyDictionary()
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)


class _Switch:
    """The value of ``checking(...)``: already applied process-wide; as a context manager, it
    takes that back and applies the setting to the ``with`` block's context only."""

    def __init__(self, enabled: bool, previous: bool) -> None:
        self._enabled = enabled
        self._previous = previous
        self._token: Any = None

    def __enter__(self) -> None:
        CHECKING.value = self._previous
        self._token = CHECKING.set(self._enabled)

    def __exit__(self, *exc: object) -> None:
        CHECKING.reset(self._token)


def checking(enabled: bool | None = None) -> Any:
    """Turn run-time shape checking of annotated nets on or off, or ask whether it is on.

    ``checking()`` returns the current setting. ``checking(True)`` turns it on for the whole
    process (every thread, worker threads too); ``with checking(True):`` turns it on for the
    block only, in its own context (thread or task), and restores the previous setting on
    exit. The environment variable ``ZEPHYR_TYPECHECK=1`` turns it on at import.

    Example:
        >>> from zephyr.typing import checking
        >>> with checking(True):
        ...     checking()
        True
        >>> with checking(False):
        ...     checking()
        False
    """
    if enabled is None:
        return CHECKING.get()
    previous, CHECKING.value = CHECKING.value, bool(enabled)
    return _Switch(bool(enabled), previous)


def is_checking() -> bool:
    """Whether run-time checking is on in this context.

    >>> from zephyr.typing import checking
    >>> with checking(False):
    ...     is_checking()
    False
    """
    return CHECKING.get()


def _checked(fn: Callable[..., Any], layout: ParamsLayout | None) -> Callable[..., Any]:
    checked = _CHECKED.get(fn)
    if checked is None:
        checked = _make_checked(fn, layout)
        _CHECKED[fn] = checked
    return checked


def _make_checked(fn: Callable[..., Any], layout: ParamsLayout | None) -> Callable[..., Any]:
    annotations = dict(getattr(fn, "__annotations__", {}) or {})
    if layout is not None:
        # beartype does not look inside a TypedDict of arrays: the params are checked by
        # zephyr itself, so the copy checked by jaxtyping leaves them out.
        annotations.pop(layout.params_name, None)
    if not annotations or not isinstance(fn, types.FunctionType):
        return fn  # nothing to check
    target = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    target.__kwdefaults__ = fn.__kwdefaults__
    target.__qualname__ = fn.__qualname__
    target.__module__ = fn.__module__
    target.__annotations__ = annotations
    if not fn.__name__.isidentifier():  # a lambda: jaxtyping needs a name it can compile
        target.__name__ = "lambda_"
    return jaxtyped(typechecker=beartype)(target)


def check_params(fn: Callable[..., Any], layout: ParamsLayout, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Check the params leaves of one call of ``fn`` against its annotation."""
    bound = bound_dims(fn, layout, args, kwargs)
    arguments = layout.signature.bind(*args, **kwargs).arguments
    params = arguments[layout.params_name]
    for spec in leaf_specs(fn, layout, (), bound):
        value: Any = params
        for key in spec.path:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise ValueError(
                    f"`{name_of(fn)}`: `{format_path(spec.path)}` is missing from the params"
                ) from None
        actual = tuple(getattr(value, "shape", ()))
        if actual != spec.shape:
            leaf = next(l for l in layout.leaves if l.path == spec.path)
            cause = bound.explain(leaf.dims) if isinstance(bound, Bound) else ""
            raise ValueError(
                f"`{name_of(fn)}`: `{format_path(spec.path)}`: expected shape {spec.shape} "
                f"({leaf.annotation.dim_str!r}), got {actual}" + (f": {cause}" if cause else "")
            )


def _check_key(value: object) -> Hashable | None:
    """What a check of ``value`` depends on, or ``None`` when that is not known.

    A plain value by its type and value; an array by its type, shape and dtype; a ``dict``,
    ``list`` or ``tuple`` by its items; a function (checked by ``callable``) by its type.
    Anything else (a pytree class of its own, a trace's params node) is ``None``: a call with
    such an argument is always checked.

    >>> import jax.numpy as jnp
    >>> _check_key(({"w": jnp.ones((2, 3))}, [8])) == _check_key(({"w": jnp.zeros((2, 3))}, [8]))
    True
    >>> _check_key([8, 3]) == _check_key([8, 4]), _check_key((object(),))
    (False, None)
    """
    kind: type[object] = type(value)
    if kind in _PLAIN:
        plain: Hashable = value
        return (kind, plain)
    if kind is dict or kind is list or kind is tuple:
        container = cast("dict[Hashable, object] | list[object] | tuple[object, ...]", value)
        items = container.items() if isinstance(container, dict) else enumerate(container)
        keys: list[Hashable] = [kind]
        for name, item in items:
            key = _check_key(item)
            if key is None:
                return None
            keys.append((name, key))
        return tuple(keys)
    if isinstance(value, jax.Array | np.ndarray):
        array = cast(jax.Array, value)  # an np.ndarray has the same shape and dtype
        return (kind, array.shape, array.dtype)
    if isinstance(value, np.dtype):
        return (kind, cast(Hashable, value))
    if isinstance(value, _FUNCTIONS) or kind.__name__ in ("custom_jvp", "custom_vjp", "PjitFunction"):
        return (kind,)  # checked by callable(): the type tells
    return None


def call_checked(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` with its annotations checked (checking is on), once per call signature."""
    key = _check_key((args, kwargs))
    passed = _PASSED.get(fn) if key is not None else None
    if passed is not None and passed.get(key) is not None:
        return fn(*args, **kwargs)
    layout = params_layout(fn)
    if layout is not None:
        check_params(fn, layout, args, kwargs)
    out = _checked(fn, layout)(*args, **kwargs)
    if key is not None:
        if passed is None:
            passed = _PASSED.setdefault(fn, LRU(256))
        passed.put(key, True)
    return out
