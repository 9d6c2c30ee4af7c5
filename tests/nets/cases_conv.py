"""Registry cases for the convolutions."""

from __future__ import annotations

from collections.abc import Callable

import jax

from tests.nets.registry import NetCase
from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


CASES = [
    NetCase("conv", nets.conv(_, _, 4, (3, 2), 2), _x((2, 5, 6, 3))),
    NetCase("conv_transpose", nets.conv_transpose(_, _, 4, (3,), 2), _x((2, 5, 3))),
    NetCase("conv_1d", nets.conv_1d(_, _, 4, 3), _x((2, 7, 3))),
    NetCase("conv_1d_causal_dilated", nets.conv_1d(_, _, 4, 3, 1, "CAUSAL", 2), _x((7, 3))),
    NetCase("conv_2d", nets.conv_2d(_, _, 4, 3, 2), _x((2, 6, 6, 3))),
    NetCase("conv_2d_groups_valid", nets.conv_2d(_, _, 4, (2, 3), 1, "VALID", feature_group_count=2), _x((2, 5, 6, 4))),
    NetCase("conv_2d_many_batch", nets.conv_2d(_, _, 2, 3, padding=[(1, 0), (0, 1)]), _x((2, 2, 4, 4, 1))),
    NetCase("conv_3d", nets.conv_3d(_, _, 3, 2), _x((2, 3, 3, 3, 2))),
    NetCase("conv_transpose_1d", nets.conv_transpose_1d(_, _, 4, 3, 2), _x((2, 5, 3))),
    NetCase("conv_transpose_2d", nets.conv_transpose_2d(_, _, 4, 3, 2, "VALID"), _x((2, 3, 3, 2))),
    NetCase("conv_transpose_3d", nets.conv_transpose_3d(_, _, 2, 2, 2), _x((2, 2, 2, 2))),
]
