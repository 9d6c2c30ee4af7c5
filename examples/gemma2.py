"""A Gemma-2-style language model written from zephyr's parts, with cached sampling.

The model (the section between the two rules below, under 40 lines) is what a user writes:
RMSNorm as ``x * (1 + w)``, norms before and after each sublayer (``nets.sandwich``), GeGLU,
attention logits soft-capped, local (sliding-window) and global layers alternating, RoPE,
grouped-query attention, embeddings scaled by ``sqrt(d)``, tied output projection and the
final logits soft-capped. The same block values drive the full forward, the cache and the
decoding step. ``examples/_hf_families.py`` builds the same model from a Hugging Face
``Gemma2Config`` and matches ``Gemma2ForCausalLM`` to 1e-5.

This script makes random params, checks that a prefill plus one token per step gives the
logits of the whole sequence, and samples from a prompt with the cache under ``jax.jit``:

    python examples/gemma2.py
    python examples/gemma2.py --layers 4 --window 4 --new-tokens 32
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import Array

from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params

# ---------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Config:
    vocab: int = 256
    d: int = 64
    layers: int = 4  # alternating local and global: a multiple of 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    mlp: int = 128
    window: int = 8  # the local layers' sliding window
    attention_cap: float = 50.0
    final_cap: float = 30.0


@functools.cache  # one value per config: the norm part is compared by identity
def blocks(c: Config) -> tuple[nets.Block, nets.Block]:
    no_bias = nets.projections(use_bias=False)
    norm = nets.rms_norm(_, _, eps=1e-6, unit_offset=True)
    mlp = nets.gated(nets.feed_forward(c.mlp, functools.partial(jax.nn.gelu, approximate=True), projections=no_bias))

    def layer(local: bool) -> nets.Block:
        window = (nets.sliding_window(c.window),) if local else ()
        attention = nets.attention(c.heads, num_kv_heads=c.kv_heads, key_size=c.head_dim, causal=True,
                                   on_qk=nets.rotary(), on_logits=(nets.soft_cap(c.attention_cap), *window),
                                   projections=no_bias)  # fmt: skip
        return nets.block(attention, mlp, norm, nets.sandwich)

    return layer(local=True), layer(local=False)


def embed(params: Params, tokens: Array, c: Config) -> Array:
    return nets.token_embed(params["embed"], tokens, c.vocab, c.d) * math.sqrt(c.d)


def unembed(params: Params, h: Array, c: Config) -> Array:
    logits = h @ validate(params["embed"]["embeddings"], (c.vocab, c.d)).T
    return nets.soft_cap(c.final_cap)(logits)


def gemma2(params: Params, tokens: Array, c: Config) -> Array:
    return unembed(params, nets.transformer(params["transformer"], embed(params, tokens, c), c.layers, blocks(c)), c)


def gemma2_step(params: Params, cache: nets.Cache, tokens: Array, c: Config) -> tuple[Array, nets.Cache]:
    h, cache = nets.step(params["transformer"], cache, embed(params, tokens, c))
    return unembed(params, h, c), cache


# ---------------------------------------------------------------------------- using it


def empty_cache(c: Config, batch: int, max_len: int) -> nets.Cache:
    """A cache for :func:`gemma2_step`, made from the same blocks as the full forward."""
    return nets.init_cache(jnp.zeros((batch, 1, c.d)), max_len, blocks(c), c.layers)


def sample(params: Params, prompt: Array, c: Config, new_tokens: int, key: Array, temperature: float = 1.0) -> Array:
    """``new_tokens`` sampled after ``prompt`` ``(batch, prompt_len)``: one prefill, then one
    token per step, each step under ``jax.jit``."""
    step = jax.jit(gemma2_step, static_argnums=3)
    cache = empty_cache(c, prompt.shape[0], prompt.shape[1] + new_tokens)
    logits, cache = step(params, cache, prompt, c)
    out: list[Array] = []
    for k in jax.random.split(key, new_tokens):
        token = jax.random.categorical(k, logits[:, -1] / temperature)[:, None]
        out.append(token)
        logits, cache = step(params, cache, token, c)
    return jnp.concatenate(out, axis=1)


def main(argv: list[str] | None = None) -> float:
    """Check cached decoding against the full forward and sample; returns the largest difference."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4, help="blocks, local and global alternating (default: 4)")
    parser.add_argument("--d", type=int, default=64, help="model width (default: 64)")
    parser.add_argument("--window", type=int, default=8, help="sliding window of the local layers (default: 8)")
    parser.add_argument("--length", type=int, default=24, help="tokens of the checked sequence (default: 24)")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens to sample (default: 16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    c = Config(d=args.d, layers=args.layers, window=args.window)
    key_params, key_tokens, key_sample = jax.random.split(jax.random.key(args.seed), 3)
    tokens = jax.random.randint(key_tokens, (2, args.length), 0, c.vocab)
    params = trace(gemma2, key_params, tokens, c)

    full = gemma2(params, tokens, c)
    cache = empty_cache(c, 2, args.length)
    half = args.length // 2
    first, cache = gemma2_step(params, cache, tokens[:, :half], c)
    steps = [first]
    for t in range(half, args.length):
        logits, cache = gemma2_step(params, cache, tokens[:, t : t + 1], c)
        steps.append(logits)
    difference = float(jnp.max(jnp.abs(jnp.concatenate(steps, axis=1) - full)))
    print(f"max |cached - full| over {args.length} tokens (prefill {half}, then one per step): {difference:.2e}")
    if difference > 1e-4:
        raise SystemExit(f"gemma2: cached decoding differs from the full forward by {difference:.2e} (> 1e-4)")

    sampled = sample(params, tokens[:, :4], c, args.new_tokens, key_sample)
    print(f"sampled after a 4-token prompt (random params): {sampled.tolist()}")
    return difference


if __name__ == "__main__":
    main()
