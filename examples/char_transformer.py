"""A causal character-level transformer trained on the Python standard library's own source.

Every machine with Python has the text: the example reads a few stdlib modules' source
files (found with ``inspect.getsourcefile``). It prints a sample before and after training;
sampling decodes one character at a time with a key/value cache
(``nets.init_cache`` and ``nets.step``), checked first against the full causal forward:

    python examples/char_transformer.py
    python examples/char_transformer.py --steps 1500 --layers 3     # better samples, slower
    python examples/char_transformer.py --help
"""

# jax and optax leave parts of their own signatures untyped (jit's and grad's wrappers):
# strict pyright would flag every use, so these three reports are off here.

from __future__ import annotations

import argparse
import functools
import inspect
import json
import string
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jax import Array

from zephyr import nets, trace, validate
from zephyr.nets import Cache
from zephyr.typing import Params

SOURCES: tuple[ModuleType, ...] = (json, json.decoder, json.encoder, textwrap, string, argparse)


@dataclass(frozen=True)
class Config:
    """The model's hyperparameters."""

    vocab_size: int
    max_len: int
    d: int
    num_layers: int
    num_heads: int


# --- the model --------------------------------------------------------------------------


def feed_forward(params: Params, x: Array) -> Array:
    """``x + mlp(norm(x))``: the second half of a pre-norm block."""
    h = nets.layer_norm(params["mlp_norm"], x)
    return x + nets.mlp(params["mlp"], h, [4 * x.shape[-1], x.shape[-1]], jax.nn.gelu)


@functools.cache  # one value per head count: the cache made from it and the forward agree
def _causal(num_heads: int) -> nets.Attention:
    return nets.attention(num_heads, causal=True)


def block(params: Params, x: Array, num_heads: int) -> Array:
    """A pre-norm block over a whole sequence, causal: ``(b, t, d) -> (b, t, d)``."""
    h = nets.layer_norm(params["attention_norm"], x)
    x = x + nets.multi_head_self_attention(params["attention"], h, _causal(num_heads))
    return feed_forward(params, x)


def block_step(params: Params, cache: Cache, x: Array) -> tuple[Array, Cache]:
    """The same block for new positions only, attending over the cache (made for its attention)."""
    h = nets.layer_norm(params["attention_norm"], x)
    y, cache = nets.step(params["attention"], cache, h)
    return feed_forward(params, x + y), cache


def logits_of(params: Params, x: Array, config: Config) -> Array:
    """The final norm and the read-out to one logit per character."""
    return nets.linear(params["head"], nets.layer_norm(params["final_norm"], x), config.vocab_size)


def language_model(params: Params, tokens: Array, config: Config) -> Array:
    """Token ids ``(b, t)`` to next-character logits ``(b, t, vocab_size)``."""
    x = nets.token_embed(params["embed"], tokens, config.vocab_size, config.d)
    x = nets.positional_embed(params["position"], x, config.max_len)
    for i in range(config.num_layers):
        x = block(params["blocks"][i], x, config.num_heads)
    return logits_of(params, x, config)


def language_model_step(
    params: Params, caches: list[Cache], tokens: Array, config: Config
) -> tuple[Array, list[Cache]]:
    """New token ids ``(b, n)`` at positions ``caches[0].length + [0, n)``: logits and caches."""
    x = nets.token_embed(params["embed"], tokens, config.vocab_size, config.d)
    table = validate(params["position"]["embeddings"], (config.max_len, config.d))
    rows = jax.lax.dynamic_slice_in_dim(table, caches[0].length, tokens.shape[-1])
    x = x + jnp.broadcast_to(rows, x.shape)
    new_caches: list[Cache] = []
    for i in range(config.num_layers):
        x, cache = block_step(params["blocks"][i], caches[i], x)
        new_caches.append(cache)
    return logits_of(params, x, config), new_caches


# --- data, training, sampling -----------------------------------------------------------


def load_text(max_chars: int) -> str:
    """The source of a few standard-library modules, as one string."""
    parts: list[str] = []
    for module in SOURCES:
        path = inspect.getsourcefile(module)
        if path is not None:
            with open(path, encoding="utf-8") as f:
                parts.append(f.read())
    return "\n".join(parts)[:max_chars]


def make_step(
    config: Config, optimizer: optax.GradientTransformation
) -> Callable[[Params, optax.OptState, Array], tuple[Params, optax.OptState, Array]]:
    """One jitted step on a batch of windows ``(b, t + 1)``: predict each next character."""

    def loss(params: Params, windows: Array) -> Array:
        logits = language_model(params, windows[:, :-1], config)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]))

    def step(params: Params, opt_state: optax.OptState, windows: Array) -> tuple[Params, optax.OptState, Array]:
        value, grads = jax.value_and_grad(loss)(params, windows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # apply_updates is typed as returning any pytree: it is the params' own tree
        return cast(Params, optax.apply_updates(params, updates)), opt_state, value

    return jax.jit(step)


Decoder = Callable[[Params, list[Cache], Array], tuple[Array, list[Cache]]]
"""``(params, caches, tokens (b, 1)) -> (logits (b, 1, vocab), caches)``: one decoding step."""


@functools.cache  # one compiled step per config
def make_decoder(config: Config) -> tuple[Decoder, Callable[[int], list[Cache]]]:
    """A jitted one-character step, and a function of the batch size giving empty caches."""

    @jax.jit
    def decode(params: Params, caches: list[Cache], tokens: Array) -> tuple[Array, list[Cache]]:
        return language_model_step(params, caches, tokens, config)

    def empty(batch_size: int) -> list[Cache]:
        d_sample = jnp.zeros((batch_size, 1, config.d))
        return [nets.init_cache(d_sample, config.max_len, _causal(config.num_heads))] * config.num_layers

    return decode, empty


def sample(
    params: Params, config: Config, prompt: Array, length: int, key: Array, temperature: float
) -> Array:
    """Feed ``prompt`` ``(b, p)`` into the caches, then decode ``length`` more ids, one per step."""
    decode, empty = make_decoder(config)
    caches = empty(prompt.shape[0])
    logits = jnp.zeros(())
    for t in range(prompt.shape[1]):
        logits, caches = decode(params, caches, prompt[:, t : t + 1])
    out = [prompt]
    for i in range(length):
        key, sample_key = jax.random.split(key)
        token = jax.random.categorical(sample_key, logits[:, -1] / temperature)[:, None]
        out.append(token)
        if i + 1 < length:
            logits, caches = decode(params, caches, token)
    return jnp.concatenate(out, axis=1)


def cache_error(params: Params, config: Config, tokens: Array) -> float:
    """The largest difference between decoding with the cache, step by step, and the full forward."""
    decode, empty = make_decoder(config)
    caches = empty(tokens.shape[0])
    steps: list[Array] = []
    for t in range(tokens.shape[1]):
        logits, caches = decode(params, caches, tokens[:, t : t + 1])
        steps.append(logits)
    full = jax.jit(language_model, static_argnums=2)(params, tokens, config)
    return float(jnp.max(jnp.abs(jnp.concatenate(steps, axis=1) - full)))


def main(argv: list[str] | None = None) -> float:
    """Train and sample; returns the final training loss (nats per character)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per step (default: 16)")
    parser.add_argument("--context", type=int, default=128, help="characters per window, and the longest sample (default: 128)")
    parser.add_argument("--d", type=int, default=128, help="model width (default: 128)")
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks (default: 2)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default: 4)")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    parser.add_argument("--chars", type=int, default=400_000, help="at most this many characters of text")
    parser.add_argument("--sample-length", type=int, default=120, help="characters to sample (default: 120)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default: 0.7)")
    parser.add_argument("--prompt", default="def ", help='the sampling prompt (default: "def ")')
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    text = load_text(args.chars)
    vocab = sorted(set(text) | set(args.prompt))
    index = {c: i for i, c in enumerate(vocab)}
    data = np.asarray([index[c] for c in text], np.int32)
    if len(args.prompt) + args.sample_length > args.context:
        parser.error("the prompt and the sample must fit in --context (the positions the model learns)")
    config = Config(len(vocab), args.context, args.d, args.layers, args.heads)
    print(f"text: {len(text):,} characters of stdlib source, {len(vocab)} distinct")

    def decode(ids: Array) -> str:
        return "".join(vocab[i] for i in np.asarray(ids).tolist())

    key, sample_key = jax.random.split(jax.random.key(args.seed))
    rng = np.random.default_rng(args.seed)

    def windows() -> Array:
        starts = rng.integers(0, len(data) - args.context - 1, args.batch_size)
        return jnp.asarray(np.stack([data[s : s + args.context + 1] for s in starts]))

    def model(params: Params, tokens: Array) -> Array:
        return language_model(params, tokens, config)

    params = trace(model, key, windows()[:, :-1])
    print(f"params: {sum(leaf.size for leaf in jax.tree.leaves(params)):,}")
    probe = jnp.asarray(data[None, : min(16, args.context)])
    print(f"KV-cache decoding vs the full causal forward: max |difference| {cache_error(params, config, probe):.2e}")

    prompt = jnp.asarray([[index[c] for c in args.prompt]], jnp.int32)
    before = sample(params, config, prompt, args.sample_length, sample_key, args.temperature)
    print(f"--- sample before training ---\n{decode(before[0])}\n")

    schedule = optax.warmup_cosine_decay_schedule(0.0, args.learning_rate, max(1, args.steps // 10), args.steps)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule))
    opt_state = optimizer.init(params)
    step = make_step(config, optimizer)
    start = time.perf_counter()
    loss = jnp.zeros(())
    for i in range(args.steps):
        params, opt_state, loss = step(params, opt_state, windows())
        if (i + 1) % max(1, args.steps // 5) == 0:
            print(f"step {i + 1:5d}: loss {float(loss):.3f} nats/char ({time.perf_counter() - start:.0f} s)")

    after = sample(params, config, prompt, args.sample_length, sample_key, args.temperature)
    print(f"--- sample after training ---\n{decode(after[0])}")
    return float(loss)


if __name__ == "__main__":
    main()
