"""``stack``: one net repeated ``layers`` times, over stacked params with ``lax.scan`` or
unrolled over ``params[i]``; either way ``trace`` runs one layer whatever the depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

import jax
from jax import Array

from ._flexible import flexible
from .core._trace import TraceNode, declare_layers
from .core._types import Params, PRNGKey, name_of


P = TypeVar("P")
K = TypeVar("K")
X = TypeVar("X")
Ps = ParamSpec("Ps")


# The stacked net has the layer's own signature, ``x`` in and the same type out; its params
# are the layer's params type (``scan=True``: one leading axis more) or, unrolled, a dict of
# them by layer.
@overload
def stack(
    f: Callable[Concatenate[P, X, Ps], X], layers: int, *, with_key: Literal[False] = False, scan: Literal[True] = True
) -> Callable[Concatenate[P, X, Ps], X]: ...


@overload
def stack(  # type: ignore[overload-overlap]  # a literal False picks the narrower type first
    f: Callable[Concatenate[P, X, Ps], X], layers: int, *, with_key: Literal[False] = False, scan: Literal[False]
) -> Callable[Concatenate[dict[int, P], X, Ps], X]: ...


@overload
def stack(
    f: Callable[Concatenate[P, X, Ps], X], layers: int, *, with_key: Literal[False] = False, scan: bool
) -> Callable[Concatenate[P | dict[int, P], X, Ps], X]: ...


@overload
def stack(
    f: Callable[Concatenate[P, K, X, Ps], X], layers: int, *, with_key: Literal[True], scan: Literal[True] = True
) -> Callable[Concatenate[P, K, X, Ps], X]: ...


@overload
def stack(  # type: ignore[overload-overlap]  # as above
    f: Callable[Concatenate[P, K, X, Ps], X], layers: int, *, with_key: Literal[True], scan: Literal[False]
) -> Callable[Concatenate[dict[int, P], K, X, Ps], X]: ...


@overload
def stack(
    f: Callable[Concatenate[P, K, X, Ps], X], layers: int, *, with_key: Literal[True], scan: bool
) -> Callable[Concatenate[P | dict[int, P], K, X, Ps], X]: ...


def stack(f: Callable[..., Any], layers: int, *, with_key: bool = False, scan: bool = True) -> Callable[..., Any]:
    """Repeat ``f(params, x, *args)`` ``layers`` times: ``x = f(params_i, x, *args)``.

    With ``scan=True`` (the default) every leaf of the stacked params has a leading axis of
    size ``layers``; layer ``i`` uses slice ``i``, and the layers run in one ``lax.scan``: one
    layer is traced and compiled, whatever the depth. With ``scan=False`` layer ``i`` reads
    ``params[i]`` and the loop is unrolled (a Python loop of identical blocks, as
    ``thread_params`` gives); ``trace`` still runs one layer and declares its leaves for
    every ``i``: the same params as tracing the loop, in the time of one layer. With
    ``with_key=True`` the result takes ``(params, key, x, *args)`` and each layer gets its
    own key, ``f(params_i, key_i, x)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, stack, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> deep = stack(nets.linear(_, _, 4), 6)
        >>> x = jnp.ones((2, 4))
        >>> params = trace(deep, jax.random.key(0), x)
        >>> params["weights"].shape, deep(params, x).shape
        ((6, 4, 4), (2, 4))
        >>> unrolled = stack(nets.linear(_, _, 4), 6, scan=False)
        >>> params = trace(unrolled, jax.random.key(0), x)
        >>> sorted(params), params[5]["weights"].shape, unrolled(params, x).shape
        ([0, 1, 2, 3, 4, 5], (4, 4), (2, 4))
    """
    if not callable(f):
        raise TypeError(f"stack: `f` must be a function (params, x, *args) -> x, got {f!r}")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
        raise ValueError(f"stack: `layers` must be a positive int, got {layers!r}")
    name = f"stack({name_of(f)}, {layers}{'' if scan else ', scan=False'})"

    def call_layer(p: Params | TraceNode, key: PRNGKey | None, x: Array, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Array:
        y: Array = f(p, key, x, *args, **kwargs) if with_key else f(p, x, *args, **kwargs)
        return y

    def stacked(params: Params, *rest: Any, **kwargs: Any) -> Array:
        if with_key:
            if len(rest) < 2:
                raise TypeError(f"{name[:-1]}, with_key=True) takes (params, key, x, ...)")
            key, x, args = rest[0], rest[1], rest[2:]
            keys = jax.random.split(key, layers)
        else:
            if not rest:
                raise TypeError(f"{name} takes (params, x, ...)")
            x, args, keys = rest[0], rest[1:], None
        node: object = params  # a TraceNode during trace, typed as the params it stands for
        if type(node) is TraceNode:
            first = keys[0] if keys is not None else None
            return declare_layers(
                name, layers, node, lambda layer: call_layer(layer, first, x, args, kwargs), x, stacked=scan
            )
        if not scan:
            y: Array = x
            for i in range(layers):
                y = call_layer(params[i], keys[i] if keys is not None else None, y, args, kwargs)
            return y

        def body(carry: Array, layer: tuple[Params, PRNGKey | None]) -> tuple[Array, None]:
            layer_params, layer_key = layer
            return call_layer(layer_params, layer_key, carry, args, kwargs), None

        carry: Array
        carry, _outputs = jax.lax.scan(body, x, (params, keys))
        return carry

    stacked.__name__ = stacked.__qualname__ = name
    return flexible(stacked)
