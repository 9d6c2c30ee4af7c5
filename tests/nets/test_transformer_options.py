"""Blocks from parts against hand-written references; one block value for the forward, the cache and the step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.nets._random import close as _close
from tests.nets._random import normal as _normal
from tests.nets._random import perturb as _randomize
from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params


def _get(params: Params, *path: str | int) -> jax.Array:
    node = params
    for k in path:
        node = node[k]
    return validate(node, tuple(getattr(node, "shape")))


def _ln(p: Params, h: jax.Array) -> jax.Array:
    mean = h.mean(-1, keepdims=True)
    var = ((h - mean) ** 2).mean(-1, keepdims=True)
    return (h - mean) / jnp.sqrt(var + 1e-5) * _get(p, "scale") + _get(p, "offset")


def _rms(p: Params, h: jax.Array) -> jax.Array:
    return h / jnp.sqrt((h**2).mean(-1, keepdims=True) + 1e-5) * _get(p, "scale")


def _rms_unit(p: Params, h: jax.Array) -> jax.Array:
    return h / jnp.sqrt((h**2).mean(-1, keepdims=True) + 1e-6) * (1.0 + _get(p, "scale"))


NORMS: dict[str, tuple[Any, Callable[[Params, jax.Array], jax.Array]]] = {
    "layer": (nets.layer_norm(_, _), _ln),
    "rms": (nets.rms_norm(_, _), _rms),
    "rms_unit": (nets.rms_norm(_, _, eps=1e-6, unit_offset=True), _rms_unit),
}


def _reference(params: Params, x: jax.Array, b: nets.Block, norm: str, arrangement: str, is_gated: bool) -> jax.Array:
    """The block written out from its formulas (the attention is tested on its own)."""
    n = NORMS[norm][1]

    def attention(h: jax.Array) -> jax.Array:
        return nets.multi_head_self_attention(params["attention"], h, b.attention)

    def ffn(h: jax.Array) -> jax.Array:
        if is_gated:
            g = jax.nn.silu(h @ _get(params, "mlp", "gate", "weights") + _get(params, "mlp", "gate", "bias"))
            u = h @ _get(params, "mlp", "up", "weights") + _get(params, "mlp", "up", "bias")
            return (g * u) @ _get(params, "mlp", "down", "weights") + _get(params, "mlp", "down", "bias")
        h = jax.nn.silu(h @ _get(params, "mlp", 0, "weights") + _get(params, "mlp", 0, "bias"))
        return h @ _get(params, "mlp", 1, "weights") + _get(params, "mlp", 1, "bias")

    if arrangement == "parallel":
        h = n(params["attention_norm"], x)
        return x + attention(h) + ffn(h)
    if arrangement == "post_norm":
        x = n(params["attention_norm"], x + attention(x))
        return n(params["mlp_norm"], x + ffn(x))
    if arrangement == "sandwich":
        x = x + n(params["post_attention_norm"], attention(n(params["attention_norm"], x)))
        return x + n(params["post_mlp_norm"], ffn(n(params["mlp_norm"], x)))
    x = x + attention(n(params["attention_norm"], x))
    return x + ffn(n(params["mlp_norm"], x))


OPTION_SETS: list[tuple[str, str, bool, dict[str, Any]]] = [
    ("layer", "pre_norm", False, {}),
    ("rms", "pre_norm", True, {"on_qk": nets.rotary(), "num_kv_heads": 1}),
    ("layer", "post_norm", False, {"key_size": 6, "value_size": 3}),
    ("rms", "parallel", True, {"on_qk": nets.rotary(50.0)}),
    ("rms_unit", "sandwich", True, {"on_logits": (nets.soft_cap(3.0), nets.sliding_window(2)), "scale": 0.4}),
]


def _block(norm: str, arrangement: str, is_gated: bool, attn: dict[str, Any]) -> nets.Block:
    mlp = nets.feed_forward(12, nets.silu)
    return nets.block(
        nets.attention(2, causal=True, **attn),
        nets.gated(mlp) if is_gated else mlp,
        NORMS[norm][0],
        getattr(nets, arrangement),
    )


@pytest.mark.parametrize("norm,arrangement,is_gated,attn", OPTION_SETS)
def test_blocks_from_parts_match_the_formulas(key: jax.Array, norm: str, arrangement: str, is_gated: bool, attn: dict[str, Any]) -> None:
    x = _normal(key, 1, (2, 5, 8))
    b = _block(norm, arrangement, is_gated, attn)
    net = nets.transformer_block(_, _, b)
    params = _randomize(trace(net, key, x), key)
    assert ("mlp_norm" in cast(dict[str, Any], params)) == (arrangement != "parallel")
    assert ("post_mlp_norm" in cast(dict[str, Any], params)) == (arrangement == "sandwich")
    assert sorted(params["mlp"]) == (["down", "gate", "up"] if is_gated else [0, 1])
    if norm != "layer":
        assert sorted(params["attention_norm"]) == ["scale"]
    if "key_size" in attn:
        validate(params["attention"]["query"]["weights"], (8, 12))
        validate(params["attention"]["value"]["weights"], (8, 6))
        validate(params["attention"]["out"]["weights"], (6, 8))
    with jax.numpy_rank_promotion("allow"):
        _close(net(params, x), _reference(params, x, b, norm, arrangement, is_gated))


def test_unit_offset_rms_norm_starts_at_the_identity_scale(key: jax.Array) -> None:
    x = _normal(key, 1, (3, 8))
    norm = nets.rms_norm(_, _, eps=1e-6, unit_offset=True)
    params = trace(norm, key, x)
    assert np.all(np.asarray(params["scale"]) == 0.0)
    _close(norm(params, x), nets.rms_norm({"scale": jnp.ones(8)}, x, eps=1e-6))


def test_key_size_and_value_size_match_numpy(key: jax.Array) -> None:
    q, kv = _normal(key, 1, (2, 3, 8)), _normal(key, 2, (2, 4, 5))
    net = nets.multi_head_attention(_, _, _, _, nets.attention(4, num_kv_heads=2, key_size=3, value_size=5))
    params = _randomize(trace(net, key, q, kv, kv), key)
    validate(params["out"]["weights"], (20, 8))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    qn, kn = np.asarray(q, np.float64), np.asarray(kv, np.float64)
    qh = (qn @ p["query"]["weights"] + p["query"]["bias"]).reshape(2, 3, 4, 3)
    kh = (kn @ p["key"]["weights"] + p["key"]["bias"]).reshape(2, 4, 2, 3).repeat(2, axis=2)
    vh = (kn @ p["value"]["weights"] + p["value"]["bias"]).reshape(2, 4, 2, 5).repeat(2, axis=2)
    logits = np.einsum("bthd,bshd->bhts", qh, kh) / np.sqrt(3)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    heads = np.einsum("bhts,bshd->bthd", w, vh).reshape(2, 3, 20)
    _close(net(params, q, kv, kv), heads @ p["out"]["weights"] + p["out"]["bias"], 1e-4)


def _constant(value: float) -> Any:
    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        return jax.lax.full(tuple(shape), value, dtype)

    return init


def _check_initialized(block: Params, is_gated: bool) -> None:
    for name in ("query", "key", "value"):
        assert np.all(np.asarray(block["attention"][name]["weights"]) == 0.5)
    assert np.all(np.asarray(block["attention"]["out"]["weights"]) == -1.0)
    last, first = ("down", "gate") if is_gated else (1, 0)
    assert np.all(np.asarray(block["mlp"][last]["weights"]) == -1.0)
    assert np.all(np.asarray(block["mlp"][first]["weights"]) == 0.5)
    assert np.all(np.asarray(block["mlp"][first]["bias"]) == 0.25)


INIT = nets.projections(weights_initializer=_constant(0.5), out_initializer=_constant(-1.0), bias_initializer=_constant(0.25))


def _initialized_block(is_gated: bool) -> nets.Block:
    mlp = nets.feed_forward(projections=INIT)
    return nets.block(nets.attention(2, projections=INIT), nets.gated(mlp) if is_gated else mlp)


@pytest.mark.parametrize("is_gated", [False, True])
def test_initializers_reach_every_projection(key: jax.Array, is_gated: bool) -> None:
    x = _normal(key, 1, (2, 5, 8))
    _check_initialized(trace(nets.transformer_block(_, _, _initialized_block(is_gated)), key, x), is_gated)
    params = trace(nets.transformer(_, _, 2, _initialized_block(is_gated)), key, x)
    _check_initialized(params["layers"], is_gated)


def test_no_bias_projections(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    no_bias = nets.projections(use_bias=False)
    b = nets.block(nets.attention(2, projections=no_bias), nets.gated(nets.feed_forward(8, projections=no_bias)))
    params = trace(nets.transformer_block(_, _, b), key, x)
    assert sorted(params["attention"]["query"]) == ["weights"] and sorted(params["mlp"]["up"]) == ["weights"]


def test_dropout_in_attention_and_blocks(key: jax.Array) -> None:
    # jitted, one program per block value (compiling each eager operation was most of the time)
    block = jax.jit(nets.transformer_block, static_argnums=2)
    stack = jax.jit(nets.transformer, static_argnums=(2, 3), static_argnames="scan")
    x = _normal(key, 1, (2, 5, 8))
    params = _randomize(trace(nets.transformer_block(_, _, 2), key, x), key)
    plain = block(params, x, nets.block(nets.attention(2, causal=True)))
    dropping = nets.block(nets.attention(2, causal=True, dropout_rate=0.2), residual_dropout=0.3)
    _close(block(params, x, nets.without_dropout(dropping)), plain)
    a = block(params, x, dropping, key=jax.random.key(1))
    b = block(params, x, dropping, key=jax.random.key(1))
    c = block(params, x, dropping, key=jax.random.key(2))
    _close(a, b, 0)
    assert not np.allclose(np.asarray(a), np.asarray(c)) and not np.allclose(np.asarray(a), np.asarray(plain))
    # residual dropout at rate 1 drops both branches: a pre-norm block returns its input
    _close(block(params, x, nets.block(2, residual_dropout=1.0), key=jax.random.key(3)), x, 0)
    # attention-weight dropout at rate 1: every head is 0, the attention is its output bias
    y = nets.multi_head_self_attention(params["attention"], x, nets.attention(2, dropout_rate=1.0), key=jax.random.key(4))
    _close(y, jnp.broadcast_to(_get(params, "attention", "out", "bias"), x.shape), 1e-6)
    # a stack with dropout gives each layer its own key, and is reproducible
    stack_params = trace(nets.transformer(_, _, 2, 2), key, x)
    drop_stack = nets.block(2, residual_dropout=0.1)
    s1 = stack(stack_params, x, 2, drop_stack, key=jax.random.key(7))
    s2 = stack(stack_params, x, 2, drop_stack, key=jax.random.key(7))
    _close(s1, s2, 0)
    _close(stack(stack_params, x, 2, nets.without_dropout(drop_stack)), stack(stack_params, x, 2, 2))
    pattern = nets.without_dropout((drop_stack, nets.block(nets.attention(2, dropout_rate=0.5))))
    assert [(b.residual_dropout, b.attention.dropout_rate) for b in pattern] == [(0.0, 0.0), (0.0, 0.0)]
    looped = trace(nets.transformer(_, _, 2, 2, scan=False), key, x)
    _close(stack(looped, x, 2, pattern, scan=False), stack(looped, x, 2, 2, scan=False))


def test_part_errors(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = trace(nets.transformer_block(_, _, 2), key, x)
    with pytest.raises(ValueError, match=r"transformer_block: dropout is on \(a rate of 0.1\) but no `key` was given: pass `key=` \(a JAX random key\) for training, or the block of `nets.without_dropout\(block\)` for evaluation"):
        nets.transformer_block(params, x, nets.block(2, residual_dropout=0.1))
    with pytest.raises(ValueError, match=r"transformer: dropout is on \(a rate of 0.2\) but no `key`"):
        nets.transformer({"layers": {0: params, 1: params}}, x, 2, (nets.block(2), nets.block(nets.attention(2, dropout_rate=0.2))), scan=False)
    with pytest.raises(ValueError, match=r"multi_head_attention: dropout is on \(a rate of 0.1\) but no `key` was given: .* or `nets.without_dropout\(attention\)` for evaluation"):
        nets.multi_head_self_attention(params["attention"], x, nets.attention(2, dropout_rate=0.1))
    with pytest.raises(ValueError, match=r"dot_product_attention: dropout is on \(a rate of 0.5\) but no `key` was given: .* or `dropout_rate=0.0` for evaluation"):
        nets.dot_product_attention(jnp.ones((5, 2, 4)), jnp.ones((5, 2, 4)), jnp.ones((5, 2, 4)), dropout_rate=0.5)
    with pytest.raises(TypeError, match=r"without_dropout: `model` must be a nets.attention\(...\) or nets.block\(...\) value or a tuple of blocks, got list"):
        nets.without_dropout([nets.block(2)])  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(TypeError, match=r"block: `arrangement` must be a function, got 'sandwich'"):
        nets.block(2, arrangement="sandwich")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(TypeError, match=r"block: `norm` must be a function, got 'rms'"):
        nets.block(2, norm="rms")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(ValueError, match=r"attention: `dropout_rate` must be a number in \[0, 1\], got 2.0"):
        nets.attention(2, dropout_rate=2.0)
    with pytest.raises(TypeError, match=r"gated: `mlp` must be a part of nets.feed_forward"):
        nets.gated(nets.silu)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(ValueError, match=r"sliding_window: `size` must be a positive int, got 0"):
        nets.sliding_window(0)
    with pytest.raises(ValueError, match=r"soft_cap: `cap` must be a positive number, got -1.0"):
        nets.soft_cap(-1.0)
    with pytest.raises(TypeError, match=r"parameter 'block'"):  # run-time checking reads the annotation
        nets.transformer_block(params, x, "x")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType, reportCallIssue]  # the bad value under test


# ------------------------------------------------------------------------------ cached decoding


@pytest.mark.parametrize("norm,arrangement,is_gated,attn", OPTION_SETS)
def test_block_step_prefill_and_scan_equal_the_causal_block(key: jax.Array, norm: str, arrangement: str, is_gated: bool, attn: dict[str, Any]) -> None:
    x = _normal(key, 1, (2, 7, 8))
    b = _block(norm, arrangement, is_gated, attn)
    params = _randomize(trace(nets.transformer_block(_, _, b), key, x), key)
    full = nets.transformer_block(params, x, b)
    cache = nets.init_cache(x, 8, b)
    prefix, cache = nets.step(params, cache, x[:, :3])

    def body(cache: nets.Cache, x_t: jax.Array) -> tuple[nets.Cache, jax.Array]:
        y_t, cache = nets.step(params, cache, x_t[:, None])
        return cache, y_t[:, 0]

    cache, rest = jax.lax.scan(body, cache, jnp.moveaxis(x[:, 3:], 1, 0))
    _close(jnp.concatenate([prefix, jnp.moveaxis(rest, 0, 1)], axis=1), full, 1e-5)
    assert int(cache.length) == 7


LLAMA = nets.block(
    nets.attention(2, num_kv_heads=1, causal=True, on_qk=nets.rotary(), projections=nets.projections(False)),
    nets.gated(nets.feed_forward(16, nets.silu, projections=nets.projections(False))),
    nets.rms_norm(_, _, eps=1e-6),
)


def _local_global(window: int | None) -> nets.Block:
    logits = (nets.soft_cap(4.0),) + (() if window is None else (nets.sliding_window(window),))
    return nets.block(
        nets.attention(2, causal=True, on_qk=nets.rotary(), on_logits=logits, scale=0.3),
        nets.gated(nets.feed_forward(16, nets.gelu)),
        nets.rms_norm(_, _, eps=1e-6, unit_offset=True),
        nets.sandwich,
    )


GEMMA = (_local_global(2), _local_global(None))


@pytest.mark.parametrize("scan", [True, False])
@pytest.mark.parametrize("model", ["llama", "gemma"])
def test_transformer_step_prefill_and_jitted_scan_equal_the_causal_stack(key: jax.Array, scan: bool, model: str) -> None:
    x = _normal(key, 1, (2, 6, 8))
    blocks = LLAMA if model == "llama" else GEMMA
    layers = 3 if model == "llama" else 4
    params = _randomize(trace(nets.transformer(_, _, layers, blocks, scan=scan), key, x), key)
    full = nets.transformer(params, x, layers, blocks, scan=scan)
    cache = nets.init_cache(x, 6, blocks, layers, scan=scan)
    prefix, cache = nets.step(params, cache, x[:, :2])

    @jax.jit
    def decode(cache: nets.Cache, rest: jax.Array) -> tuple[nets.Cache, jax.Array]:
        def body(cache: nets.Cache, x_t: jax.Array) -> tuple[nets.Cache, jax.Array]:
            y_t, cache = nets.step(params, cache, x_t[:, None])
            return cache, y_t[:, 0]

        return jax.lax.scan(body, cache, jnp.moveaxis(rest, 1, 0))

    cache, rest = decode(cache, x[:, 2:])
    _close(jnp.concatenate([prefix, jnp.moveaxis(rest, 0, 1)], axis=1), full, 1e-5)
    assert int(cache.length) == 6


def test_left_padded_decoding_equals_the_unpadded_sequences(key: jax.Array) -> None:
    """Left padding: pads masked over the cache, rotary positions counted from each first real token."""
    x = _normal(key, 1, (2, 6, 8))
    params = _randomize(trace(nets.transformer(_, _, 2, GEMMA), key, x), key)
    pad = jnp.asarray([0, 2])
    slots = jax.lax.iota(jnp.int32, 6)
    real = slots[None, :] >= pad[:, None]  # (batch, max_len)
    positions = slots[None, :] - pad[:, None]
    shifted = jnp.stack([x[0], jnp.roll(x[1], 2, axis=0)])  # example 1's first 4 tokens after 2 pads
    cache = nets.init_cache(x, 6, GEMMA, 2)
    y, cache = nets.step(params, cache, shifted[:, :3], padding_mask=real, positions=positions[:, :3])
    steps = [y]
    for t in range(3, 6):
        y, cache = nets.step(params, cache, shifted[:, t : t + 1], padding_mask=real, positions=positions[:, t : t + 1])
        steps.append(y)
    decoded = jnp.concatenate(steps, axis=1)
    full = nets.transformer(params, shifted, 2, GEMMA, padding_mask=real, positions=positions)
    _close(decoded[:, 2:], full[:, 2:], 1e-5)
    _close(decoded[0], nets.transformer(params, x[:1], 2, GEMMA)[0], 1e-5)
    _close(decoded[1, 2:], nets.transformer(params, x[1:, :4], 2, GEMMA)[0], 1e-5)


def test_the_cache_carries_its_block(key: jax.Array) -> None:
    """The step reads the block from the cache: no option to leave out, and another block is another treedef."""
    x = _normal(key, 1, (1, 4, 8))
    plain = nets.block(nets.attention(2, causal=True))
    rotated = nets.block(nets.attention(2, causal=True, on_qk=nets.rotary()))
    a, b = nets.init_cache(x, 4, rotated), nets.init_cache(x, 4, plain)
    assert a.model == rotated and a.model != b.model
    structure = cast(Any, jax.tree.structure)  # jax 0.12 types PyTreeDef without __eq__
    assert structure(a) != structure(b)
    assert structure(a) == structure(nets.init_cache(x, 4, nets.block(nets.attention(2, causal=True, on_qk=nets.rotary()))))
    params = trace(nets.transformer_block(_, _, rotated), key, x)
    y, _cache = nets.step(params, a, x)
    _close(y, nets.transformer_block(params, x, rotated), 1e-5)
    assert not np.allclose(np.asarray(nets.step(params, b, x)[0]), np.asarray(y))


def test_transformer_step_needs_a_stack_cache_for_stack_params(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 1, 8))
    causal = nets.block(nets.attention(2, causal=True))
    params = trace(nets.transformer(_, _, 2, causal), key, x)
    cache = nets.init_cache(x, 4, causal, 2)
    assert cache.keys[0].shape == (2, 2, 4, 2, 4) and dataclasses.is_dataclass(cache)
    with pytest.raises(ValueError, match=r"init_cache: a pattern of 2 blocks repeats a whole number of times: `num_layers` \(3\) must be a multiple of 2"):
        nets.init_cache(x, 4, (causal, causal), 3)
    with pytest.raises(ValueError, match=r"step: the cache was made for a block, but `params` are the params of a stack: make the cache"):
        nets.step(params, nets.init_cache(x, 4, causal), x)
    with pytest.raises(ValueError, match=r"step: the cache was made for a stack, but `params` are the params of a block"):
        nets.step(params["layers"], cache, x)
    assert nets.step(params, cache, x)[0].shape == x.shape
