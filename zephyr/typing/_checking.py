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

import contextvars
import functools
import os
import threading
import types
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, cast

import jax
import numpy as np

from beartype import beartype
from jaxtyping import jaxtyped  # pyright: ignore[reportUnknownVariableType]  # jaxtyping's decorator is partially annotated

from ..core._trace import check_leaks_when, stand_in_name
from ..core._types import Path, PathKey, format_path, name_of
from ._calls import calls_state, params_origin
from ._dims import call_target
from ._signature import ParamsLayout, ParamsLevel, bound_dims, leaf_specs, params_layout

# The call signatures each function's check passed, as the keys of a dict (weakly keyed by the
# function, as jit's cache is). A hit is one lock-free dict lookup; an insertion takes the lock
# and forgets the oldest signature beyond _MAX_SIGNATURES (it is then checked again).
_PASSED: weakref.WeakKeyDictionary[Callable[..., Any], dict[Hashable, None]] = weakref.WeakKeyDictionary()
_PASSED_LOCK = threading.Lock()
_MAX_SIGNATURES = 256
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)


CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "zephyr_checking", default=os.environ.get("ZEPHYR_TYPECHECK", "").strip().lower() in {"1", "true", "yes", "on"}
)
"""Whether annotated nets check their arguments at run time (:func:`checking`).

A context variable: each thread (and each asyncio task) has its own setting, so
``checking(True)`` in one thread never changes another's. A thread starts from the process
default, ``ZEPHYR_TYPECHECK`` read at import. Read on every call of every net (``.get()``:
one context-variable lookup); nets read it through :func:`is_checking`.
"""

# Checking is the debug mode: ``trace`` also checks that no tracer leaks out of the net.
check_leaks_when(CHECKING.get)


class _Switch:
    """The value of ``checking(True/False)``: the setting, already applied to this context; as
    a context manager, it puts the previous setting back at the end of the ``with`` block."""

    __slots__ = ("_token",)

    def __init__(self, token: contextvars.Token[bool]) -> None:
        self._token = token

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        CHECKING.reset(self._token)


def checking(enabled: bool | None = None) -> Any:
    """Turn run-time shape checking of annotated nets on or off, or ask whether it is on.

    ``checking()`` returns the current setting. ``checking(True)`` turns it on in this context:
    this thread (or asyncio task) and the code it calls, never another thread; ``with
    checking(True):`` does so for the block only, and restores the previous setting on exit.
    A new thread starts from the process default, the environment variable
    ``ZEPHYR_TYPECHECK=1`` read at import (or runs with ``contextvars.copy_context().run``
    to inherit the caller's setting).

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
    return _Switch(CHECKING.set(bool(enabled)))


def is_checking() -> bool:
    """Whether run-time checking is on in this context.

    >>> from zephyr.typing import checking
    >>> with checking(False):
    ...     is_checking()
    False
    """
    return CHECKING.get()


def _checked(fn: Callable[..., Any], layout: ParamsLayout | None) -> Callable[..., Any]:
    """``fn`` checked by jaxtyping + beartype: its function's checked copy, made once and kept
    on the function itself (never in a table: a table's value would hold its own key through
    the copy's closure, and a recursive closure or a bound method's object would never be freed)."""
    target = call_target(fn)
    if target is None:
        return fn  # nothing to check: no Python function holds its annotations
    function, args, kwargs = target
    name = "__zephyr_checked__" if layout is None else f"__zephyr_checked_{layout.params_name}__"
    cached = function.__dict__.get(name)
    if cached is None or cached[0]() is not function:  # none, or copied by functools.wraps
        cached = (weakref.ref(function), _make_checked(function, layout))
        setattr(function, name, cached)
    checked: Callable[..., Any] = cached[1]
    return functools.partial(checked, *args, **kwargs) if args or kwargs else checked


def _make_checked(fn: types.FunctionType, layout: ParamsLayout | None) -> Callable[..., Any]:
    annotations = dict(getattr(fn, "__annotations__", {}) or {})
    if layout is not None:
        # beartype does not look inside a TypedDict of arrays: the params are checked by
        # zephyr itself, so the copy checked by jaxtyping leaves them out.
        annotations.pop(layout.params_name, None)
    if not annotations:
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


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)}"
    if isinstance(value, Mapping):
        return f"a subtree (keys {_keys_text(cast('Mapping[object, object]', value))})"
    return f"{type(value).__name__} {value!r}"


def _keys_text(keys: Iterable[object]) -> str:
    return ", ".join(repr(k) for k in keys) or "none"


def _not_a_subtree(who: str, path: Path, level: ParamsLevel, value: object) -> TypeError:
    declared = stand_in_name(value)
    if declared is not None:  # during trace: a leaf declared earlier, passed on as params
        return TypeError(
            f"{who}: `{declared}` is declared as a leaf ({_describe(value)}), and "
            f"is passed as params that its annotation `{level.name}` makes a subtree (keys {_keys_text(level.keys)}): "
            "one path is either an array or a subtree"
        )
    return TypeError(
        f"{who}: `{format_path(path)}` must be a subtree (`{level.name}`: keys {_keys_text(level.keys)}), "
        f"got {_describe(value)}: the params do not match this model"
    )


def _check_structure(who: str, layout: ParamsLayout, params: object, prefix: Path) -> None:
    """The keys each ``TypedDict`` level of ``layout`` allows: a missing required key, an extra
    key, a subtree where a leaf is declared or a leaf where a subtree is, each named."""
    for level in layout.levels:
        value: object = params
        for key in level.path:  # reach the level (an absent optional subtree has nothing to check)
            value = cast("Mapping[PathKey, object]", value).get(key) if isinstance(value, Mapping) else None
            if value is None:
                break
        else:
            path = prefix + level.path
            if not isinstance(value, Mapping):
                raise _not_a_subtree(who, path, level, value)
            node = cast("Mapping[PathKey, object]", value)
            # A level with no keys at all (`NoParams`: pooling, dropout) takes no params and
            # ignores what it is given: the seed's nets pass their whole params to every call.
            extra = [key for key in node if key not in level.keys] if level.keys else []
            if extra:
                raise ValueError(
                    f"{who}: `{format_path((*path, extra[0]))}` is not in the params annotation "
                    f"`{level.name}` (its keys: {_keys_text(level.keys)}; "
                    f"{'extra keys' if len(extra) > 1 else 'extra key'} at `{format_path(path)}`: {_keys_text(extra)}): "
                    "the params do not match this model"
                )
            for key in level.keys:
                if key not in node:
                    if key in level.required and (key in level.leaves or key in level.subtrees):
                        raise ValueError(
                            f"{who}: `{format_path((*path, key))}` is missing (keys at `{format_path(path)}`: "
                            f"{_keys_text(node)}): the params do not match this model"
                        )
                    continue
                item = node[key]
                if key in level.leaves and isinstance(item, Mapping):
                    raise TypeError(
                        f"{who}: `{format_path((*path, key))}` must be an array (`{level.name}` declares a leaf), "
                        f"got {_describe(cast(object, item))}: the params do not match this model"
                    )


def check_params(fn: Callable[..., Any], layout: ParamsLayout, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Check the params of one call of ``fn`` against its annotation: the keys of each
    ``TypedDict`` level, then the shape of each leaf it declares. Errors name the path from
    the params of the outermost running ``@flexible`` call that holds these params."""
    arguments = layout.signature.bind(*args, **kwargs).arguments
    params = arguments[layout.params_name]
    prefix, outer = params_origin(params, calls_state().stack)
    who = f"`{name_of(fn)}`" + (f" (in `{name_of(outer)}`)" if outer is not None and outer is not fn else "")
    _check_structure(who, layout, params, prefix)
    if not layout.leaves:
        return
    bound = bound_dims(fn, layout, args, kwargs)
    for leaf, spec in zip(layout.leaves, leaf_specs(fn, layout, (), bound)):
        value: Any = params
        for key in spec.path:
            value = value[key]  # there: the structure is checked
        actual = tuple(getattr(value, "shape", ()))
        if actual != spec.shape:
            cause = bound.explain(leaf.dims)
            raise ValueError(
                f"{who}: `{format_path(prefix + spec.path)}`: expected shape {spec.shape} "
                f"({leaf.annotation.dim_str!r}), got {actual}" + (f": {cause}" if cause else "")
            )


# How ``_extend_key`` reads a value, by its exact type (``_kind_of`` adds a type on first sight).
_PLAIN_VALUE, _JAX_ARRAY, _ARRAY, _FUNCTION, _DICT, _SEQUENCE, _UNKNOWN = range(7)
_KINDS: dict[type[object], int] = {kind: _PLAIN_VALUE for kind in _PLAIN}
_KINDS.update({dict: _DICT, list: _SEQUENCE, tuple: _SEQUENCE})


def _kind_of(value: object) -> int:
    """How ``_extend_key`` reads ``value``; remembered for its type when the type decides it."""
    kind = type(value)
    if issubclass(kind, jax.Array):
        how = _JAX_ARRAY
    elif issubclass(kind, np.ndarray):
        how = _ARRAY
    elif isinstance(value, jax.Array):
        return _ARRAY  # a tracer: an array or not by its aval, which its type does not fix
    elif issubclass(kind, np.dtype):
        how = _PLAIN_VALUE  # hashable, and equal when the dtype is
    elif issubclass(kind, _FUNCTIONS) or kind.__name__ in ("custom_jvp", "custom_vjp", "PjitFunction"):
        how = _FUNCTION
    else:
        return _UNKNOWN  # not remembered: the table holds only the few types a key reads
    _KINDS[kind] = how
    return how


def _extend_key(value: object, key: list[object]) -> bool:
    """Append what a check of ``value`` depends on to ``key``; ``False`` when that is not known.

    The key is flat (one tuple of slots: quick to hash and compare) and prefix-coded, so that
    two keys are equal only if their values are alike slot by slot: a plain value is its type
    and value; an array its type, shape and dtype; a ``dict``, ``list`` or ``tuple`` its type,
    its length, then each item (a dict's item preceded by its name, which must be a ``str`` or
    an ``int``); a function (checked by ``callable``) its type. Anything else (a pytree class
    of its own, a trace's params node, a dict with other names) is not known: a call with it
    is always checked.
    """
    kind = type(value)
    how = _KINDS.get(kind)
    if how is None:
        how = _kind_of(value)
    known: Any = value  # its kind is known below (a store: no cast() call on this hot path)
    if how == _JAX_ARRAY:  # a jax.Array's shape and dtype are its aval's, read without a property
        aval = known.aval
        key.append(kind)  # one append per slot: quicker than extending by a tuple
        key.append(aval.shape)
        key.append(aval.dtype)
    elif how == _PLAIN_VALUE:
        key.append(kind)
        key.append(known)
    elif how == _DICT:
        key.append(kind)
        key.append(len(known))
        for name, item in known.items():
            if type(name) is not str and type(name) is not int:
                return False
            key.append(name)
            if not _extend_key(item, key):
                return False
    elif how == _SEQUENCE:
        key.append(kind)
        key.append(len(known))
        for item in known:
            if not _extend_key(item, key):
                return False
    elif how == _ARRAY:  # a numpy array or a tracer
        key += (kind, known.shape, known.dtype)
    elif how == _FUNCTION:
        key.append(kind)  # checked by callable(): the type tells
    else:
        return False
    return True


def signature_memo_key(*values: object) -> Hashable | None:
    """What a check of ``values`` depends on (see ``_extend_key``), or ``None`` when that is not known.

    >>> import jax.numpy as jnp
    >>> signature_memo_key({"w": jnp.ones((2, 3))}, [8]) == signature_memo_key({"w": jnp.zeros((2, 3))}, [8])
    True
    >>> signature_memo_key([8, 3]) == signature_memo_key([8, 4]), signature_memo_key(object())
    (False, None)
    """
    key: list[object] = []
    for value in values:
        if not _extend_key(value, key):
            return None
    return tuple(key)


def call_checked(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` with its arguments checked (checking is on), once per call signature.

    The first call of a signature runs ``fn``'s own argument checks (``__zephyr_check__``,
    see ``zephyr._checks.checked_by``), checks its params leaves and calls it through
    jaxtyping + beartype, and the ``@flexible`` nets it calls are checked likewise. A later
    call of a signature that passed calls ``fn`` directly, with ``calls_state().checked``
    set: the nets it calls are not checked again, as their
    arguments follow from its own (a checked mlp costs one lookup per call, not one per layer).
    """
    key = signature_memo_key(args, kwargs)
    passed = _PASSED.get(fn) if key is not None else None
    if passed is not None and key in passed:
        # Passed before: neither this call nor the nets it calls are checked again.
        state = calls_state()
        state.checked = True
        try:
            return fn(*args, **kwargs)
        finally:
            state.checked = False
    check: Callable[..., None] | None = getattr(fn, "__zephyr_check__", None)
    if check is not None:
        check(*args, **kwargs)
    layout = params_layout(fn)
    if layout is not None:
        check_params(fn, layout, args, kwargs)
    out = _checked(fn, layout)(*args, **kwargs)
    if key is not None:
        with _PASSED_LOCK:
            passed = _PASSED.setdefault(fn, {})
            passed[key] = None
            if len(passed) > _MAX_SIGNATURES:
                del passed[next(iter(passed))]
    return out
