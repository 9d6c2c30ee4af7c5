"""Registry cases for pooling."""

from __future__ import annotations

from collections.abc import Callable

import jax

from tests.nets.registry import NetCase
from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


CASES = [
    NetCase("max_pool", nets.max_pool(_, _, 2, 2), _x((2, 4, 4, 3))),
    NetCase("max_pool_tuple_same", nets.max_pool(_, _, (3,), 2), _x((2, 5, 3))),
    NetCase("max_pool_full_rank", nets.max_pool(_, _, (1, 2, 2, 1), (1, 2, 2, 1)), _x((2, 4, 4, 3))),
    NetCase("avg_pool_full_rank", nets.avg_pool(_, _, (1, 3, 1), (1, 2, 1), "VALID"), _x((2, 7, 3))),
    NetCase("avg_pool", nets.avg_pool(_, _, 3), _x((2, 4, 4, 3))),
    NetCase("avg_pool_explicit", nets.avg_pool(_, _, (2, 2), 1, [(1, 0), (0, 1)]), _x((2, 3, 4, 4, 3))),
    NetCase("global_avg_pool", nets.global_avg_pool, _x((2, 3, 3, 4))),
    NetCase("global_max_pool", nets.global_max_pool, _x((2, 3, 3, 4))),
]
