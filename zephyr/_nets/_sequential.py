"""``sequential``: layers applied in order, layer ``i`` with ``params[i]``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from jax import Array
from jaxtyping import Shaped

from ..core._types import Params
from ..functools._composition import chain
from .._flexible import flexible


@flexible
def sequential(
    params: Params,
    x: Shaped[Array, "*shape_in"],
    layers: Sequence[Callable[[Params, Array], Array]],
) -> Shaped[Array, "*shape_out"]:
    """Apply ``layers`` in order; layer ``i`` gets ``params[i]``.

    The same as ``chain(thread_params(layers, params))(x)`` (``zephyr.functools.composition``).
    An empty list is the identity.

    Args:
        params: layer ``i``'s params at ``params[i]`` (a layer without params gets ``{}``).
        x: the first layer's input.
        layers: functions ``(params, x) -> x``, e.g. ``nets.linear(_, _, 64)``.

    Returns:
        The last layer's output.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> layers = [nets.linear(_, _, 8), lambda p, x: nets.relu(x), nets.linear(_, _, 2)]
        >>> x = jnp.ones((3, 4))
        >>> params = trace(nets.sequential(_, _, layers), jax.random.key(0), x)
        >>> sorted(params), nets.sequential(params, x, layers).shape
        ([0, 2], (3, 2))
    """
    given = cast(object, layers)  # any value at run time
    if callable(given) or isinstance(given, str) or not isinstance(given, Iterable):
        raise TypeError(f"sequential: `layers` must be a list of functions (params, x) -> x, got {layers!r}")
    functions = list(layers)
    for i, layer in enumerate(functions):
        if not callable(layer):
            raise TypeError(f"sequential: `layers[{i}]` is {type(layer).__name__}, not a function (params, x) -> x")
    return chain([functools.partial(layer, _or_empty(params, i)) for i, layer in enumerate(functions)])(x)


def _or_empty(params: Params, i: int) -> Params:
    """``params[i]``, or ``{}`` for a layer without params (``trace`` creates no subtree for it)."""
    try:
        return params[i]
    except (KeyError, IndexError):
        return {}
