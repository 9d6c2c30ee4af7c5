"""A LLaMA-style character model from the built-in parts: RMSNorm, RoPE, grouped-query
attention, a SwiGLU MLP and tied embeddings, with no hand-written attention or cache.

The model is ``nets.token_embed``, then ``nets.transformer`` of one block value made of parts
(``llama_block``: a causal ``nets.attention`` with ``nets.rotary``, a gated SiLU
``nets.feed_forward`` and ``nets.rms_norm``), and the embedding table as the output
projection. The same block value drives the full forward, the cache (``nets.init_cache``) and
the decoding step (``nets.step``). It trains a few steps on the standard library's source (the
text ``examples/char_transformer.py`` uses), checks cached decoding against the full causal
forward, and samples with the cache. ``params_from_hf`` loads the
state dict of a Hugging Face ``LlamaForCausalLM`` (with tied embeddings) into these params
(``examples/llama_hf_check.py`` compares the logits with transformers'):

    python examples/llama.py
    python examples/llama.py --steps 1000 --layers 4
    python examples/llama.py --help
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import string
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jax import Array

from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.nets import Cache
from zephyr.typing import Params

SOURCES: tuple[ModuleType, ...] = (json, json.decoder, json.encoder, textwrap, string, argparse)


@dataclass(frozen=True)
class Config:
    """The model's hyperparameters (the names of Hugging Face's ``LlamaConfig`` in comments)."""

    vocab_size: int  # vocab_size
    d: int  # hidden_size
    num_layers: int  # num_hidden_layers
    num_heads: int  # num_attention_heads
    num_kv_heads: int  # num_key_value_heads
    mlp_dim: int  # intermediate_size
    rope_base: float = 10000.0  # rope_theta
    eps: float = 1e-6  # rms_norm_eps


@functools.cache  # one value per config: equal blocks, so jit and the cache's treedef see one block
def llama_block(config: Config) -> nets.Block:
    """The LLaMA decoder block as parts: one value for the forward, the cache and the step."""
    no_bias = nets.projections(use_bias=False)
    return nets.block(
        nets.attention(
            config.num_heads,
            num_kv_heads=config.num_kv_heads,
            causal=True,
            on_qk=nets.rotary(config.rope_base),
            projections=no_bias,
        ),
        nets.gated(nets.feed_forward(config.mlp_dim, nets.silu, projections=no_bias)),
        nets.rms_norm(_, _, eps=config.eps),
    )


def unembed(params: Params, h: Array, config: Config) -> Array:
    """Logits from the last hidden states: the embedding table is the output projection (tied)."""
    table = validate(params["embed"]["embeddings"], (config.vocab_size, config.d))
    return h @ table.T


def llama(params: Params, tokens: Array, config: Config) -> Array:
    """Logits ``(*batch, seq, vocab)`` of token ids ``(*batch, seq)``, causal."""
    x = nets.token_embed(params["embed"], tokens, config.vocab_size, config.d)
    h = nets.transformer(params["transformer"], x, config.num_layers, llama_block(config))
    return unembed(params, h, config)


def llama_step(params: Params, cache: Cache, tokens: Array, config: Config) -> tuple[Array, Cache]:
    """Logits of new tokens ``(*batch, new)`` given the cache of the tokens before them (the
    cache knows the block: see :func:`empty_cache`)."""
    x = nets.token_embed(params["embed"], tokens, config.vocab_size, config.d)
    h, cache = nets.step(params["transformer"], cache, x)
    return unembed(params, h, config), cache


def params_from_hf(state_dict: Mapping[str, Any]) -> Params:
    """Params of :func:`llama` from a Hugging Face ``LlamaForCausalLM`` state dict (tied embeddings).

    Torch's linear weights are ``(out, in)``: transposed here. The layers are stacked (the
    layout of ``nets.transformer(scan=True)``). Values may be torch tensors or arrays (e.g.
    ``safetensors.numpy.load_file`` of a ``model.safetensors``), in any float dtype. The output
    projection is the embedding table: a tied checkpoint has no ``lm_head.weight`` (or one equal
    to the table); an untied one is refused with a ``ValueError``, since it would load and give
    wrong logits.

    The query and key projections are taken as they are, with no permutation: transformers'
    Llama layout is already the "rotate half" one of ``nets.rope`` (feature ``i`` of a head is
    paired with ``i + head_dim / 2``); Meta's interleaved pairs are permuted into it by
    transformers' conversion script, before any state dict. Head ``h`` is rows ``h * head_dim``
    to ``(h + 1) * head_dim`` of transformers' projection, so columns of the transposed one,
    where zephyr's attention reads it; query head ``h`` reads key/value head ``h //
    (num_heads // num_kv_heads)`` in both (transformers' ``repeat_kv``).
    ``examples/llama_hf_check.py`` compares the logits with transformers'.
    """

    def array(name: str) -> np.ndarray[Any, Any]:
        value = state_dict[name]
        if hasattr(value, "detach"):  # a torch tensor (bfloat16 has no numpy dtype: float first)
            value = value.detach().float().numpy()
        return np.asarray(value, np.float32)

    embeddings = array("model.embed_tokens.weight")
    if "lm_head.weight" in state_dict and not np.array_equal(array("lm_head.weight"), embeddings):
        raise ValueError(
            "params_from_hf: `lm_head.weight` differs from `model.embed_tokens.weight`: the "
            "checkpoint's output projection is not tied, and this model ties it to the embeddings"
        )

    num_layers = 1 + max(int(name.split(".")[2]) for name in state_dict if name.startswith("model.layers."))

    def stacked(suffix: str, transpose: bool = True) -> Array:
        arrays = [array(f"model.layers.{i}.{suffix}") for i in range(num_layers)]
        return jnp.asarray(np.stack([a.T if transpose else a for a in arrays]))

    def weights(suffix: str) -> dict[str, Array]:
        return {"weights": stacked(suffix)}

    layers: Params = {
        "attention_norm": {"scale": stacked("input_layernorm.weight", transpose=False)},
        "attention": {
            "query": weights("self_attn.q_proj.weight"),
            "key": weights("self_attn.k_proj.weight"),
            "value": weights("self_attn.v_proj.weight"),
            "out": weights("self_attn.o_proj.weight"),
        },
        "mlp_norm": {"scale": stacked("post_attention_layernorm.weight", transpose=False)},
        "mlp": {
            "gate": weights("mlp.gate_proj.weight"),
            "up": weights("mlp.up_proj.weight"),
            "down": weights("mlp.down_proj.weight"),
        },
    }
    return {
        "embed": {"embeddings": jnp.asarray(embeddings)},
        "transformer": {"layers": layers, "final_norm": {"scale": jnp.asarray(array("model.norm.weight"))}},
    }


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
        logits = llama(params, windows[:, :-1], config)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]))

    def step(params: Params, opt_state: optax.OptState, windows: Array) -> tuple[Params, optax.OptState, Array]:
        value, grads = jax.value_and_grad(loss)(params, windows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return cast(Params, optax.apply_updates(params, updates)), opt_state, value

    return jax.jit(step)


def empty_cache(config: Config, batch_size: int, max_len: int) -> Cache:
    """A cache of ``max_len`` positions for :func:`llama_step`, made from the model's block."""
    sample = jnp.zeros((batch_size, 1, config.d))
    return nets.init_cache(sample, max_len, llama_block(config), config.num_layers)


def generate(params: Params, config: Config, prompt: Array, length: int, key: Array, temperature: float) -> Array:
    """Pre-fill the cache with ``prompt`` ``(b, p)``, then sample ``length`` ids in one ``lax.scan``."""
    cache = empty_cache(config, prompt.shape[0], prompt.shape[1] + length)
    logits, cache = llama_step(params, cache, prompt, config)

    def body(carry: tuple[Cache, Array, Array], step_key: Array) -> tuple[tuple[Cache, Array, Array], Array]:
        cache, last, _ = carry
        token = jax.random.categorical(step_key, last / temperature)[:, None]
        logits, cache = llama_step(params, cache, token, config)
        return (cache, logits[:, -1], token), token[:, 0]

    keys = jax.random.split(key, length)
    _, tokens = jax.lax.scan(body, (cache, logits[:, -1], prompt[:, :1]), keys)
    return jnp.concatenate([prompt, tokens.T], axis=1)


def cache_error(params: Params, config: Config, tokens: Array) -> float:
    """The largest difference between the cached decoding (prefill half, then one token per step)
    and the full causal forward."""
    cache = empty_cache(config, tokens.shape[0], tokens.shape[1])
    half = tokens.shape[1] // 2
    logits, cache = llama_step(params, cache, tokens[:, :half], config)
    steps = [logits]
    for t in range(half, tokens.shape[1]):
        logits, cache = llama_step(params, cache, tokens[:, t : t + 1], config)
        steps.append(logits)
    full = llama(params, tokens, config)
    return float(jnp.max(jnp.abs(jnp.concatenate(steps, axis=1) - full)))


def main(argv: list[str] | None = None) -> float:
    """Train and sample; returns the final training loss (nats per character)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per step (default: 16)")
    parser.add_argument("--context", type=int, default=128, help="characters per window (default: 128)")
    parser.add_argument("--d", type=int, default=128, help="model width (default: 128)")
    parser.add_argument("--layers", type=int, default=2, help="decoder blocks (default: 2)")
    parser.add_argument("--heads", type=int, default=4, help="query heads (default: 4)")
    parser.add_argument("--kv-heads", type=int, default=2, help="key/value heads, grouped-query attention (default: 2)")
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
    mlp_dim = 8 * ((8 * args.d // 3 + 7) // 8)  # LLaMA's 8/3 d, rounded up to a multiple of 8
    config = Config(len(vocab), args.d, args.layers, args.heads, args.kv_heads, mlp_dim)
    print(f"text: {len(text):,} characters of stdlib source, {len(vocab)} distinct")

    def decode(ids: Array) -> str:
        return "".join(vocab[i] for i in np.asarray(ids).tolist())

    key, sample_key = jax.random.split(jax.random.key(args.seed))
    rng = np.random.default_rng(args.seed)

    def windows() -> Array:
        starts = rng.integers(0, len(data) - args.context - 1, args.batch_size)
        return jnp.asarray(np.stack([data[s : s + args.context + 1] for s in starts]))

    def model(params: Params, tokens: Array) -> Array:
        return llama(params, tokens, config)

    params = trace(model, key, windows()[:, :-1])
    print(f"params: {sum(leaf.size for leaf in jax.tree.leaves(params)):,}")
    probe = jnp.asarray(data[None, : min(16, args.context)])
    print(f"cached decoding vs the full causal forward: max |difference| {cache_error(params, config, probe):.2e}")

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

    prompt = jnp.asarray([[index[c] for c in args.prompt]], jnp.int32)
    sampled = jax.jit(generate, static_argnums=(1, 3, 5))(params, config, prompt, args.sample_length, sample_key, args.temperature)
    print(f"--- sample ---\n{decode(sampled[0])}")
    return float(loss)


if __name__ == "__main__":
    main()
