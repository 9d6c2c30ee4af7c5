"""Registry cases for the affine nets."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from tests.nets.registry import NetCase
from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


CASES = [
    NetCase("linear", nets.linear(_, _, 3), _x((2, 5))),
    NetCase("linear_no_batch", nets.linear(_, _, 3), _x((5,))),
    NetCase("linear_many_batch", nets.linear(_, _, 3, False), _x((2, 3, 5))),
    NetCase("linear_like", lambda p, x: nets.linear_like(p, x, jnp.ones((7,))), _x((2, 5))),
    NetCase("branch_linear", nets.branch_linear(_, _, 3), _x((2, 4))),
    NetCase("mlp", nets.mlp(_, _, [8, 8, 3]), _x((2, 5))),
]
