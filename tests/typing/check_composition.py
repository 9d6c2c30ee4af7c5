"""Holed nets compose: chain, skip and the thread_* helpers keep the types (checked, never run)."""

from collections.abc import Callable
from typing import assert_type

import jax
from jax import Array

from zephyr import nets
from zephyr.functools.composition import chain, skip, thread_identity, thread_key, thread_params
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params


def chained(params: Params, x: Array) -> Array:
    f = chain(
        [
            nets.mlp(params["mlp"], _, [256, 256]),
            nets.layer_norm(params["ln"], _, -1),
            skip(nets.linear(params["skip"], _, 256)),
            jax.nn.relu,
            nets.linear(params["out"], _, 4),
        ]
    )
    assert_type(f, Callable[[Array], Array])
    return f(x)


def blocks(params: Params, key: Array, x: Array) -> Array:
    def block(params: Params, key: Array, x: Array) -> Array:
        return nets.linear(params, x, 8)

    by_params: list[Callable[[Array, Array], Array]] = thread_params([block, block, block], params)
    by_key: list[Callable[[Array], Array]] = thread_key(by_params, key)
    same: list[Callable[[Array], Array]] = thread_identity([nets.linear(_, _, 8)] * 2, params)
    return chain(by_key + same)(x)
