"""The benchmark's GPT in Equinox, the peer measured for the cold first call.

The same sizes and layout as ``_raw.init_gpt`` / ``_models.gpt`` (token and learned position
embeddings, pre-norm blocks of multi-head attention and a 4x MLP, final norm, head), built
the way an Equinox user writes it, with Equinox's own default initializers. Only its
initialization is measured (the cold first call in a fresh process).
"""
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false, reportMissingTypeStubs=false
# (Equinox and JAX type parts of their APIs as partially unknown.)

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax


class Block(eqx.Module):
    """A pre-norm transformer block."""

    attention_norm: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    mlp_norm: eqx.nn.LayerNorm
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(self, d: int, heads: int, key: jax.Array) -> None:
        k_attention, k_in, k_out = jax.random.split(key, 3)
        self.attention_norm = eqx.nn.LayerNorm(d)
        self.attention = eqx.nn.MultiheadAttention(
            heads, d, use_query_bias=True, use_key_bias=True, use_value_bias=True,
            use_output_bias=True, key=k_attention,
        )
        self.mlp_norm = eqx.nn.LayerNorm(d)
        self.mlp_in = eqx.nn.Linear(d, 4 * d, key=k_in)
        self.mlp_out = eqx.nn.Linear(4 * d, d, key=k_out)


class GPT(eqx.Module):
    """Embeddings, ``depth`` blocks, a final norm and the vocabulary head."""

    embed: eqx.nn.Embedding
    position: eqx.nn.Embedding
    blocks: list[Block]
    final_norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, vocab: int, d: int, depth: int, seq: int, heads: int, key: jax.Array) -> None:
        k_embed, k_position, k_head, k_blocks = jax.random.split(key, 4)
        self.embed = eqx.nn.Embedding(vocab, d, key=k_embed)
        self.position = eqx.nn.Embedding(seq, d, key=k_position)
        self.blocks = [Block(d, heads, k) for k in jax.random.split(k_blocks, depth)]
        self.final_norm = eqx.nn.LayerNorm(d)
        self.head = eqx.nn.Linear(d, vocab, key=k_head)


def init_gpt(key: jax.Array, vocab: int, d: int, depth: int, seq: int, heads: int) -> Any:
    """The GPT's arrays (the module filtered to its array leaves)."""
    return eqx.filter(GPT(vocab, d, depth, seq, heads, key), eqx.is_array)
