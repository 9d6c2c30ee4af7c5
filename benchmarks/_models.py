"""The three benchmark models in zephyr: an MLP, a small CNN and a GPT-style transformer.

They match ``_raw.py`` leaf for leaf (same keys, shapes and initial distributions) so the
harness can check both applies on the same weights. Every layer is a ``zephyr.nets`` net.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jaxtyping import Float, Int

from zephyr import nets
from zephyr.functools.partial import flexible
from zephyr.typing import Params

from _raw import CNN_LAYERS


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
    @flexible
    def model(params: Params, tokens: Int[Array, "*batch seq"]) -> Float[Array, "*batch seq vocab"]:
        x = nets.token_embed(params["embed"], tokens, vocab, d_model)
        x = nets.positional_embed(params["position"], x, tokens.shape[-1])
        x = nets.transformer(params["transformer"], x, num_layers, num_heads, is_causal=True, scan=scan)
        return nets.linear(params["head"], x, vocab)

    return model
