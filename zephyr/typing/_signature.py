"""Shapes by signature: the leaves a net's params annotation declares.

A net annotated ``params: LinearParams`` (a ``TypedDict`` whose leaves are jaxtyping
annotations) gets those leaves declared by ``trace`` before its body runs. A field typed with
another TypedDict is a sub-network: its dims are named in that sub-network's own signature,
and it declares its leaves when it is called. Dims bind from the other arguments (``x: Float[Array, "*b d_in"]``
binds ``d_in``; ``out_dim: int`` binds ``out_dim``). ``Annotated[Float[...], initializer,
"tag", ...]`` attaches an initializer and tags. Fields that are not required
(``NotRequired``/``total=False``) and fields that are not arrays are left to the body.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, cast

from ..core._initializers import default_initializer, to_dtype
from ..core._trace import TraceNode, declare_defaults
from ..core._types import DType, Initializer, Leaf, Path, format_path, name_of
from ._dims import Bound, Dim, annotation_dims, bind_arguments, call_arguments, evaluate_dims
from ._dims import resolved_hints, strip_annotated, weakly_cached


@dataclass(frozen=True, slots=True)
class LeafTemplate:
    """One leaf of a params annotation, with its dims still symbolic."""

    path: Path
    dims: tuple[Dim, ...]
    dtype: DType | None
    initializer: Initializer
    tags: tuple[str, ...]
    annotation: Any


@dataclass(frozen=True, slots=True)
class ParamsLevel:
    """One level of the params a ``TypedDict`` declares: its keys, and which are leaves
    (arrays) and which subtrees (another ``TypedDict``); any other key is left to the body."""

    path: Path
    name: str  # the TypedDict's name
    keys: tuple[str, ...]  # every key it declares, required or not, in order
    leaves: frozenset[str]
    subtrees: frozenset[str]
    required: frozenset[str]


@dataclass(frozen=True, slots=True)
class ParamsLayout:
    """What a net's signature says about its params: the leaves it declares (``leaves``) and
    the keys each ``TypedDict`` level allows (``levels``, outermost first)."""

    params_name: str
    leaves: tuple[LeafTemplate, ...]
    signature: inspect.Signature
    levels: tuple[ParamsLevel, ...] = ()


@weakly_cached
def params_layout(fn: Callable[..., Any]) -> ParamsLayout | None:
    """What ``fn``'s params annotation declares, or ``None`` if it is not a ``TypedDict``.

    Example:
        >>> from zephyr import nets
        >>> from zephyr.typing import params_layout
        >>> layout = params_layout(nets.linear)
        >>> [(leaf.path, leaf.annotation.dim_str) for leaf in layout.leaves]
        [(('weights',), 'd_in out_dim')]
    """
    if getattr(fn, "__zephyr_flexible__", False):
        return params_layout(inspect.unwrap(fn))
    signature = inspect.signature(fn)
    if not signature.parameters:
        return None
    params_name = next(iter(signature.parameters))
    typed_dict = strip_annotated(resolved_hints(fn).get(params_name))[0]
    if not typing.is_typeddict(typed_dict):
        return None
    leaves = tuple(_leaves_of(typed_dict, name_of(fn)))
    return ParamsLayout(params_name, leaves, signature, tuple(_levels_of(typed_dict, (), set())))


def _fields(typed_dict: Any) -> dict[str, tuple[Any, tuple[Any, ...], bool]]:
    """Each field's type without ``Annotated``/``Required``/``NotRequired``, its ``Annotated``
    extras, and whether it is required: by its ``Required``/``NotRequired`` if it has one
    (``__required_keys__`` misses those in string annotations before Python 3.12), else by
    ``__required_keys__`` (the totality of the class that declares it)."""
    required_keys: frozenset[str] = getattr(typed_dict, "__required_keys__", frozenset())
    fields: dict[str, tuple[Any, tuple[Any, ...], bool]] = {}
    for key, hint in typing.get_type_hints(typed_dict, include_extras=True).items():
        base, extras = strip_annotated(hint)
        required = key in required_keys
        while typing.get_origin(base) in (typing.Required, typing.NotRequired):
            required = typing.get_origin(base) is typing.Required
            base, more = strip_annotated(typing.get_args(base)[0])
            extras += more
        fields[key] = (base, extras, required)
    return fields


def _levels_of(typed_dict: Any, prefix: Path, seen: set[int]) -> Iterator[ParamsLevel]:
    """The levels ``typed_dict`` declares, itself first, then its sub-``TypedDict`` fields'."""
    if id(typed_dict) in seen:  # a recursive TypedDict: each level once
        return
    seen = seen | {id(typed_dict)}
    fields = _fields(typed_dict)
    required = frozenset(key for key, (_base, _extras, is_required) in fields.items() if is_required)
    subtrees = [key for key, (base, _extras, _required) in fields.items() if typing.is_typeddict(base)]
    leaves = frozenset(key for key, (base, _extras, _required) in fields.items() if annotation_dims(base) is not None)
    yield ParamsLevel(prefix, typed_dict.__name__, tuple(fields), leaves, frozenset(subtrees), required)
    for key in subtrees:
        yield from _levels_of(fields[key][0], prefix + (key,), seen)


def _leaves_of(typed_dict: Any, owner: str) -> Iterator[LeafTemplate]:
    """The required array fields (a field typed with a ``TypedDict`` is a sub-network: its dims
    are named in its own signature, and it declares its leaves when it is called)."""
    for key, (base, extras, required) in _fields(typed_dict).items():
        parsed = annotation_dims(base)
        if not required or parsed is None:
            continue
        path: Path = (key,)
        dims, dtype = parsed
        initializer: Initializer = default_initializer
        tags: list[str] = []
        for extra in extras:
            if isinstance(extra, str):
                tags.append(extra)
            elif isinstance(extra, tuple | list | frozenset | set):
                group = [str(t) for t in cast("Iterable[object]", extra) if isinstance(t, str)]
                if len(group) != len(cast("Sized", extra)):
                    raise TypeError(
                        f"`{owner}`: the tags of `{format_path(path)}` must be strings, got {extra!r}"
                    )
                tags.extend(group)
            elif callable(extra):
                initializer = cast("Initializer", extra)
            else:
                raise TypeError(
                    f"`{owner}`: the annotation of `{format_path(path)}` carries {extra!r}; "
                    "Annotated extras are an initializer and str tags"
                )
        yield LeafTemplate(path, dims, dtype, initializer, tuple(tags), base)


def bound_dims(fn: Callable[..., Any], layout: ParamsLayout, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Bound:
    """Dim names bound by the arguments of one call of ``fn``."""
    try:
        arguments = call_arguments(fn, args, kwargs)
    except TypeError as error:
        raise TypeError(f"`{name_of(fn)}`: {error}") from None
    return bind_arguments(fn, arguments, skip=layout.params_name)


def leaf_specs(fn: Callable[..., Any], layout: ParamsLayout, node_path: Path, bound: Bound) -> Iterator[Leaf]:
    """Concrete :class:`Leaf` records for the leaves of ``layout``, at their paths relative to
    the params (``node_path``, where those params are, names them in errors)."""
    for leaf in layout.leaves:
        where = f"`{name_of(fn)}`, `{format_path(node_path + leaf.path)}` ({leaf.annotation.dim_str!r})"
        shape = evaluate_dims(leaf.dims, bound, where)
        yield Leaf(leaf.path, shape, to_dtype(leaf.dtype), leaf.tags, initializer=leaf.initializer)


def call_traced(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` during ``trace``: declare the leaves its signature describes, then run it."""
    node: TraceNode = args[0]
    layout = params_layout(fn)
    if layout is not None and layout.leaves:
        declare_defaults(node, leaf_specs(fn, layout, node.path, bound_dims(fn, layout, args, kwargs)))
    return fn(*args, **kwargs)
