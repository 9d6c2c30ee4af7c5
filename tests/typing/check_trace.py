"""``trace`` returns the params type of the net it traces (checked, never run)."""

from typing import assert_type

from jax import Array

from zephyr import nets, trace, trace_with_state, validate
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import ParamsTree


@flexible
def affine(params: ParamsTree, x: Array, out_dim: int) -> Array:
    w = validate(params["w"], (x.shape[-1], out_dim))
    b = validate(params["b"], (out_dim,))
    return x @ w + b


def traced(key: Array, x: Array) -> None:
    assert_type(trace(nets.linear(_, _, 256), key, x), ParamsTree)
    assert_type(trace(nets.linear, key, x, 256), ParamsTree)
    assert_type(trace(nets.mlp, key, x, [8, 3]), ParamsTree)
    assert_type(trace(nets.transformer_block(_, _, 4), key, x), ParamsTree)
    assert_type(trace(affine, key, x, 3), ParamsTree)
    params = trace(nets.conv_2d(_, _, 64, 3), key, x)
    assert_type(nets.conv_2d(params, x, 64, 3), Array)
    assert_type(trace_with_state(nets.batch_norm(_, _, _, True), key, x), tuple[ParamsTree, ParamsTree])
    params, state = trace_with_state(nets.batch_norm, key, x, True)
    y, state = nets.batch_norm(params, state, x, True)
    assert_type(y, Array)
    assert_type(state, ParamsTree)
