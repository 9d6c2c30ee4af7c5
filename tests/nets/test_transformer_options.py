"""transformer_block / transformer options against hand-written references; the cached decoding steps."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.nets._random import close as _close
from tests.nets._random import normal as _normal
from tests.nets._random import perturb as _randomize
from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, checking





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


def _reference(params: Params, x: jax.Array, norm: str, placement: str, gated: bool, attn: dict[str, Any]) -> jax.Array:
    """The block written out from its formulas (the attention is tested on its own)."""
    n = _rms if norm == "rms" else _ln

    def attention(h: jax.Array) -> jax.Array:
        return nets.multi_head_self_attention(params["attention"], h, 2, None, True, **attn)

    def ffn(h: jax.Array) -> jax.Array:
        if gated:
            g = jax.nn.silu(h @ _get(params, "mlp", "gate", "weights") + _get(params, "mlp", "gate", "bias"))
            u = h @ _get(params, "mlp", "up", "weights") + _get(params, "mlp", "up", "bias")
            return (g * u) @ _get(params, "mlp", "down", "weights") + _get(params, "mlp", "down", "bias")
        h = jax.nn.silu(h @ _get(params, "mlp", 0, "weights") + _get(params, "mlp", 0, "bias"))
        return h @ _get(params, "mlp", 1, "weights") + _get(params, "mlp", 1, "bias")

    if placement == "parallel":
        h = n(params["attention_norm"], x)
        return x + attention(h) + ffn(h)
    if placement == "post":
        x = n(params["attention_norm"], x + attention(x))
        return n(params["mlp_norm"], x + ffn(x))
    x = x + attention(n(params["attention_norm"], x))
    return x + ffn(n(params["mlp_norm"], x))


OPTION_SETS = [
    ("layer", "pre", False, {}),
    ("rms", "pre", True, {"rope": True, "num_kv_heads": 1}),
    ("layer", "post", False, {"key_size": 6, "value_size": 3}),
    ("rms", "parallel", True, {"rope": True, "rope_base": 50.0}),
]


@pytest.mark.parametrize("norm,placement,gated,attn", OPTION_SETS)
def test_block_options_match_the_formulas(key: jax.Array, norm: str, placement: str, gated: bool, attn: dict[str, Any]) -> None:
    x = _normal(key, 1, (2, 5, 8))
    options: dict[str, Any] = {"norm": norm, "placement": placement, "gated": gated, "activation": jax.nn.silu, "mlp_dim": 12, **attn}
    net = nets.transformer_block(_, _, 2, is_causal=True, **options)
    params = _randomize(trace(net, key, x), key)
    assert ("mlp_norm" in params) == (placement != "parallel")
    assert sorted(params["mlp"]) == (["down", "gate", "up"] if gated else [0, 1])
    if norm == "rms":
        assert sorted(params["attention_norm"]) == ["scale"]
    if "key_size" in attn:
        validate(params["attention"]["query"]["weights"], (8, 12))
        validate(params["attention"]["value"]["weights"], (8, 6))
        validate(params["attention"]["out"]["weights"], (6, 8))
    with jax.numpy_rank_promotion("allow"):
        _close(net(params, x), _reference(params, x, norm, placement, gated, attn))


def test_key_size_and_value_size_match_numpy(key: jax.Array) -> None:
    q, kv = _normal(key, 1, (2, 3, 8)), _normal(key, 2, (2, 4, 5))
    net = nets.multi_head_attention(_, _, _, _, 4, num_kv_heads=2, key_size=3, value_size=5)
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


def _check_initialized(block: Params, gated: bool) -> None:
    for name in ("query", "key", "value"):
        assert np.all(np.asarray(block["attention"][name]["weights"]) == 0.5)
    assert np.all(np.asarray(block["attention"]["out"]["weights"]) == -1.0)
    last, first = ("down", "gate") if gated else (1, 0)
    assert np.all(np.asarray(block["mlp"][last]["weights"]) == -1.0)
    assert np.all(np.asarray(block["mlp"][first]["weights"]) == 0.5)
    assert np.all(np.asarray(block["mlp"][first]["bias"]) == 0.25)


INITIALIZERS: dict[str, Any] = {"weights_initializer": _constant(0.5), "out_initializer": _constant(-1.0), "bias_initializer": _constant(0.25)}


@pytest.mark.parametrize("gated", [False, True])
def test_initializers_reach_every_projection(key: jax.Array, gated: bool) -> None:
    x = _normal(key, 1, (2, 5, 8))
    _check_initialized(trace(nets.transformer_block(_, _, 2, gated=gated, **INITIALIZERS), key, x), gated)
    mlp_params = trace(nets.mlp(_, _, [4, 3], final_weights_initializer=_constant(2.0), bias_initializer=_constant(1.0)), key, x)
    assert np.all(np.asarray(mlp_params[1]["weights"]) == 2.0) and np.all(np.asarray(mlp_params[0]["bias"]) == 1.0)
    assert not np.all(np.asarray(mlp_params[0]["weights"]) == 2.0)


def test_initializers_reach_every_projection_of_a_stack(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = trace(nets.transformer(_, _, 2, 2, **INITIALIZERS), key, x)
    _check_initialized(params["layers"], False)


def test_dropout_in_attention_and_blocks(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = _randomize(trace(nets.transformer_block(_, _, 2), key, x), key)
    plain = nets.transformer_block(params, x, 2, is_causal=True)
    rates: dict[str, Any] = {"dropout_rate": 0.3, "attention_dropout_rate": 0.2}
    _close(nets.transformer_block(params, x, 2, is_causal=True, deterministic=True, **rates), plain)
    a = nets.transformer_block(params, x, 2, is_causal=True, key=jax.random.key(1), **rates)
    b = nets.transformer_block(params, x, 2, is_causal=True, key=jax.random.key(1), **rates)
    c = nets.transformer_block(params, x, 2, is_causal=True, key=jax.random.key(2), **rates)
    _close(a, b, 0)
    assert not np.allclose(np.asarray(a), np.asarray(c)) and not np.allclose(np.asarray(a), np.asarray(plain))
    # residual dropout at rate 1 drops both branches: a pre-norm block returns its input
    _close(nets.transformer_block(params, x, 2, dropout_rate=1.0, key=jax.random.key(3)), x, 0)
    # attention-weight dropout at rate 1: every head is 0, the attention is its output bias
    att = params["attention"]
    y = nets.multi_head_self_attention(att, x, 2, dropout_rate=1.0, key=jax.random.key(4))
    _close(y, jnp.broadcast_to(_get(params, "attention", "out", "bias"), x.shape), 1e-6)
    # attention-weight dropout matches the formula with the same mask: softmax, keep / (1 - rate)
    q, k, v = (_normal(key, i, (2, 5, 2, 4)) for i in (5, 6, 7))
    dropped = nets.dot_product_attention(q, k, v, None, True, dropout_rate=0.5, key=jax.random.key(5))
    logits = jnp.einsum("bthd,bshd->bhts", q, k) / 2.0
    logits = jnp.where(jnp.tril(jax.lax.full((5, 5), True, jnp.bool_)), logits, -jnp.inf)
    keep = jax.random.bernoulli(jax.random.key(5), 0.5, (2, 2, 5, 5))
    weights = jnp.where(keep, jax.nn.softmax(logits, -1) / 0.5, 0.0)
    _close(dropped, jnp.einsum("bhts,bshd->bthd", weights, v), 1e-5)
    # a stack with dropout gives each layer its own key, and is reproducible
    stack_params = trace(nets.transformer(_, _, 2, 2), key, x)
    s1 = nets.transformer(stack_params, x, 2, 2, dropout_rate=0.1, key=jax.random.key(7))
    s2 = nets.transformer(stack_params, x, 2, 2, dropout_rate=0.1, key=jax.random.key(7))
    _close(s1, s2, 0)
    _close(nets.transformer(stack_params, x, 2, 2, dropout_rate=0.1, deterministic=True), nets.transformer(stack_params, x, 2, 2))


def test_option_errors(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = trace(nets.transformer_block(_, _, 2), key, x)
    with pytest.raises(ValueError, match=r"transformer_block: dropout is on .* but no `key` was given: pass `key=` for training or `deterministic=True`"):
        nets.transformer_block(params, x, 2, dropout_rate=0.1)
    with pytest.raises(ValueError, match=r"multi_head_attention: `dropout_rate` is 0.1 but no `key` was given"):
        nets.multi_head_self_attention(params["attention"], x, 2, dropout_rate=0.1)
    with pytest.raises(TypeError, match=r"parameter 'placement'"):  # run-time checking reads the Literal
        nets.transformer_block(params, x, 2, placement="sandwich")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with checking(False), pytest.raises(ValueError, match=r"transformer_block: `placement` must be 'pre', 'post' or 'parallel', got 'sandwich'"):
        nets.transformer_block(params, x, 2, placement="sandwich")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with checking(False), pytest.raises(ValueError, match=r"transformer_block: `norm` must be 'layer' or 'rms', got 'batch'"):
        nets.transformer_block(params, x, 2, norm="batch")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(ValueError, match=r"`attention_dropout_rate` must be a number in \[0, 1\], got 2.0"):
        nets.transformer_block(params, x, 2, attention_dropout_rate=2.0)


# ------------------------------------------------------------------------------ cached decoding


@pytest.mark.parametrize("norm,placement,gated,attn", OPTION_SETS)
def test_block_step_prefill_and_scan_equal_the_causal_block(key: jax.Array, norm: str, placement: str, gated: bool, attn: dict[str, Any]) -> None:
    x = _normal(key, 1, (2, 7, 8))
    options: dict[str, Any] = {"norm": norm, "placement": placement, "gated": gated, "mlp_dim": 12, **attn}
    params = _randomize(trace(nets.transformer_block(_, _, 2, **options), key, x), key)
    full = nets.transformer_block(params, x, 2, is_causal=True, **options)
    sizes = {k: v for k, v in attn.items() if k in ("num_kv_heads", "key_size", "value_size")}
    cache = nets.init_kv_cache(x, 2, 8, **sizes)
    prefix, cache = nets.transformer_block_step(params, cache, x[:, :3], 2, **options)

    def body(cache: nets.KVCache, x_t: jax.Array) -> tuple[nets.KVCache, jax.Array]:
        y_t, cache = nets.transformer_block_step(params, cache, x_t[:, None], 2, **options)
        return cache, y_t[:, 0]

    cache, rest = jax.lax.scan(body, cache, jnp.moveaxis(x[:, 3:], 1, 0))
    _close(jnp.concatenate([prefix, jnp.moveaxis(rest, 0, 1)], axis=1), full, 1e-5)
    assert int(cache["length"]) == 7


@pytest.mark.parametrize("scan", [True, False])
def test_transformer_step_prefill_and_jitted_scan_equal_the_causal_stack(key: jax.Array, scan: bool) -> None:
    x = _normal(key, 1, (2, 6, 8))
    options: dict[str, Any] = {"norm": "rms", "gated": True, "rope": True, "num_kv_heads": 1, "activation": jax.nn.silu, "use_bias": False}
    params = _randomize(trace(nets.transformer(_, _, 3, 2, scan=scan, **options), key, x), key)
    full = nets.transformer(params, x, 3, 2, scan=scan, is_causal=True, **options)
    cache = nets.init_transformer_cache(x, 3, 2, 6, num_kv_heads=1)
    prefix, cache = nets.transformer_step(params, cache, x[:, :2], 3, 2, scan=scan, **options)

    @jax.jit
    def decode(cache: nets.KVCache, rest: jax.Array) -> tuple[nets.KVCache, jax.Array]:
        def body(cache: nets.KVCache, x_t: jax.Array) -> tuple[nets.KVCache, jax.Array]:
            y_t, cache = nets.transformer_step(params, cache, x_t[:, None], 3, 2, scan=scan, **options)
            return cache, y_t[:, 0]

        return jax.lax.scan(body, cache, jnp.moveaxis(rest, 1, 0))

    cache, rest = decode(cache, x[:, 2:])
    _close(jnp.concatenate([prefix, jnp.moveaxis(rest, 0, 1)], axis=1), full, 1e-5)
    assert np.asarray(cache["length"]).tolist() == [6, 6, 6]


def test_transformer_step_checks_the_cache(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 1, 8))
    params = trace(nets.transformer(_, _, 2, 2), key, x)
    with pytest.raises(ValueError, match=r"transformer_step: `cache` must hold one cache per layer .* num_layers=2\): cache\['length'\] of shape \(2,\), got \(\)"):
        nets.transformer_step(params, nets.init_kv_cache(x, 2, 4), x, 2, 2)
