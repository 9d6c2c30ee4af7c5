"""Holes: ``f(_, _, 256)`` is ``f`` waiting for its first two arguments.

This module is generic: it knows nothing of traces or checks. :func:`accept_holes` wraps a
function so that a call with a hole returns a :class:`Holed` call, and any other call goes
to the function given (``zephyr.flexible`` gives one that also declares and checks).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn, final

from ..core._cache import weak_identity
from ..core._types import name_of

MSG_HOLE_AS_VALUE = """\
Only @flexible functions accept holes; a hole reaches a plain function as a value. Make the
function flexible, or fill the hole first:

    @flexible
    def block(params, x, width): ...
    f = block(_, _, 256)   # f(params, x)
"""


@final
class PlaceholderType:
    """The type of the hole ``_``: one instance, ``placeholder_hole``.

    It is ``@final`` so that type checkers know no array is ever a hole, which lets the
    generated overloads in ``zephyr/nets.pyi`` and the ``Flexible*`` protocols tell ``linear(_, _, 256)`` from ``linear(p, x, 256)``.
    At run time it is a singleton that pickles by name and prints as ``_``.
    """

    __slots__ = ()
    _instance: ClassVar[PlaceholderType | None] = None

    def __new__(cls) -> PlaceholderType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "_"

    def __reduce__(self) -> str:
        return "placeholder_hole"

    def _as_value(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("the placeholder `_` was used as a value.\n" + MSG_HOLE_AS_VALUE)

    # Hidden from type checkers: to them a hole has no members, so it satisfies no protocol
    # (not ``Params``, not ``Iterable``) and the hole overloads can tell it from a value.
    if not TYPE_CHECKING:
        __array__ = __bool__ = __len__ = __iter__ = __getitem__ = _as_value
        __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _as_value
        __matmul__ = __rmatmul__ = __truediv__ = __rtruediv__ = __neg__ = _as_value
        __float__ = __int__ = __index__ = _as_value

        def __getattr__(self, name: str) -> NoReturn:
            if name.startswith("__"):
                raise AttributeError(name)
            self._as_value()


placeholder_hole: Final = PlaceholderType()
"""The hole: ``f(_, x)`` is a function of the missing first argument (import it as ``_``)."""

_HOLE: Final = placeholder_hole


class _SignatureInfo:
    """What a holed call needs to know about the function, computed once per function."""

    __slots__ = ("signature", "positional_names", "max_positional", "keyword_names", "var_keyword")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: accept anything
            signature = None
        self.signature = signature
        parameters = list(signature.parameters.values()) if signature else []
        kinds = inspect.Parameter
        positional = [
            p for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
        ]
        self.positional_names = tuple(
            p.name if p.kind is kinds.POSITIONAL_OR_KEYWORD else None for p in positional
        )
        var_positional = signature is None or any(p.kind is kinds.VAR_POSITIONAL for p in parameters)
        self.max_positional = None if var_positional else len(positional)
        self.keyword_names = frozenset(
            p.name for p in parameters if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        )
        self.var_keyword = signature is None or any(p.kind is kinds.VAR_KEYWORD for p in parameters)


class Holed:
    """A flexible function with holes: call it with the missing arguments.

    New positional arguments fill the positional holes left to right; further positional
    arguments are appended (as ``functools.partial`` does). Keywords fill keyword holes, or a
    positional hole by its parameter name. While holes remain, a call returns another
    ``Holed``; once none remain, it calls the function.
    """

    __slots__ = ("func", "args", "kwargs", "_info", "__weakref__")

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: _SignatureInfo,
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self._info = info
        self._check_fillable()

    def _check_fillable(self) -> None:
        info, name = self._info, name_of(self.func)
        if info.max_positional is not None and len(self.args) > info.max_positional:
            holes = [i for i, a in enumerate(self.args) if a is _HOLE and i >= info.max_positional]
            what = f"a hole at position {holes[0]}" if holes else "too many positional arguments"
            raise TypeError(
                f"`{name}` takes at most {info.max_positional} positional arguments; "
                f"{what} can never be filled (got {len(self.args)})"
            )
        if not info.var_keyword:
            for key in self.kwargs:
                if key not in info.keyword_names:
                    raise TypeError(f"`{name}` has no parameter `{key}` to hold a hole or value")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        filled = list(self.args)
        new = iter(args)
        names = self._info.positional_names
        for i, value in enumerate(filled):
            if value is _HOLE:
                name = names[i] if i < len(names) else None
                if name is not None and name in kwargs:
                    filled[i] = kwargs.pop(name)
                    continue
                for arg in new:
                    filled[i] = arg
                    break
        filled.extend(new)
        merged = {**self.kwargs, **kwargs} if kwargs else self.kwargs
        return self.func(*filled, **merged)

    def cache_key(self) -> Hashable | None:
        """A hashable identity of this holed call (function, arguments, holes), if it has one.

        ``trace`` uses it to recognise ``net(_, _, 256)`` built twice as the same net.
        """
        try:
            # The function by weak reference: a cached trace keeps no closure alive.
            key = (weak_identity(self.func), self.args, tuple(sorted(self.kwargs.items())))
            hash(key)
        except TypeError:  # an array or another unhashable argument
            return None
        return key

    @property
    def __signature__(self) -> inspect.Signature:
        """The parameters still missing, in the order a call fills them."""
        signature = self._info.signature
        if signature is None:
            return inspect.Signature()
        parameters = list(signature.parameters.values())
        kinds = inspect.Parameter
        remaining: list[inspect.Parameter] = []
        for i, parameter in enumerate(parameters):
            if parameter.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
                if i < len(self.args):
                    if self.args[i] is _HOLE:
                        remaining.append(parameter.replace(default=inspect.Parameter.empty))
                    continue
                if parameter.name in self.kwargs and self.kwargs[parameter.name] is not _HOLE:
                    continue
                remaining.append(parameter)
            elif parameter.name in self.kwargs:
                if self.kwargs[parameter.name] is _HOLE:
                    remaining.append(parameter.replace(kind=kinds.KEYWORD_ONLY, default=inspect.Parameter.empty))
            else:
                remaining.append(parameter)
        return _ordered_signature(signature, remaining)

    @property
    def __name__(self) -> str:
        return name_of(self.func)

    def __repr__(self) -> str:
        parts = [repr(a) if a is _HOLE else _short(a) for a in self.args]
        parts += [f"{k}={'_' if v is _HOLE else _short(v)}" for k, v in self.kwargs.items()]
        return f"{name_of(self.func)}({', '.join(parts)})"


def _ordered_signature(original: inspect.Signature, parameters: list[inspect.Parameter]) -> inspect.Signature:
    # A positional hole after a filled default-less parameter may now follow one with a
    # default: it becomes keyword-only, and the parameters are ordered by kind, stably (they
    # come in the original's order, which is by kind already).
    kinds = inspect.Parameter
    order = [kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD, kinds.VAR_POSITIONAL, kinds.KEYWORD_ONLY, kinds.VAR_KEYWORD]
    seen_default = False
    fixed: list[inspect.Parameter] = []
    for p in parameters:
        if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
            if p.default is not inspect.Parameter.empty:
                seen_default = True
            elif seen_default:
                p = p.replace(kind=kinds.KEYWORD_ONLY)
        fixed.append(p)
    return original.replace(parameters=sorted(fixed, key=lambda p: order.index(p.kind)))


def _short(value: object) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"<array {tuple(shape)}>"
    if isinstance(value, Mapping):  # params, or a node of the params being traced
        return "params"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def accept_holes(fn: Callable[..., Any], call: Callable[[tuple[Any, ...], dict[str, Any]], Any]) -> Callable[..., Any]:
    """``fn`` accepting holes: a call with a hole returns a :class:`Holed`, any other call is
    ``call(args, kwargs)``. The wrapper keeps ``fn``'s name, docstring and ``__wrapped__`` (so
    ``inspect.signature`` gives ``fn``'s), and is marked so that :func:`is_flexible` knows it.

    Example:
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> def add(a, b):
        ...     return a + b
        >>> holey = accept_holes(add, lambda args, kwargs: add(*args, **kwargs))
        >>> holey(_, 1)(2), is_flexible(holey)
        (3, True)
    """
    info: _SignatureInfo | None = None

    def holed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Holed:
        nonlocal info
        if info is None:
            info = _SignatureInfo(fn)
        return Holed(wrapper, args, kwargs, info)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for arg in args:
            if arg is _HOLE:
                return holed(args, kwargs)
        if kwargs:
            for value in kwargs.values():
                if value is _HOLE:
                    return holed(args, kwargs)
        return call(args, kwargs)

    wrapper.__zephyr_flexible__ = True  # type: ignore[attr-defined]
    return wrapper


def is_flexible(fn: object) -> bool:
    """Whether ``fn`` was made flexible (accepts holes).

    >>> from zephyr.functools.partial import flexible
    >>> is_flexible(flexible(lambda x: x)), is_flexible(len)
    (True, False)
    """
    return bool(getattr(fn, "__zephyr_flexible__", False))
