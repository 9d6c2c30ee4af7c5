"""The benchmark models in zephyr: an MLP, a small CNN, a GPT-style transformer (as
``nets.transformer`` and as a user's own loop of ``nets.transformer_block``), the LLaMA-style
model of ``examples/llama.py``, and the seed model of ``examples/seed_model.py``.

The first four match ``_raw.py`` leaf for leaf (same keys, shapes and initial
distributions) so the harness can check both applies on the same weights. Every layer is a
``zephyr.nets`` net.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import Array
from jaxtyping import Float, Int

from zephyr import nets, validate
from zephyr.functools.partial import flexible, placeholder_hole
from zephyr.typing import Params

from _raw import CNN_LAYERS, LLAMA_EPS, LLAMA_ROPE_BASE


@flexible
def mlp(params: Params, x: Float[Array, "*batch d_in"], widths: tuple[int, ...]) -> Float[Array, "*batch d_out"]:
    """``nets.mlp``: ReLU between layers."""
    return nets.mlp(params, x, list(widths))


@flexible
def cnn(params: Params, x: Float[Array, "batch h w c"], classes: int) -> Float[Array, "batch classes"]:
    """Three 3x3 ``nets.conv_2d`` (ReLU), global mean pool, ``nets.linear`` head."""
    for i, (c_out, stride) in enumerate(CNN_LAYERS):
        x = jax.nn.relu(nets.conv_2d(params["convs"][i], x, c_out, 3, stride))
    return nets.linear(params["head"], jnp.mean(x, axis=(1, 2)), classes)


def gpt(
    vocab: int, d_model: int, num_layers: int, num_heads: int, *, scan: bool
) -> Callable[[Params, Array], Array]:
    """A GPT: token and position embeddings, ``nets.transformer`` (causal), a linear head."""
    block = nets.block(nets.attention(num_heads, causal=True))

    @flexible
    def model(params: Params, tokens: Int[Array, "*batch seq"]) -> Float[Array, "*batch seq vocab"]:
        x = nets.token_embed(params["embed"], tokens, vocab, d_model)
        x = nets.positional_embed(params["position"], x, tokens.shape[-1])
        x = nets.transformer(params["transformer"], x, num_layers, block, scan=scan)
        return nets.linear(params["head"], x, vocab)

    return model


def gpt_user_loop(vocab: int, d_model: int, num_layers: int, num_heads: int) -> Callable[[Params, Array], Array]:
    """The same GPT with the blocks written by the user: a Python loop of ``nets.transformer_block``.

    The params are laid out as ``nets.transformer(scan=False)``'s (``params["transformer"]
    ["layers"][i]`` and ``["final_norm"]``), so they match ``_raw.init_gpt(stacked=False)``.
    During ``trace`` every block after the first repeats it (same shapes, same
    hyperparameters): zephyr replays it instead of running its forward again.
    """
    block = nets.block(nets.attention(num_heads, causal=True))

    @flexible
    def model(params: Params, tokens: Int[Array, "*batch seq"]) -> Float[Array, "*batch seq vocab"]:
        x = nets.token_embed(params["embed"], tokens, vocab, d_model)
        x = nets.positional_embed(params["position"], x, tokens.shape[-1])
        for i in range(num_layers):
            x = nets.transformer_block(params["transformer"]["layers"][i], x, block)
        x = nets.layer_norm(params["transformer"]["final_norm"], x)
        return nets.linear(params["head"], x, vocab)

    return model


def gpt_plain_loop(vocab: int, d_model: int, num_layers: int, num_heads: int) -> Callable[[Params, Array], Array]:
    """The same GPT written the seed README's way: a plain (not ``@flexible``) block with the
    user's own glue, a hand-written causal attention between ``nets.linear`` calls.

    The params are those of :func:`gpt_user_loop`, leaf for leaf. During ``trace`` only the
    nets inside a block are replayed (``nets.linear``, ``nets.layer_norm``, ``nets.mlp``): the
    block's own operations run for every block.
    """

    def block(params: Params, x: Array) -> Array:
        *batch, seq, d = x.shape
        head = d // num_heads
        h = nets.layer_norm(params["attention_norm"], x)
        att = params["attention"]
        q, k, v = (nets.linear(att[name], h, d).reshape(*batch, seq, num_heads, head) for name in ("query", "key", "value"))
        logits = jnp.einsum(  # pyright: ignore[reportUnknownMemberType]  # jax types einsum partially
            "...qhd,...khd->...hqk", q / math.sqrt(head), k
        )
        causal = jnp.tril(jnp.ones((seq, seq), bool))  # pyright: ignore[reportUnknownMemberType]  # device is partially typed
        weights = jax.nn.softmax(jnp.where(causal, logits, -1e30), axis=-1)
        heads = jnp.einsum("...hqk,...khd->...qhd", weights, v).reshape(*batch, seq, d)  # pyright: ignore[reportUnknownMemberType]  # see above
        x = x + nets.linear(att["out"], heads, d)
        return x + nets.mlp(params["mlp"], nets.layer_norm(params["mlp_norm"], x), [4 * d, d], jax.nn.gelu)

    def model(params: Params, tokens: Array) -> Array:
        x = nets.token_embed(params["embed"], tokens, vocab, d_model)
        x = nets.positional_embed(params["position"], x, tokens.shape[-1])
        for i in range(num_layers):
            x = block(params["transformer"]["layers"][i], x)
        x = nets.layer_norm(params["transformer"]["final_norm"], x)
        return nets.linear(params["head"], x, vocab)

    return model


def llama(
    vocab: int, d_model: int, num_layers: int, num_heads: int, num_kv_heads: int, mlp_dim: int, *, scan: bool = True
) -> Callable[[Params, Array], Array]:
    """``examples/llama.py``'s model: ``nets.token_embed``, ``nets.transformer`` as a LLaMA
    decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU, no biases), the embedding table as
    the output projection (tied). Scanned by default, as in the example: every layer leaf has a
    leading layer axis; ``scan=False``: a Python loop, ``params["transformer"]["layers"][i]``."""
    no_bias = nets.projections(use_bias=False)
    block = nets.block(
        nets.attention(num_heads, num_kv_heads=num_kv_heads, causal=True, on_qk=nets.rotary(LLAMA_ROPE_BASE), projections=no_bias),
        nets.gated(nets.feed_forward(mlp_dim, jax.nn.silu, projections=no_bias)),
        nets.rms_norm(placeholder_hole, placeholder_hole, eps=LLAMA_EPS),
    )

    @flexible
    def model(params: Params, tokens: Int[Array, "*batch seq"]) -> Float[Array, "*batch seq vocab"]:
        x = nets.token_embed(params["embed"], tokens, vocab, d_model)
        h = nets.transformer(params["transformer"], x, num_layers, block, scan=scan)
        return h @ validate(params["embed"]["embeddings"], (vocab, d_model)).T

    return model


SEED_MODEL = Path(__file__).resolve().parents[1] / "examples" / "seed_model.py"
"""The original README's encoder/decoder model (``model(params, x)``), corrected."""


def seed_model() -> Callable[[Params, Array], Array]:
    """``model`` of ``examples/seed_model.py`` (loaded from its file: examples are not a package)."""
    spec = importlib.util.spec_from_file_location("zephyr_benchmarks_seed_model", SEED_MODEL)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"seed_model: cannot load {SEED_MODEL}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model: Callable[[Params, Array], Array] = module.model
    return model
