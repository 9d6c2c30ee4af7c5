"""The hole forms of every net give a typed function of exactly the missing arguments (checked,
never run): the inputs (``f(_, _, hp)``), the last input (``f(params, _, hp)``), every leading
parameter (``f(_, _, _)``)."""

from collections.abc import Callable
from typing import assert_type

from jax import Array

from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _
from zephyr.nets import Cache, LSTMState
from zephyr.typing import Params, ParamsTree


def linear(params: Params, x: Array) -> None:
    assert_type(nets.linear(params, x, 256), Array)
    assert_type(nets.linear(_, _, 256)(params, x), Array)
    assert_type(nets.linear(params, _, 256)(x), Array)
    assert_type(nets.linear(_, _, _)(params, x, 256), Array)
    assert_type(nets.linear(_, _, 256)(params=params, x=x), Array)  # filled by name
    assert_type(nets.linear(_, _, 256, False, dtype="bfloat16")(params, x), Array)
    typed: Callable[[Params, Array], Array] = nets.linear(_, _, 256)
    assert_type(typed(params, x), Array)


def affine(params: Params, x: Array, reference: Array) -> None:
    assert_type(nets.linear_like(params, x, _)(reference), Array)
    assert_type(nets.branch_linear(_, _, 3)(params, x), Array)
    assert_type(nets.mlp(_, _, [256, 256])(params, x), Array)
    assert_type(nets.mlp(_, _, (8, 3), activation_final=nets.skip(lambda y: y))(params, x), Array)


def norms(params: Params, state: Params, x: Array) -> None:
    assert_type(nets.layer_norm(_, _)(params, x), Array)
    assert_type(nets.layer_norm(_, _, -1)(params, x), Array)
    assert_type(nets.rms_norm(params, _)(x), Array)
    assert_type(nets.group_norm(_, _, 4)(params, x), Array)
    assert_type(nets.batch_norm(_, _, _, True)(params, state, x), tuple[Array, ParamsTree])
    y, new_state = nets.batch_norm(params, state, x, False)
    assert_type(nets.batch_norm(params, new_state, y, False), tuple[Array, ParamsTree])


def convolutions(params: Params, x: Array, padding: str) -> None:
    assert_type(nets.conv_2d(params, x, 64, 3, padding=padding), Array)  # a str variable: checked at run time
    assert_type(nets.max_pool(params, x, 2, 2, padding), Array)
    assert_type(nets.conv_1d(_, _, 64, 5)(params, x), Array)
    assert_type(nets.conv_1d(_, _, 64, 5, padding="CAUSAL")(params, x), Array)
    assert_type(nets.conv_2d(_, _, 64, (3, 3), 2)(params, x), Array)
    assert_type(nets.conv_3d(_, _, 8, 3)(params, x), Array)
    assert_type(nets.conv_transpose_1d(_, _, 8, 3)(params, x), Array)
    assert_type(nets.conv_transpose_2d(_, _, 8, 3, 2, "VALID")(params, x), Array)
    assert_type(nets.conv_transpose_3d(params, _, 8, 3)(x), Array)
    assert_type(nets.conv_transpose(_, _, 8, (3, 3))(params, x), Array)
    assert_type(nets.conv(params, _, 8, (3,))(x), Array)
    assert_type(nets.conv(_, _, _, _)(params, x, 8, (3, 3)), Array)


def attention(params: Params, q: Array, k: Array, v: Array, masks: Array, cache: Cache) -> None:
    assert_type(nets.dot_product_attention(_, _, _)(q, k, v), Array)
    assert_type(nets.dot_product_attention(q, k, v, masks, True), Array)
    assert_type(nets.single_head_attention(_, _, _, _)(params, q, k, v), Array)
    assert_type(nets.multi_head_attention(_, _, _, _, 8)(params, q, k, v), Array)
    assert_type(nets.multi_head_attention(params, q, k, _, nets.attention(8, num_kv_heads=2), masks)(v), Array)
    assert_type(nets.multi_head_self_attention(_, _, 8, is_causal=True)(params, q), Array)
    block = nets.block(nets.attention(8, causal=True, on_qk=nets.rotary()), nets.gated(nets.feed_forward(32, nets.silu)))
    assert_type(block, nets.Block)
    assert_type(nets.transformer_block(_, _, 8)(params, q), Array)
    assert_type(nets.transformer_block(_, _, block)(params, q), Array)
    assert_type(nets.transformer(_, _, 2, 8)(params, q), Array)
    assert_type(nets.transformer(_, _, _, _)(params, q, 2, (block, block)), Array)
    assert_type(nets.init_cache(q, 16, block, 2), Cache)
    assert_type(nets.step(params, cache, q), tuple[Array, Cache])


def recurrent(params: Params, x: Array, carry: Array, lstm_carry: LSTMState) -> None:
    assert_type(nets.rnn_cell(_, _, _, 16)(params, carry, x), tuple[Array, Array])
    assert_type(nets.gru_cell(params, carry, _, 16)(x), tuple[Array, Array])
    assert_type(nets.lstm_cell(params, lstm_carry, _, 16)(x), tuple[LSTMState, Array])
    assert_type(nets.rnn(_, _, 16)(params, x), Array)
    assert_type(nets.rnn(_, _, 16, return_state=True)(params, x), tuple[Array, Array])
    assert_type(nets.gru(_, _, 16, reverse=True)(params, x), Array)
    assert_type(nets.lstm(_, _, 16)(params, x), Array)
    assert_type(nets.lstm(_, _, 16, return_state=True)(params, x), tuple[Array, LSTMState])
    assert_type(nets.bidirectional(_, _, 16, "gru")(params, x), Array)
    assert_type(nets.recurrent(_, _, nets.gru_cell(_, _, _, 16), initial_state=carry)(params, x), Array)


def pools_and_regularizers(params: Params, key: Array, x: Array) -> None:
    assert_type(nets.max_pool(_, _, 3, 2)(params, x), Array)
    assert_type(nets.avg_pool(params, _, (2, 2))(x), Array)
    assert_type(nets.global_avg_pool(_, _)(params, x), Array)
    assert_type(nets.global_max_pool(params, x, keepdims=True), Array)
    assert_type(nets.dropout(_, _, _, 0.2)(params, key, x), Array)
    assert_type(nets.dropout(params, key, _, 0.2, deterministic=True)(x), Array)
    assert_type(nets.stochastic_depth(params, key, _, 0.1)(x), Array)


def embeddings(params: Params, token_ids: Array, x: Array) -> None:
    assert_type(nets.token_embed(_, _, 1000, 64)(params, token_ids), Array)
    assert_type(nets.positional_embed(_, _, 512)(params, x), Array)
    assert_type(nets.sinusoidal_embed(_)(x), Array)
    assert_type(nets.rope(x), Array)
    assert_type(nets.sequential(_, _, [nets.linear(_, _, 8), nets.layer_norm(_, _)])(params, x), Array)
