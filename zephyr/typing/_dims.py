"""Dim strings: parse jaxtyping's ``"*batch d_in d*4"``, bind names from arguments, evaluate.

One parser and one binder serve the three ways zephyr reads shapes from names: a net's params
annotation during ``trace``, ``validate(params["w"], "d_in out_dim")`` (through the
arguments of the running ``@flexible`` call), and run-time checks.
"""

from __future__ import annotations

import ast
import functools
import inspect
import types
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import jax.numpy as jnp
import numpy as np

from ..core._types import DType, Shape

V = TypeVar("V")


def weakly_cached(compute: Callable[[Callable[..., Any]], V]) -> Callable[[Callable[..., Any]], V]:
    """``compute(fn)``, computed once per function and kept while it lives (weakly keyed, as
    jit's cache is): what zephyr reads of a net's signature on every call."""
    table: weakref.WeakKeyDictionary[Callable[..., Any], V] = weakref.WeakKeyDictionary()

    @functools.wraps(compute)
    def cached(fn: Callable[..., Any]) -> V:
        try:
            return table[fn]
        except KeyError:
            value = table[fn] = compute(fn)
            return value

    return cached


@dataclass(frozen=True, slots=True)
class Dim:
    """One axis of a dim string.

    ``kind`` is ``"fixed"`` (``size`` set), ``"named"`` (``name``), ``"symbolic"`` (``code``,
    a Python expression over other names), ``"anonymous"`` (``_``), or ``"variadic"``
    (``*name``, ``*_`` or ``...``: any number of axes, ``name`` empty when anonymous).
    """

    kind: str
    name: str = ""
    size: int = 0
    code: str = ""


@functools.lru_cache(maxsize=1024)
def parse_dims(dim_str: str) -> tuple[Dim, ...]:
    """Parse a jaxtyping dim string.

    >>> [d.kind for d in parse_dims("*batch d_in 3 d*4 _")]
    ['variadic', 'named', 'fixed', 'symbolic', 'anonymous']
    """
    dims: list[Dim] = []
    for token in dim_str.replace(",", " ").split():
        token = token.lstrip("#").removeprefix("?")  # broadcastable and tree-path markers: the size is the same for us
        if token in ("...", "*_", "*#_"):
            dims.append(Dim("variadic"))
        elif token.startswith("*"):
            dims.append(Dim("variadic", name=token[1:].lstrip("#")))
        elif token == "_":
            dims.append(Dim("anonymous"))
        elif token.isdigit():
            dims.append(Dim("fixed", size=int(token)))
        elif token.isidentifier():
            dims.append(Dim("named", name=token))
        else:
            name, _, code = token.partition("=") if "=" in token else ("", "", token)
            try:
                ast.parse(code, mode="eval")
            except SyntaxError:
                raise ValueError(f"cannot read dim `{token}` in {dim_str!r}") from None
            dims.append(Dim("symbolic", name=name, code=code))
    if sum(d.kind == "variadic" for d in dims) > 1:
        raise ValueError(f"{dim_str!r} has more than one variadic dim (`*name` or `...`)")
    return tuple(dims)


class Bound(dict[str, int]):
    """Dim names bound to sizes, and what bound each (for messages that point at the cause).

    ``sources[name]`` says which argument bound it (``"`x` (8, 7)"`` or ``"`width=32`"``);
    ``others[name]`` holds an argument of that name that is neither an int nor an array.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self.others: dict[str, object] = {}

    def explain(self, dims: tuple[Dim, ...]) -> str:
        """Where the named dims of ``dims`` were bound: ``"`x` (8, 7) binds d_in=7"``."""
        parts = [
            f"{self.sources[d.name]} binds {d.name}={self[d.name]}"
            for d in dims
            if d.kind == "named" and d.name in self.sources
        ]
        return "; ".join(dict.fromkeys(parts))


def bind_shape(dims: tuple[Dim, ...], shape: Shape, bound: Bound, where: str, source: str) -> None:
    """Bind the named dims of ``dims`` to the axes of ``shape``, checking earlier bindings.

    Raises ``ValueError`` naming ``where`` when the rank or a dim disagrees. ``source`` (the
    argument's name) is recorded for each dim it binds first.
    """
    variadic = next((i for i, d in enumerate(dims) if d.kind == "variadic"), None)
    if variadic is None:
        if len(shape) != len(dims):
            raise ValueError(f"{where}: expected {len(dims)} axes, got shape {tuple(shape)}")
        pairs = list(zip(dims, shape))
    else:
        after = len(dims) - variadic - 1
        if len(shape) < len(dims) - 1:
            raise ValueError(
                f"{where}: expected at least {len(dims) - 1} axes, got shape {tuple(shape)}"
            )
        pairs = list(zip(dims[:variadic], shape[:variadic]))
        pairs += list(zip(dims[variadic + 1 :], shape[len(shape) - after :]))
    sources = bound.sources
    for dim, size in pairs:
        if dim.kind == "named":
            previous = bound.setdefault(dim.name, int(size))
            if previous != size:
                first = f" (bound by {sources[dim.name]})" if dim.name in sources else ""
                raise ValueError(
                    f"{where}: dim `{dim.name}` is {size} here but {previous} elsewhere{first} "
                    f"(shape {tuple(shape)})"
                )
            sources.setdefault(dim.name, f"{source} {tuple(shape)}")
        elif dim.kind == "fixed" and dim.size != size:
            raise ValueError(f"{where}: expected axis of size {dim.size}, got shape {tuple(shape)}")


def evaluate_dims(dims: tuple[Dim, ...], bound: Bound, where: str) -> Shape:
    """The concrete shape ``dims`` describe, given ``bound`` names.

    Raises ``ValueError`` naming ``where`` and the dim that has no value.
    """
    shape: list[int] = []
    for dim in dims:
        if dim.kind == "fixed":
            shape.append(dim.size)
        elif dim.kind == "named":
            if dim.name not in bound:
                raise ValueError(_unbound(dim.name, bound, where))
            shape.append(bound[dim.name])
        elif dim.kind == "symbolic":
            try:
                value = eval(dim.code, {"__builtins__": {}}, dict(bound))  # noqa: S307
            except NameError as error:
                raise ValueError(_unbound(str(error.name), bound, where)) from None
            shape.append(int(value))
        else:
            raise ValueError(
                f"{where}: a parameter's shape must be fully determined; "
                f"`{dim.name or '...' if dim.kind == 'variadic' else '_'}` is not"
            )
    return tuple(shape)


def _unbound(name: str, bound: Bound, where: str) -> str:
    if name in bound.others:
        return f"{where}: argument `{name}` binds dim `{name}`: expected an int, got {bound.others[name]!r}"
    known = ", ".join(f"{k}={v}" for k, v in bound.items()) or "none"
    return (
        f"{where}: cannot bind dim `{name}`: no array argument is annotated with `{name}` and "
        f"no int argument is named `{name}` (bound: {known})"
    )


def annotation_dims(annotation: Any) -> tuple[tuple[Dim, ...], DType | None] | None:
    """``(dims, dtype)`` of a jaxtyping annotation, or ``None`` if it is not one."""
    dim_str = getattr(annotation, "dim_str", None)
    if not isinstance(dim_str, str) or not hasattr(annotation, "dtypes"):
        return None
    return parse_dims(dim_str), default_dtype(annotation)


def default_dtype(annotation: Any) -> DType | None:
    """The dtype a new leaf gets from a jaxtyping annotation: JAX's default of its kind."""
    dtypes: object = getattr(annotation, "dtypes", None)
    if not isinstance(dtypes, tuple | list):
        return None  # Shaped: any dtype, so the default float
    names = [str(name) for name in cast("Iterable[object]", dtypes)]
    for candidate in (np.dtype(jnp.result_type(float)).name, "float32", "int32", "bool", "uint32"):
        if candidate in names:
            return candidate
    return names[0] if names else None


def strip_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[T, *extras]`` -> ``(T, extras)``; anything else -> ``(annotation, ())``."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, tuple(extras)
    return annotation, ()


@weakly_cached
def resolved_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s annotations with strings resolved and ``Annotated`` kept (cached): those of the
    Python function that describes a call of ``fn`` (see :func:`call_target`), or ``fn``'s."""
    target = call_target(fn)  # a partial's, a method's, a callable object's function
    try:
        return typing.get_type_hints(fn if target is None else target[0], include_extras=True)
    except Exception as error:  # an unresolvable forward reference
        raise TypeError(f"`{getattr(fn, '__qualname__', fn)}`: cannot resolve its annotations ({error})") from error


def bind_arguments(
    fn: Callable[..., Any],
    arguments: Mapping[str, Any],
    skip: str | None = None,
) -> Bound:
    """Dim names bound by ``fn``'s arguments: int arguments by name, arrays by annotation."""
    dims_of = _annotated_dims(fn)
    bound = Bound()
    name = getattr(fn, "__qualname__", "function")
    for arg_name, value in arguments.items():
        if arg_name == skip:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            if arg_name not in bound:
                bound[arg_name] = value
                bound.sources[arg_name] = f"`{arg_name}={value}`"
            continue
        shape = getattr(value, "shape", None)
        if shape is None:
            bound.others.setdefault(arg_name, value)
        elif (dims := dims_of.get(arg_name)) is not None:
            bind_shape(dims, tuple(shape), bound, f"`{name}` argument `{arg_name}`", f"`{arg_name}`")
    return bound


@weakly_cached
def _annotated_dims(fn: Callable[..., Any]) -> dict[str, tuple[Dim, ...]]:
    """The dims of each parameter of ``fn`` that has a jaxtyping annotation."""
    parsed = {name: annotation_dims(strip_annotated(hint)[0]) for name, hint in resolved_hints(fn).items()}
    return {name: found[0] for name, found in parsed.items() if found is not None}


def spec_dims(spec: object, who: str) -> tuple[tuple[Dim, ...], DType | None]:
    """The dims (and dtype, for an annotation) of a dim string or a jaxtyping annotation."""
    if isinstance(spec, str):
        return parse_dims(spec), None
    parsed = annotation_dims(strip_annotated(spec)[0])
    if parsed is None:
        raise TypeError(
            f"{who}: `shape` must be a tuple of ints, a dim string such as \"d_in out_dim\" "
            f"or a jaxtyping annotation, got {spec!r}"
        )
    return parsed


def resolve_call_shape(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], dims: tuple[Dim, ...], who: str
) -> Shape:
    """The concrete shape of ``dims``, their names bound from the arguments of one call
    ``fn(*args, **kwargs)``.

    ``flexible`` records each running call with this resolver, so ``validate(params["w"],
    "d_in out")`` binds ``d_in`` from the ``x`` the net was called with, even if the body has
    rebound ``x`` since, and in closures and lambdas inside the net too.

    >>> import numpy as np
    >>> from jax import Array
    >>> from jaxtyping import Float
    >>> def dense(params, x: Float[Array, "b d_in"], out_dim: int): ...
    >>> resolve_call_shape(dense, ({}, np.ones((2, 3)), 4), {}, parse_dims("d_in out_dim"), "validate")
    (3, 4)
    """
    if all(d.kind == "fixed" for d in dims):
        return tuple(d.size for d in dims)
    where = f"{who} in `{getattr(fn, '__name__', fn)}`"
    try:
        arguments = call_arguments(fn, args, kwargs, partial=True)
    except TypeError as error:
        raise TypeError(f"{where}: {error}") from None
    bound = bind_arguments(fn, arguments, skip=next(iter(_signature(fn).parameters), None))
    return evaluate_dims(dims, bound, where)


_signature = weakly_cached(inspect.signature)


@dataclass(frozen=True, slots=True)
class _Parameters:
    """A signature of named parameters only (no positional-only, ``*args`` or ``**kwargs``):
    names in order, how many come first as positional-or-keyword, and the defaults."""

    names: tuple[str, ...]
    positional: int
    defaults: dict[str, Any]


@weakly_cached
def _parameters(fn: Callable[..., Any]) -> _Parameters | None:
    parameters = list(_signature(fn).parameters.values())
    if not {p.kind for p in parameters} <= {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}:
        return None
    positional = sum(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return _Parameters(tuple(p.name for p in parameters), positional, defaults)


def call_arguments(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """The arguments of the call ``fn(*args, **kwargs)`` by parameter name, defaults filled in,
    in the signature's order: ``inspect.Signature.bind`` (or ``bind_partial``) then
    ``apply_defaults``, which raise the ``TypeError`` of a call that does not bind.

    The plain case (named parameters only, every argument known) is one pass over the
    parameters, without building a ``BoundArguments``: a net's signature is read on every call
    during ``trace`` and by ``validate`` with a dim string.

    >>> def dense(params, x, out_dim, *, use_bias=True): ...
    >>> call_arguments(dense, ({}, "x", 4), {})
    {'params': {}, 'x': 'x', 'out_dim': 4, 'use_bias': True}
    """
    parameters = _parameters(fn)
    if parameters is not None and len(args) <= parameters.positional:
        arguments = dict(zip(parameters.names, args))
        used = 0
        for name in parameters.names[len(args) :]:
            if name in kwargs:
                arguments[name] = kwargs[name]
                used += 1
            elif name in parameters.defaults:
                arguments[name] = parameters.defaults[name]
            elif not partial:
                break  # a missing argument: bind names it
        else:
            if used == len(kwargs):  # else an unknown keyword or a second value for a positional
                return arguments
    signature = _signature(fn)
    bound = signature.bind_partial(*args, **kwargs) if partial else signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def call_target(fn: object) -> tuple[types.FunctionType, tuple[Any, ...], dict[str, Any]] | None:
    """``(function, args, kwargs)`` such that ``fn(*a, **k)`` is ``function(*args, *a, **kwargs, **k)``
    for a plain Python ``function``: what holds the annotations of a call of ``fn`` (a
    function, a bound method, a ``functools.partial`` or a callable object); ``None`` if no
    Python function does (a builtin, a class).

    >>> import functools
    >>> def scale(x, by): return x * by
    >>> call_target(functools.partial(scale, by=2)) == (scale, (), {"by": 2})
    True
    """
    if isinstance(fn, types.FunctionType):
        return fn, (), {}
    if isinstance(fn, types.MethodType):
        inner = call_target(fn.__func__)
        return None if inner is None else (inner[0], (*inner[1], fn.__self__), inner[2])
    if isinstance(fn, functools.partial):
        partial: functools.partial[Any] = cast(Any, fn)
        inner = call_target(partial.func)
        if inner is None:
            return None
        return inner[0], (*inner[1], *partial.args), {**inner[2], **partial.keywords}
    call = getattr(type(fn), "__call__", None)
    if not isinstance(fn, type) and isinstance(call, types.FunctionType):
        return call, (fn,), {}
    return None
