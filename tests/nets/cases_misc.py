"""Registry cases for dropout, stochastic depth, embeddings and sequential.

Key-taking nets bind a fixed key inside ``apply``, so every sweep sees the same mask.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from tests.nets.registry import NetCase
from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


def _ids(shape: tuple[int, ...], vocab: int) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.randint(key, shape, 0, vocab)


_MASK_KEY = jax.random.key(42)

CASES = [
    NetCase("dropout", lambda p, x: nets.dropout(p, _MASK_KEY, x, 0.3), _x((4, 5))),
    NetCase("dropout_deterministic", lambda p, x: nets.dropout(p, _MASK_KEY, x, 0.3, deterministic=True), _x((4, 5))),
    NetCase("stochastic_depth", lambda p, x: nets.stochastic_depth(p, _MASK_KEY, x, 0.5), _x((6, 3, 2))),
    NetCase("token_embed", nets.token_embed(_, _, 11, 4), _ids((2, 3), 11)),
    NetCase("positional_embed", nets.positional_embed(_, _, 8), _x((2, 5, 4))),
    NetCase("sinusoidal_embed", lambda p, x: nets.sinusoidal_embed(x), _x((2, 5, 6))),
    NetCase("rope", lambda p, x: nets.rope(x), _x((2, 5, 3, 4))),
    NetCase("rope_positions", lambda p, x: nets.rope(x, jnp.array([2, 3, 5, 7, 11])), _x((5, 2, 4))),
    NetCase(
        "sequential",
        nets.sequential(_, _, [nets.linear(_, _, 6), lambda p, x: nets.relu(x), nets.layer_norm(_, _), nets.linear(_, _, 2)]),
        _x((3, 4)),
    ),
]
