"""``stack``: one net repeated over a leading layer axis of its params, run with ``lax.scan``;
and ``declare_repeated``, the one-layer trace of an unrolled loop of the same net.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
from jax import Array

from ._trace import LeafSpec, TraceNode, TraceState, name_of
from ._types import DType, Initializer, Params, PRNGKey, Shape
from .functools._partial import flexible


@dataclass(frozen=True)
class StackedInitializer:
    """Initialize ``layers`` independent copies of a leaf along a new leading axis."""

    inner: Initializer
    layers: int

    def __call__(self, key: PRNGKey, shape: Shape, dtype: DType = None) -> Array:
        keys = jax.random.split(key, self.layers)

        def one_layer(layer_key: PRNGKey) -> Array:
            return self.inner(layer_key, shape[1:], dtype)

        stacked: Array = jax.vmap(one_layer)(keys)
        return stacked


def _trace_one_layer(
    who: str, node: TraceNode, call: Callable[[TraceNode], Array], x: Array
) -> tuple[Array, TraceState]:
    """Trace one layer on its own params stand-in; its output must match ``x`` (the carry)."""
    layer_state = TraceState(node.state.root)
    y = call(TraceNode(layer_state, ()))
    if getattr(y, "shape", None) != x.shape or getattr(y, "dtype", None) != x.dtype:
        raise ValueError(
            f"{who}: each layer must map x to the same shape and dtype (it is the carry "
            f"from layer to layer); {x.shape} {x.dtype} became "
            f"{getattr(y, 'shape', None)} {getattr(y, 'dtype', None)}"
        )
    return y, layer_state


def _declare_stacked(
    f: Callable[..., Any], layers: int, node: TraceNode, call: Callable[[TraceNode], Array], x: Array
) -> Array:
    y, layer_state = _trace_one_layer(f"stack({name_of(f)}, {layers})", node, call, x)
    for spec in layer_state.specs.values():
        node.state.declare(
            LeafSpec(
                node.path + spec.path,
                (layers, *spec.shape),
                spec.dtype,
                StackedInitializer(spec.initializer, layers),
                spec.tags,
                spec.root,
            )
        )
    return y


def declare_repeated(
    who: str, layers: int, node: TraceNode, call: Callable[[TraceNode], Array], x: Array
) -> Array:
    """During trace, an unrolled loop ``x = call(node[i], x)`` for ``i < layers``, traced once.

    Layer ``i`` declares at ``node[i]`` what layer 0 declares: the layers are one pure
    function on the same shapes, so the abstract forward runs one layer whatever the depth.
    The leaves (paths, shapes, initializers, so values) are those of the traced loop.
    """
    y, layer_state = _trace_one_layer(who, node, call, x)
    for i in range(layers):
        for spec in layer_state.specs.values():
            node.state.declare(
                LeafSpec((*node.path, i, *spec.path), spec.shape, spec.dtype, spec.initializer, spec.tags, spec.root)
            )
    return y


def stack(f: Callable[..., Array], layers: int, *, with_key: bool = False) -> Callable[..., Array]:
    """Repeat ``f(params, x, *args)`` ``layers`` times over stacked params, with ``lax.scan``.

    Every leaf of the stacked params has a leading axis of size ``layers``; layer ``i`` uses
    slice ``i``. One layer is traced and compiled once, whatever the depth: deep stacks
    compile in the time of one layer. With ``with_key=True`` the result takes
    ``(params, key, x, *args)`` and each layer gets its own key, ``f(params_i, key_i, x)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, stack, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> deep = stack(nets.linear(_, _, 4), 6)
        >>> x = jnp.ones((2, 4))
        >>> params = trace(deep, jax.random.key(0), x)
        >>> params["weights"].shape, deep(params, x).shape
        ((6, 4, 4), (2, 4))
    """
    if isinstance(layers, bool) or layers < 1:
        raise ValueError(f"stack: `layers` must be a positive int, got {layers!r}")

    def call_layer(p: Params | TraceNode, key: PRNGKey | None, x: Array, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Array:
        return f(p, key, x, *args, **kwargs) if with_key else f(p, x, *args, **kwargs)

    def stacked(params: Params, *rest: Any, **kwargs: Any) -> Array:
        if with_key:
            if len(rest) < 2:
                raise TypeError(f"stack({name_of(f)}, {layers}, with_key=True) takes (params, key, x, ...)")
            key, x, args = rest[0], rest[1], rest[2:]
            keys = jax.random.split(key, layers)
        else:
            if not rest:
                raise TypeError(f"stack({name_of(f)}, {layers}) takes (params, x, ...)")
            key, x, args, keys = None, rest[0], rest[1:], None
        if type(params) is TraceNode:
            first = keys[0] if keys is not None else None
            return _declare_stacked(f, layers, params, lambda node: call_layer(node, first, x, args, kwargs), x)

        def body(carry: Array, layer: tuple[Params, PRNGKey | None]) -> tuple[Array, None]:
            layer_params, layer_key = layer
            return call_layer(layer_params, layer_key, carry, args, kwargs), None

        y: Array
        y, _outputs = jax.lax.scan(body, x, (params, keys))
        return y

    stacked.__name__ = stacked.__qualname__ = f"stack({name_of(f)}, {layers})"
    return flexible(stacked)
