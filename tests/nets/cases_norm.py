"""Registry cases for the normalization nets."""

from __future__ import annotations

from collections.abc import Callable

import jax

from tests.nets.registry import NetCase
from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


CASES = [
    NetCase("layer_norm", nets.layer_norm(_, _), _x((2, 5))),
    NetCase("layer_norm_two_axes", nets.layer_norm(_, _, (-2, -1)), _x((2, 3, 4))),
    NetCase("layer_norm_no_batch", nets.layer_norm(_, _), _x((5,))),
    NetCase("rms_norm", nets.rms_norm(_, _), _x((2, 3, 5))),
    NetCase("group_norm", nets.group_norm(_, _, 2), _x((2, 3, 3, 4))),
    NetCase("batch_norm_train", nets.batch_norm(_, _, _, True), _x((4, 3)), stateful=True),
    NetCase("batch_norm_eval", nets.batch_norm(_, _, _, False), _x((4, 2, 3)), stateful=True),
]
