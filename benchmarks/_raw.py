# jax annotates jit, tree and jnp functions partially; a benchmark harness calls them everywhere.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false, reportUnknownLambdaType=false
"""The floor: the benchmark models written in raw JAX, as a JAX user writes them.

``init_*`` builds a params dict with ``jax.random`` calls (eagerly, one call per leaf);
``apply_*`` is a pure function of ``(params, x)``. The dicts use the same keys as the zephyr
models in ``_models.py`` so that the two applies can be checked against each other on the
same weights, and the initializers draw from the same distributions (truncated normal scaled
by fan-in for matrices, zeros for biases, ones/zeros for norms, zephyr's embedding defaults),
so both sides do the same work.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

RawParams = dict[str | int, "RawParams | Array"]
"""A nested dict of arrays (what a raw JAX user's init returns)."""

_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to (-2, 2)
_MASKED = float(np.finfo(np.float32).min)


def _weights(key: Array, d_in: int, d_out: int, layers: int | None = None) -> RawParams:
    """A linear layer's params without bias: truncated normal weights (variance 1/fan-in)."""
    lead = () if layers is None else (layers,)
    std = math.sqrt(1.0 / d_in) / _TRUNC_STD
    return {"weights": jax.random.truncated_normal(key, -2.0, 2.0, (*lead, d_in, d_out)) * std}


def _dense(key: Array, d_in: int, d_out: int, layers: int | None = None) -> RawParams:
    """A linear layer's params: truncated normal weights (variance 1/fan-in), zero bias."""
    lead = () if layers is None else (layers,)
    return {**_weights(key, d_in, d_out, layers), "bias": jnp.zeros((*lead, d_out))}


def _conv(key: Array, kernel: int, c_in: int, c_out: int) -> RawParams:
    std = math.sqrt(1.0 / (kernel * kernel * c_in)) / _TRUNC_STD
    return {
        "weights": jax.random.truncated_normal(key, -2.0, 2.0, (kernel, kernel, c_in, c_out)) * std,
        "bias": jnp.zeros((c_out,)),
    }


def _norm(d: int, layers: int | None = None) -> RawParams:
    lead = () if layers is None else (layers,)
    return {"scale": jnp.ones((*lead, d)), "offset": jnp.zeros((*lead, d))}


def _leaf(tree: RawParams | Array, *path: str | int) -> Array:
    node = tree
    for key in path:
        assert isinstance(node, dict)
        node = node[key]
    assert isinstance(node, Array)
    return node


def _sub(tree: RawParams, key: str | int) -> RawParams:
    node = tree[key]
    assert isinstance(node, dict)
    return node


# ---------------------------------------------------------------------------------------- MLP


def init_mlp(key: Array, d_in: int, widths: tuple[int, ...]) -> RawParams:
    """``{i: {"weights", "bias"}}`` for ``len(widths)`` layers."""
    keys = jax.random.split(key, len(widths))
    params: RawParams = {}
    for i, width in enumerate(widths):
        params[i] = _dense(keys[i], d_in, width)
        d_in = width
    return params


def apply_mlp(params: RawParams, x: Array) -> Array:
    """ReLU between layers, none after the last."""
    n = len(params)
    for i in range(n):
        x = x @ _leaf(params, i, "weights") + _leaf(params, i, "bias")
        if i < n - 1:
            x = jax.nn.relu(x)
    return x


# ---------------------------------------------------------------------------------------- CNN

CNN_LAYERS = ((32, 1), (64, 2), (64, 2))
"""``(out_channels, stride)`` of the three 3x3 convolutions."""


def init_cnn(key: Array, c_in: int, classes: int) -> RawParams:
    """Three 3x3 convolutions (ReLU), global mean pool, a linear head."""
    keys = jax.random.split(key, len(CNN_LAYERS) + 1)
    convs: RawParams = {}
    for i, (c_out, _stride) in enumerate(CNN_LAYERS):
        convs[i] = _conv(keys[i], 3, c_in, c_out)
        c_in = c_out
    return {"convs": convs, "head": _dense(keys[-1], c_in, classes)}


def apply_cnn(params: RawParams, x: Array) -> Array:
    """``x`` ``(batch, h, w, c)`` -> logits ``(batch, classes)``."""
    for i, (_c_out, stride) in enumerate(CNN_LAYERS):
        x = jax.lax.conv_general_dilated(
            x, _leaf(params, "convs", i, "weights"), (stride, stride), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        x = jax.nn.relu(x + _leaf(params, "convs", i, "bias"))
    x = jnp.mean(x, axis=(1, 2))
    return x @ _leaf(params, "head", "weights") + _leaf(params, "head", "bias")


# ---------------------------------------------------------------------------------------- GPT


def _init_block(key: Array, d: int, mlp_dim: int, layers: int | None = None) -> RawParams:
    keys = jax.random.split(key, 6)
    return {
        "attention_norm": _norm(d, layers),
        "attention": {
            "query": _dense(keys[0], d, d, layers),
            "key": _dense(keys[1], d, d, layers),
            "value": _dense(keys[2], d, d, layers),
            "out": _dense(keys[3], d, d, layers),
        },
        "mlp_norm": _norm(d, layers),
        "mlp": {0: _dense(keys[4], d, mlp_dim, layers), 1: _dense(keys[5], mlp_dim, d, layers)},
    }


def init_gpt(
    key: Array, vocab: int, d: int, num_layers: int, seq: int, *, stacked: bool = False
) -> RawParams:
    """A GPT: token and learned position embeddings, pre-norm blocks, final norm, head.

    ``stacked``: every block leaf has a leading layer axis (for ``lax.scan``); else
    ``params["transformer"]["layers"][i]`` per block.
    """
    k_tok, k_pos, k_head, k_layers = jax.random.split(key, 4)
    mlp_dim = 4 * d
    layers: RawParams
    if stacked:
        layers = _init_block(k_layers, d, mlp_dim, num_layers)
    else:
        keys = jax.random.split(k_layers, num_layers)
        layers = {i: _init_block(keys[i], d, mlp_dim) for i in range(num_layers)}
    transformer: RawParams = {"layers": layers, "final_norm": _norm(d)}
    return {
        "embed": {"embeddings": jax.random.normal(k_tok, (vocab, d)) * (1.0 / math.sqrt(d))},
        "position": {"embeddings": jax.random.truncated_normal(k_pos, -2.0, 2.0, (seq, d)) * 0.02},
        "transformer": transformer,
        "head": _dense(k_head, d, vocab),
    }


def _layer_norm(p: RawParams, x: Array) -> Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * _leaf(p, "scale") + _leaf(p, "offset")


def _linear(p: RawParams, x: Array) -> Array:
    return x @ _leaf(p, "weights") + _leaf(p, "bias")


def _block(p: RawParams, x: Array, num_heads: int) -> Array:
    b, t, d = x.shape
    h = _layer_norm(_sub(p, "attention_norm"), x)
    att = _sub(p, "attention")
    q = _linear(_sub(att, "query"), h).reshape(b, t, num_heads, d // num_heads)
    k = _linear(_sub(att, "key"), h).reshape(b, t, num_heads, d // num_heads)
    v = _linear(_sub(att, "value"), h).reshape(b, t, num_heads, d // num_heads)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q / math.sqrt(d // num_heads), k)
    causal = jnp.tril(jnp.ones((t, t), bool))
    weights = jax.nn.softmax(jnp.where(causal, logits, _MASKED), axis=-1)
    heads = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
    x = x + _linear(_sub(att, "out"), heads)
    h = _layer_norm(_sub(p, "mlp_norm"), x)
    mlp = _sub(p, "mlp")
    h = _linear(_sub(mlp, 1), jax.nn.gelu(_linear(_sub(mlp, 0), h)))
    return x + h


def apply_gpt(params: RawParams, tokens: Array, num_heads: int, *, stacked: bool = False) -> Array:
    """``tokens`` ``(batch, seq)`` int -> logits ``(batch, seq, vocab)``; causal."""
    x = jnp.take(_leaf(params, "embed", "embeddings"), tokens, axis=0)
    x = x + _leaf(params, "position", "embeddings")[: tokens.shape[-1]]
    transformer = _sub(params, "transformer")
    layers = _sub(transformer, "layers")
    if stacked:
        def body(carry: Array, layer: RawParams) -> tuple[Array, None]:
            return _block(layer, carry, num_heads), None

        x, _unused = jax.lax.scan(body, x, layers)
    else:
        for i in range(len(layers)):
            x = _block(_sub(layers, i), x, num_heads)
    x = _layer_norm(_sub(transformer, "final_norm"), x)
    return _linear(_sub(params, "head"), x)


# -------------------------------------------------------------------------------------- LLaMA

LLAMA_EPS = 1e-6
"""RMSNorm's epsilon (Hugging Face's ``rms_norm_eps``, ``examples/llama.py``'s default)."""

LLAMA_ROPE_BASE = 10000.0
"""RoPE's wavelength base (``rope_theta``)."""


def _init_llama_block(key: Array, d: int, kv_dim: int, mlp_dim: int, layers: int) -> RawParams:
    keys = jax.random.split(key, 7)
    return {
        "attention_norm": {"scale": jnp.ones((layers, d))},
        "attention": {
            "query": _weights(keys[0], d, d, layers),
            "key": _weights(keys[1], d, kv_dim, layers),
            "value": _weights(keys[2], d, kv_dim, layers),
            "out": _weights(keys[3], d, d, layers),
        },
        "mlp_norm": {"scale": jnp.ones((layers, d))},
        "mlp": {
            "gate": _weights(keys[4], d, mlp_dim, layers),
            "up": _weights(keys[5], d, mlp_dim, layers),
            "down": _weights(keys[6], mlp_dim, d, layers),
        },
    }


def init_llama(
    key: Array, vocab: int, d: int, num_layers: int, num_heads: int, num_kv_heads: int, mlp_dim: int
) -> RawParams:
    """A LLaMA-style decoder: token embeddings (tied output), RMSNorm, grouped-query attention
    with RoPE, a SwiGLU MLP, no biases; every layer leaf has a leading layer axis (for ``lax.scan``)."""
    k_tok, k_layers = jax.random.split(key)
    layers = _init_llama_block(k_layers, d, num_kv_heads * (d // num_heads), mlp_dim, num_layers)
    return {
        "embed": {"embeddings": jax.random.normal(k_tok, (vocab, d)) * (1.0 / math.sqrt(d))},
        "transformer": {"layers": layers, "final_norm": {"scale": jnp.ones((d,))}},
    }


def _rms_norm(p: RawParams, x: Array) -> Array:
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + LLAMA_EPS) * _leaf(p, "scale")


def _rope(x: Array) -> Array:
    """Rotate half (GPT-NeoX, LLaMA): feature ``i`` pairs with ``i + head_dim / 2``; ``x`` ``(b, t, heads, head_dim)``."""
    t, head_dim = x.shape[1], x.shape[3]
    half = head_dim // 2
    inverse_frequency = LLAMA_ROPE_BASE ** (-jnp.arange(half, dtype=jnp.float32) * 2 / head_dim)
    angles = jnp.arange(t, dtype=jnp.float32)[:, None] * inverse_frequency  # (t, half)
    cos, sin = jnp.cos(angles)[:, None, :], jnp.sin(angles)[:, None, :]  # (t, 1, half): every head
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _llama_block(p: RawParams, x: Array, num_heads: int, num_kv_heads: int) -> Array:
    b, t, d = x.shape
    head_dim = d // num_heads
    att = _sub(p, "attention")
    h = _rms_norm(_sub(p, "attention_norm"), x)
    q = (h @ _leaf(att, "query", "weights")).reshape(b, t, num_heads, head_dim)
    k = (h @ _leaf(att, "key", "weights")).reshape(b, t, num_kv_heads, head_dim)
    v = (h @ _leaf(att, "value", "weights")).reshape(b, t, num_kv_heads, head_dim)
    heads = jax.nn.dot_product_attention(_rope(q), _rope(k), v, is_causal=True)  # GQA: K divides H
    x = x + heads.reshape(b, t, d) @ _leaf(att, "out", "weights")
    h = _rms_norm(_sub(p, "mlp_norm"), x)
    mlp = _sub(p, "mlp")
    gated = jax.nn.silu(h @ _leaf(mlp, "gate", "weights")) * (h @ _leaf(mlp, "up", "weights"))
    return x + gated @ _leaf(mlp, "down", "weights")


def apply_llama(params: RawParams, tokens: Array, num_heads: int, num_kv_heads: int, *, scan: bool = True) -> Array:
    """``tokens`` ``(batch, seq)`` int -> logits ``(batch, seq, vocab)``; causal, the embedding table tied.

    ``scan=False``: a Python loop over ``params["transformer"]["layers"][i]`` (unstacked leaves)."""
    table = _leaf(params, "embed", "embeddings")
    x = jnp.take(table, tokens, axis=0)
    transformer = _sub(params, "transformer")
    layers = _sub(transformer, "layers")
    if scan:
        def body(carry: Array, layer: RawParams) -> tuple[Array, None]:
            return _llama_block(layer, carry, num_heads, num_kv_heads), None

        x, _unused = jax.lax.scan(body, x, layers)
    else:
        for i in range(len(layers)):
            x = _llama_block(_sub(layers, i), x, num_heads, num_kv_heads)
    return _rms_norm(_sub(transformer, "final_norm"), x) @ table.T
