"""Registry cases for the attention and transformer nets."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from tests.nets.registry import NetCase
from zephyr import nets
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params

QKV = tuple[jax.Array, jax.Array, jax.Array]


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


def _qkv(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> Callable[[jax.Array], QKV]:
    def make(key: jax.Array) -> QKV:
        kq, kk, kv = jax.random.split(key, 3)
        return jax.random.normal(kq, q), jax.random.normal(kk, k), jax.random.normal(kv, v)

    return make


_POSITIONS = jax.lax.iota(jnp.int32, 6)
_PADDING = jnp.stack([_POSITIONS < 6, _POSITIONS < 4])  # (batch=2, seq=6): the second has 4 tokens


_CAUSAL = nets.attention(2, causal=True)
_LLAMA = nets.block(
    nets.attention(4, num_kv_heads=2, causal=True, on_qk=nets.rotary(), projections=nets.projections(False)),
    nets.gated(nets.feed_forward(16, nets.silu, projections=nets.projections(False))),
    nets.rms_norm(_, _, eps=1e-6),
)
_GEMMA = nets.block(
    nets.attention(2, causal=True, on_logits=(nets.soft_cap(5.0), nets.sliding_window(3)), scale=0.5),
    nets.gated(nets.feed_forward(16)),
    nets.rms_norm(_, _, unit_offset=True),
    nets.sandwich,
)


def _step(params: Params, x: jax.Array) -> jax.Array:
    y, _cache = nets.step(params, nets.init_cache(x, 8, _CAUSAL), x)
    return y


def _block_step(params: Params, x: jax.Array) -> jax.Array:
    y, _cache = nets.step(params, nets.init_cache(x, 8, _LLAMA), x)
    return y


def _stack_step(params: Params, x: jax.Array) -> jax.Array:
    y, _cache = nets.step(params, nets.init_cache(x, 8, (_GEMMA, _LLAMA), 2, scan=False), x)  # traced by the loop
    return y


def _dot_product(params: Params, x: QKV) -> jax.Array:
    return nets.dot_product_attention(x[0], x[1], x[2], is_causal=True)


def _single_head(params: Params, x: QKV) -> jax.Array:
    return nets.single_head_attention(params, x[0], x[1], x[2])


def _cross(params: Params, x: QKV) -> jax.Array:
    return nets.multi_head_attention(params, x[0], x[1], x[2], 4)


def _gqa(params: Params, x: QKV) -> jax.Array:
    return nets.multi_head_attention(params, x[0], x[1], x[1], nets.attention(4, num_kv_heads=2))


CASES = [
    NetCase("dot_product_attention", _dot_product, _qkv((2, 5, 4, 8), (2, 5, 2, 8), (2, 5, 2, 3))),
    NetCase("single_head_attention", _single_head, _qkv((2, 5, 8), (2, 7, 6), (2, 7, 6))),
    NetCase("multi_head_attention", _cross, _qkv((2, 5, 8), (2, 7, 6), (2, 7, 3))),
    NetCase("multi_head_attention_gqa", _gqa, _qkv((2, 5, 8), (2, 7, 8), (2, 7, 8))),
    NetCase("multi_head_self_attention", nets.multi_head_self_attention(_, _, 2), _x((2, 6, 8))),
    NetCase("multi_head_self_attention_unbatched", nets.multi_head_self_attention(_, _, 2), _x((6, 8))),
    NetCase("multi_head_self_attention_causal", nets.multi_head_self_attention(_, _, 2, None, True), _x((2, 6, 8))),
    NetCase("multi_head_self_attention_padding", nets.multi_head_self_attention(_, _, 2, padding_mask=_PADDING), _x((2, 6, 8))),
    NetCase(
        "multi_head_self_attention_mqa",
        nets.multi_head_self_attention(_, _, nets.attention(4, num_kv_heads=1, projections=nets.projections(False))),
        _x((2, 6, 8)),
    ),
    NetCase("multi_head_self_attention_step", _step, _x((2, 3, 8))),
    NetCase("transformer_block", nets.transformer_block(_, _, nets.block(2, nets.feed_forward(16))), _x((2, 6, 8))),
    NetCase("transformer_block_llama", nets.transformer_block(_, _, _LLAMA), _x((2, 6, 8))),
    NetCase("transformer_block_gemma", nets.transformer_block(_, _, _GEMMA), _x((2, 6, 8))),
    NetCase("transformer_block_step", _block_step, _x((2, 3, 8))),
    NetCase("transformer", nets.transformer(_, _, 2, nets.block(2, nets.feed_forward(16))), _x((2, 6, 8))),
    NetCase("transformer_loop", nets.transformer(_, _, 2, nets.block(2, nets.feed_forward(16)), scan=False), _x((2, 6, 8))),
    NetCase("transformer_remat", nets.transformer(_, _, 2, nets.block(_CAUSAL), remat=True), _x((2, 6, 8))),
    NetCase("transformer_pattern", nets.transformer(_, _, 4, (_GEMMA, _LLAMA)), _x((2, 6, 8))),
    NetCase("transformer_step", _stack_step, _x((2, 3, 8))),
]
