"""GPT-2, Mistral, Gemma 2, a BERT encoder and ViT from zephyr's built-in parts, with loaders of
Hugging Face ``transformers`` state dicts and the tiny random references they are checked on.

Each model is a few parts chosen from its Hugging Face config, nothing hand-written:

- **GPT-2**: learned positions (``nets.positional_embed``), the default block (pre-norm layer
  norms, tanh-GELU MLP of ``4 * d``, biases), tied output projection; the fused ``c_attn``
  projection split into query, key and value.
- **Mistral**: LLaMA's block (RMSNorm, RoPE, grouped-query attention, SwiGLU) with
  ``on_logits=nets.sliding_window(W)``; untied output projection.
- **Gemma 2**: RMSNorm as ``x * (1 + w)`` (``unit_offset=True``), the ``sandwich``
  arrangement (norms before and after each sublayer), GeGLU, attention logits soft-capped
  (``nets.soft_cap``) and scaled by ``query_pre_attn_scalar ** -0.5``, local (sliding-window)
  and global layers alternating as a pattern of two blocks, embeddings times ``sqrt(d)``, tied
  output projection and the final logits soft-capped.
- **BERT** encoder: the ``post_norm`` arrangement, exact GELU, layer norms of eps 1e-12, a
  padding mask; word + position + token-type embeddings and their layer norm.
- **ViT**: patches by a strided ``nets.conv_2d``, a class token, learned positions, pre-norm
  blocks with exact GELU and eps 1e-12, the final layer norm.

The decoders decode with ``nets.init_cache``/``nets.step`` on the same block values as their
full forward. ``tests/examples/test_hf_families.py`` compares every model with transformers'
on tiny random weights (``reference``; needs torch, transformers and safetensors, the ``hf``
extra: ``pip install -e '.[hf]'``).
"""

from __future__ import annotations

import importlib
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from zephyr import nets, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params

Family = Literal["gpt2", "mistral", "gemma2", "bert", "vit"]
FAMILIES: tuple[Family, ...] = ("gpt2", "mistral", "gemma2", "bert", "vit")
DECODERS: tuple[Family, ...] = ("gpt2", "mistral", "gemma2")
NO_BIAS = nets.projections(use_bias=False)
exact_gelu = partial(jax.nn.gelu, approximate=False)  # BERT's and ViT's "gelu"
tanh_gelu = partial(jax.nn.gelu, approximate=True)  # Gemma's "gelu_pytorch_tanh"


# ------------------------------------------------------------------ decoders (GPT-2, Mistral, Gemma 2)


@dataclass(frozen=True)
class Decoder:
    """A decoder-only language model: embeddings, a stack of blocks (a repeating pattern) and
    the output projection."""

    vocab_size: int
    d: int
    num_layers: int
    blocks: tuple[nets.Block, ...]  # layer i is blocks[i % len(blocks)]
    embed_scale: float = 1.0  # Gemma: sqrt(d)
    tied: bool = False  # the embedding table is the output projection
    final_cap: float | None = None  # Gemma 2: the logits soft-capped
    max_positions: int | None = None  # GPT-2: learned positions (their table's length) instead of RoPE


def gpt2(hf_config: Any) -> Decoder:
    """The :class:`Decoder` of a ``GPT2Config``: the default block, causal, with GPT-2's sizes."""
    c = hf_config
    if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh") or not c.scale_attn_weights or c.scale_attn_by_inverse_layer_idx:
        raise ValueError(
            f"gpt2: only the tanh GELU and the 1 / sqrt(head size) scale are modelled, got {c.activation_function!r}, "
            f"scale_attn_weights={c.scale_attn_weights}, scale_attn_by_inverse_layer_idx={c.scale_attn_by_inverse_layer_idx}"
        )
    mlp = nets.feed_forward(c.n_inner or 4 * c.n_embd, tanh_gelu)
    block = nets.block(nets.attention(c.n_head, causal=True), mlp, nets.layer_norm(_, _, eps=c.layer_norm_epsilon))
    return Decoder(c.vocab_size, c.n_embd, c.n_layer, (block,), tied=c.tie_word_embeddings, max_positions=c.n_positions)


def mistral(hf_config: Any) -> Decoder:
    """The :class:`Decoder` of a ``MistralConfig``: LLaMA's block with a sliding window."""
    c = hf_config
    window = (nets.sliding_window(c.sliding_window),) if c.sliding_window else ()
    attention = nets.attention(
        c.num_attention_heads,
        num_kv_heads=c.num_key_value_heads,
        key_size=c.head_dim,
        causal=True,
        on_qk=nets.rotary(rope_base(c)),
        on_logits=window,
        projections=NO_BIAS,
    )
    mlp = nets.gated(nets.feed_forward(c.intermediate_size, nets.silu, projections=NO_BIAS))
    block = nets.block(attention, mlp, nets.rms_norm(_, _, eps=c.rms_norm_eps))
    return Decoder(c.vocab_size, c.hidden_size, c.num_hidden_layers, (block,), tied=c.tie_word_embeddings)


def gemma2(hf_config: Any) -> Decoder:
    """The :class:`Decoder` of a ``Gemma2Config``: local and global layers as a pattern."""
    c = hf_config
    norm = nets.rms_norm(_, _, eps=c.rms_norm_eps, unit_offset=True)  # one value: the blocks share it
    mlp = nets.gated(nets.feed_forward(c.intermediate_size, tanh_gelu, projections=NO_BIAS))
    cap = (nets.soft_cap(c.attn_logit_softcapping),) if c.attn_logit_softcapping else ()

    def layer(kind: str) -> nets.Block:
        window = (nets.sliding_window(c.sliding_window),) if kind == "sliding_attention" else ()
        attention = nets.attention(
            c.num_attention_heads,
            num_kv_heads=c.num_key_value_heads,
            key_size=c.head_dim,
            causal=True,
            on_qk=nets.rotary(rope_base(c)),
            on_logits=cap + window,
            scale=c.query_pre_attn_scalar**-0.5,
            projections=NO_BIAS,
        )
        return nets.block(attention, mlp, norm, nets.sandwich)

    kinds = list(c.layer_types)
    period = 2 if len(set(kinds)) > 1 else 1
    if kinds != kinds[:period] * (len(kinds) // period):
        raise ValueError(f"gemma2: `layer_types` must repeat a pattern of {period}, got {kinds}")
    by_kind = {kind: layer(kind) for kind in set(kinds)}
    return Decoder(
        c.vocab_size,
        c.hidden_size,
        c.num_hidden_layers,
        tuple(by_kind[kind] for kind in kinds[:period]),
        embed_scale=math.sqrt(c.hidden_size),
        tied=c.tie_word_embeddings,
        final_cap=c.final_logit_softcapping,
    )


def rope_base(hf_config: Any) -> float:
    """The RoPE base of a config (transformers 5: ``rope_parameters``; 4.x: ``rope_theta``)."""
    rope = getattr(hf_config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"rope_base: only the plain rotation is modelled, got rope_type {rope['rope_type']!r}")
    return float(rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0)))


def _embed(params: Params, tokens: Array, model: Decoder, positions: Array | None, offset: Array | int = 0) -> Array:
    x = nets.token_embed(params["embed"], tokens, model.vocab_size, model.d)
    if model.max_positions is not None:  # GPT-2: step t at positions[..., t], default offset + t
        at = offset + jnp.arange(tokens.shape[-1]) if positions is None else positions
        x = nets.positional_embed(params["positions"], x, model.max_positions, positions=at)
    # Gemma multiplies in the embeddings' dtype (a float32 sqrt(d), as transformers does)
    return x * jnp.asarray(model.embed_scale, x.dtype) if model.embed_scale != 1.0 else x


def _unembed(params: Params, h: Array, model: Decoder) -> Array:
    if model.tied:
        logits = h @ validate(params["embed"]["embeddings"], (model.vocab_size, model.d)).T
    else:
        logits = nets.linear(params["head"], h, model.vocab_size, use_bias=False)
    if model.final_cap is not None:
        logits = nets.soft_cap(model.final_cap)(logits)
    return logits


def decoder(
    params: Params, tokens: Array, model: Decoder, padding_mask: Array | None = None, positions: Array | None = None
) -> Array:
    """Logits ``(*batch, seq, vocab)`` of token ids ``(*batch, seq)``, the whole sequence at once.

    ``padding_mask`` (True on real tokens) and ``positions`` for left-padded batches.
    """
    x = _embed(params, tokens, model, positions)
    h = nets.transformer(
        params["transformer"], x, model.num_layers, model.blocks, padding_mask=padding_mask, positions=_rotated(model, positions)
    )
    return _unembed(params, h, model)


def _rotated(model: Decoder, positions: Array | None) -> Array | None:
    """The positions the attention's ``on_qk`` (RoPE) reads: none with learned positions."""
    return None if model.max_positions is not None else positions


def empty_cache(model: Decoder, batch: int, max_len: int) -> nets.Cache:
    """A cache of ``max_len`` positions for :func:`decoder_step`: made from the same blocks."""
    return nets.init_cache(jnp.zeros((batch, 1, model.d)), max_len, model.blocks, model.num_layers)


def decoder_step(
    params: Params,
    cache: nets.Cache,
    tokens: Array,
    model: Decoder,
    padding_mask: Array | None = None,
    positions: Array | None = None,
) -> tuple[Array, nets.Cache]:
    """Logits of new tokens ``(*batch, new)`` given the cache of those before (``padding_mask``
    over the cache's slots, ``positions`` of the new tokens)."""
    x = _embed(params, tokens, model, positions, cache.length)
    h, cache = nets.step(params["transformer"], cache, x, padding_mask=padding_mask, positions=_rotated(model, positions))
    return _unembed(params, h, model), cache


# ------------------------------------------------------------------ BERT and ViT encoders


@dataclass(frozen=True)
class Bert:
    """A BERT encoder: embeddings, their layer norm, post-norm blocks."""

    vocab_size: int
    d: int
    num_layers: int
    max_len: int  # max_position_embeddings
    type_vocab_size: int
    block: nets.Block
    eps: float


def bert(hf_config: Any) -> Bert:
    """The :class:`Bert` of a ``BertConfig``."""
    c = hf_config
    if c.hidden_act != "gelu":
        raise ValueError(f"bert: `hidden_act` {c.hidden_act!r}: only the exact 'gelu' is modelled")
    block = nets.block(
        c.num_attention_heads,
        nets.feed_forward(c.intermediate_size, exact_gelu),
        nets.layer_norm(_, _, eps=c.layer_norm_eps),
        nets.post_norm,
    )
    return Bert(c.vocab_size, c.hidden_size, c.num_hidden_layers, c.max_position_embeddings, c.type_vocab_size, block, c.layer_norm_eps)


def bert_encoder(params: Params, tokens: Array, model: Bert, padding_mask: Array | None = None) -> Array:
    """The last hidden states ``(*batch, seq, d)`` of token ids ``(*batch, seq)`` (token type 0)."""
    x = nets.token_embed(params["embed"], tokens, model.vocab_size, model.d)
    x = nets.positional_embed(params["positions"], x, model.max_len)
    x = x + nets.token_embed(params["token_types"], jnp.zeros_like(tokens), model.type_vocab_size, model.d)
    x = nets.layer_norm(params["embed_norm"], x, eps=model.eps)
    return nets.transformer(params["transformer"], x, model.num_layers, model.block, padding_mask=padding_mask, final_norm=False)


@dataclass(frozen=True)
class ViT:
    """A vision transformer: patches, a class token, learned positions, pre-norm blocks."""

    d: int
    num_layers: int
    patch: int
    num_patches: int
    block: nets.Block


def vit(hf_config: Any) -> ViT:
    """The :class:`ViT` of a ``ViTConfig``."""
    c = hf_config
    if c.hidden_act != "gelu" or not c.qkv_bias:
        raise ValueError(f"vit: only the exact 'gelu' and qkv biases are modelled, got {c.hidden_act!r}, {c.qkv_bias}")
    block = nets.block(c.num_attention_heads, nets.feed_forward(c.intermediate_size, exact_gelu), nets.layer_norm(_, _, eps=c.layer_norm_eps))
    return ViT(c.hidden_size, c.num_hidden_layers, c.patch_size, (c.image_size // c.patch_size) ** 2, block)


def vit_encoder(params: Params, images: Array, model: ViT) -> Array:
    """The last hidden states ``(batch, 1 + patches, d)`` of images ``(batch, height, width, channels)``."""
    patches = nets.conv_2d(params["patches"], images, model.d, model.patch, model.patch, "VALID")
    tokens = patches.reshape((patches.shape[0], -1, model.d))
    cls = validate(params["cls"], (1, 1, model.d))
    x = jnp.concatenate([jnp.broadcast_to(cls, (tokens.shape[0], 1, model.d)), tokens], axis=1)
    x = nets.positional_embed(params["positions"], x, model.num_patches + 1)
    return nets.transformer(params["transformer"], x, model.num_layers, model.block)


# ------------------------------------------------------------------ Hugging Face state dicts


StateDict = Mapping[str, Any]


def _array(state_dict: StateDict, name: str) -> Array:
    value = state_dict[name]
    if hasattr(value, "detach"):  # a torch tensor (bfloat16 has no numpy dtype: float first)
        value = value.detach().float().numpy()
    return jnp.asarray(np.asarray(value, np.float32))


def _linear(state_dict: StateDict, prefix: str, bias: bool = True) -> dict[str, Array]:
    """A torch ``nn.Linear`` (weight ``(out, in)``) as zephyr's linear params (``(in, out)``)."""
    params = {"weights": _array(state_dict, f"{prefix}.weight").T}
    if bias:
        params["bias"] = _array(state_dict, f"{prefix}.bias")
    return params


def _norm(state_dict: StateDict, prefix: str, bias: bool = False) -> dict[str, Array]:
    params = {"scale": _array(state_dict, f"{prefix}.weight")}
    if bias:
        params["offset"] = _array(state_dict, f"{prefix}.bias")
    return params


def _stack(layers: list[dict[str, Any]], period: int, scan: bool = True) -> Params:
    """Per-layer params in the layout of ``nets.transformer``: with a pattern of ``period``
    blocks, slot ``j`` holds layers ``j, j + period, ...`` stacked."""
    if not scan:
        return {i: layer for i, layer in enumerate(layers)}
    slots = [jax.tree.map(lambda *a: jnp.stack(a), *layers[j::period]) for j in range(period)]
    return slots[0] if period == 1 else dict(enumerate(slots))


def _conv1d(state_dict: StateDict, prefix: str, columns: slice = slice(None)) -> dict[str, Array]:
    """A GPT-2 ``Conv1D`` (weight already ``(in, out)``: not transposed), its output ``columns``."""
    return {"weights": _array(state_dict, f"{prefix}.weight")[:, columns], "bias": _array(state_dict, f"{prefix}.bias")[columns]}


def gpt2_params(state_dict: StateDict, model: Decoder) -> Params:
    """Params of :func:`decoder` from a ``GPT2LMHeadModel`` state dict: the fused ``c_attn``
    ``(d, 3 d)`` split into query, key and value (in that order); the output tied to ``wte``."""
    d, layers = model.d, []
    for i in range(model.num_layers):
        p = f"transformer.h.{i}."
        qkv = {name: _conv1d(state_dict, p + "attn.c_attn", slice(j * d, (j + 1) * d)) for j, name in enumerate(("query", "key", "value"))}
        layers.append({
            "attention_norm": _norm(state_dict, p + "ln_1", bias=True),
            "attention": {**qkv, "out": _conv1d(state_dict, p + "attn.c_proj")},
            "mlp_norm": _norm(state_dict, p + "ln_2", bias=True),
            "mlp": {0: _conv1d(state_dict, p + "mlp.c_fc"), 1: _conv1d(state_dict, p + "mlp.c_proj")},
        })
    return {
        "embed": {"embeddings": _array(state_dict, "transformer.wte.weight")},
        "positions": {"embeddings": _array(state_dict, "transformer.wpe.weight")},
        "transformer": {"layers": _stack(layers, 1), "final_norm": _norm(state_dict, "transformer.ln_f", bias=True)},
    }


def decoder_params(state_dict: StateDict, model: Decoder) -> Params:
    """Params of :func:`decoder` from a ``MistralForCausalLM`` or ``Gemma2ForCausalLM`` state
    dict (torch tensors or arrays): linear weights transposed, layers stacked per pattern slot.

    Transformers' q/k layout is already the "rotate half" one of ``nets.rotary``; Gemma's norm
    weights are the ``w`` of ``x * (1 + w)``, as ``unit_offset=True`` reads them.
    """
    sandwich = model.blocks[0].arrangement is nets.sandwich
    layers: list[dict[str, Any]] = []
    for i in range(model.num_layers):
        p = f"model.layers.{i}."
        layer: dict[str, Any] = {  # a block's params, being filled
            "attention_norm": _norm(state_dict, p + "input_layernorm"),
            "attention": {
                name: _linear(state_dict, f"{p}self_attn.{torch_name}_proj", bias=False)
                for name, torch_name in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o"))
            },
            "mlp": {name: _linear(state_dict, f"{p}mlp.{name}_proj", bias=False) for name in ("gate", "up", "down")},
        }
        if sandwich:  # Gemma 2
            layer["post_attention_norm"] = _norm(state_dict, p + "post_attention_layernorm")
            layer["mlp_norm"] = _norm(state_dict, p + "pre_feedforward_layernorm")
            layer["post_mlp_norm"] = _norm(state_dict, p + "post_feedforward_layernorm")
        else:
            layer["mlp_norm"] = _norm(state_dict, p + "post_attention_layernorm")
        layers.append(layer)
    params: dict[str, Params] = {
        "embed": {"embeddings": _array(state_dict, "model.embed_tokens.weight")},
        "transformer": {"layers": _stack(layers, len(model.blocks)), "final_norm": _norm(state_dict, "model.norm")},
    }
    if not model.tied:
        params["head"] = _linear(state_dict, "lm_head", bias=False)
    return params


def bert_params(state_dict: StateDict, model: Bert) -> Params:
    """Params of :func:`bert_encoder` from a ``BertModel`` state dict (the pooler is not read)."""
    layers: list[dict[str, Any]] = []
    for i in range(model.num_layers):
        p = f"encoder.layer.{i}."
        layers.append({
            "attention": {
                "query": _linear(state_dict, p + "attention.self.query"),
                "key": _linear(state_dict, p + "attention.self.key"),
                "value": _linear(state_dict, p + "attention.self.value"),
                "out": _linear(state_dict, p + "attention.output.dense"),
            },
            "attention_norm": _norm(state_dict, p + "attention.output.LayerNorm", bias=True),
            "mlp": {0: _linear(state_dict, p + "intermediate.dense"), 1: _linear(state_dict, p + "output.dense")},
            "mlp_norm": _norm(state_dict, p + "output.LayerNorm", bias=True),
        })
    return {
        "embed": {"embeddings": _array(state_dict, "embeddings.word_embeddings.weight")},
        "positions": {"embeddings": _array(state_dict, "embeddings.position_embeddings.weight")},
        "token_types": {"embeddings": _array(state_dict, "embeddings.token_type_embeddings.weight")},
        "embed_norm": _norm(state_dict, "embeddings.LayerNorm", bias=True),
        "transformer": {"layers": _stack(layers, 1)},
    }


# ViT's names in a checkpoint file (``save_pretrained``, the Hub) and in transformers >= 5.25's modules
_VIT_NAMES = {
    "query": ("attention.attention.query", "attention.q_proj"),
    "key": ("attention.attention.key", "attention.k_proj"),
    "value": ("attention.attention.value", "attention.v_proj"),
    "out": ("attention.output.dense", "attention.o_proj"),
    "fc1": ("intermediate.dense", "mlp.fc1"),
    "fc2": ("output.dense", "mlp.fc2"),
}


def vit_params(state_dict: StateDict, model: ViT) -> Params:
    """Params of :func:`vit_encoder` from a ``ViTModel`` state dict (the pooler is not read):
    a checkpoint's names (``encoder.layer.i.attention.attention.query``) or the modules' of
    transformers >= 5.25 (``layers.i.attention.q_proj``)."""
    layers: list[dict[str, Any]] = []
    for i in range(model.num_layers):
        prefix = f"encoder.layer.{i}." if f"encoder.layer.{i}.layernorm_before.weight" in state_dict else f"layers.{i}."

        def linear(name: str) -> Params:
            file_name, module_name = _VIT_NAMES[name]
            return _linear(state_dict, prefix + (file_name if prefix.startswith("encoder") else module_name))

        layers.append({
            "attention_norm": _norm(state_dict, prefix + "layernorm_before", bias=True),
            "attention": {name: linear(name) for name in ("query", "key", "value", "out")},
            "mlp_norm": _norm(state_dict, prefix + "layernorm_after", bias=True),
            "mlp": {0: linear("fc1"), 1: linear("fc2")},
        })
    conv = _array(state_dict, "embeddings.patch_embeddings.projection.weight")  # (out, in, kh, kw)
    return {
        "patches": {
            "weights": conv.transpose(2, 3, 1, 0),  # (kh, kw, in, out)
            "bias": _array(state_dict, "embeddings.patch_embeddings.projection.bias"),
        },
        "cls": _array(state_dict, "embeddings.cls_token"),
        "positions": {"embeddings": _array(state_dict, "embeddings.position_embeddings")[0]},
        "transformer": {"layers": _stack(layers, 1), "final_norm": _norm(state_dict, "layernorm", bias=True)},
    }


# ------------------------------------------------------------------ the tiny random references


class Reference(NamedTuple):
    """A tiny random transformers model's inputs and outputs, in float32 and float64."""

    hf_config: Any
    state_dict: dict[str, np.ndarray[Any, Any]]  # float32
    inputs: np.ndarray[Any, Any]  # token ids (batch, seq), or images (batch, height, width, channels)
    mask: np.ndarray[Any, Any] | None  # attention mask (batch, seq): True on real tokens
    out32: np.ndarray[Any, Any]  # logits (decoders) or last hidden states (encoders), float32 torch
    out64: np.ndarray[Any, Any]  # the same model in float64


def hf_config(family: Family) -> Any:
    """A tiny config of the family (width 32, 2 or 4 layers, 4 heads)."""
    transformers: Any = importlib.import_module("transformers")
    # initializer_range far above the default 0.02 (as examples/llama_hf_check.py): at 0.02
    # attention is almost uniform and a lost rotation or scale moves the logits very little.
    common: dict[str, Any] = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 48, "initializer_range": 0.3}
    if family == "gpt2":
        return transformers.GPT2Config(
            vocab_size=67, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=48, resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.3, bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
    if family == "mistral":
        return transformers.MistralConfig(
            vocab_size=67, num_hidden_layers=2, num_key_value_heads=2, sliding_window=4,
            max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6, **common,
        )  # fmt: skip
    if family == "gemma2":
        return transformers.Gemma2Config(
            vocab_size=67, num_hidden_layers=4, num_key_value_heads=2, head_dim=16, sliding_window=4,
            query_pre_attn_scalar=24, attn_logit_softcapping=3.0, final_logit_softcapping=2.0,
            max_position_embeddings=64, rms_norm_eps=1e-6, attn_implementation="eager", **common,
        )  # fmt: skip  # small caps, so that they bite; head_dim * heads != d, scale != head_dim ** -0.5
    if family == "bert":
        return transformers.BertConfig(
            vocab_size=67, num_hidden_layers=2, max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, **common,
        )  # fmt: skip
    return transformers.ViTConfig(image_size=8, patch_size=2, num_channels=3, num_hidden_layers=2, **common)


def reference(family: Family, seed: int = 0, batch: int = 2, seq: int = 12) -> Reference:
    """Build the family's tiny random model in transformers and run it in float32 and float64.

    Decoders get a batch whose first row is left-padded by 3 (attention mask False there,
    positions counted from the first real token; in float64 each row's real tokens run alone,
    the pads NaN); BERT one whose last row ends in 4 pads.
    """
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")
    safetensors_numpy: Any = importlib.import_module("safetensors.numpy")
    config = hf_config(family)
    classes = {"gpt2": "GPT2LMHeadModel", "mistral": "MistralForCausalLM", "gemma2": "Gemma2ForCausalLM", "bert": "BertModel", "vit": "ViTModel"}
    torch.manual_seed(seed)
    model = getattr(transformers, classes[family])(config).eval()
    with torch.no_grad():  # norm scales off their init of ones (Gemma's w off zero), biases off zero: a lost one shows
        for name, parameter in model.named_parameters():
            norm = "norm" in name.lower() or ".ln_" in name  # GPT-2's ln_1, ln_2, ln_f
            if norm and name.endswith("weight") and family != "gemma2":
                parameter.uniform_(0.5, 1.5)
            elif norm or name.endswith("bias"):  # a bias, or Gemma's w of x * (1 + w)
                parameter.uniform_(-0.5, 0.5)
    transformers.utils.logging.disable_progress_bar()  # save_pretrained's, on stderr
    with tempfile.TemporaryDirectory() as directory:  # the file a real checkpoint has (tied: no lm_head)
        model.save_pretrained(directory)
        state_dict: dict[str, np.ndarray[Any, Any]] = safetensors_numpy.load_file(f"{directory}/model.safetensors")
    rng = np.random.default_rng(seed)
    mask: np.ndarray[Any, Any] | None = None
    inputs: np.ndarray[Any, Any]
    if family == "vit":
        inputs = rng.standard_normal((batch, config.image_size, config.image_size, config.num_channels)).astype(np.float32)
    else:
        inputs = rng.integers(0, config.vocab_size, (batch, seq))
        mask = np.ones((batch, seq), bool)
        if family in DECODERS:
            mask[0, :3] = False
        else:
            mask[-1, -4:] = False

    def run(dtype: Any) -> np.ndarray[Any, Any]:
        m = model.to(dtype)
        with torch.no_grad():
            if family == "vit":
                pixels = torch.from_numpy(inputs.transpose(0, 3, 1, 2)).to(dtype)  # NCHW
                return np.asarray(m(pixel_values=pixels).last_hidden_state.double().numpy(), np.float64)
            assert mask is not None  # token ids come with their mask
            ids = torch.from_numpy(inputs)
            attention = torch.from_numpy(mask.astype(np.int64))
            if family == "bert":
                return np.asarray(m(input_ids=ids, attention_mask=attention).last_hidden_state.double().numpy(), np.float64)
            if dtype == torch.float32:
                positions = torch.from_numpy(left_padded_positions(mask))
                logits = m(input_ids=ids, attention_mask=attention, position_ids=positions).logits
                return np.asarray(logits.double().numpy(), np.float64)
            # float64: each row's real tokens alone (the eager attention of Gemma 2 in float64
            # gives NaN on every position of a padded row), NaN on the pads
            out = np.full((*inputs.shape, config.vocab_size), np.nan)
            for row, real in enumerate(mask):
                out[row, real] = m(input_ids=ids[row : row + 1, torch.from_numpy(real)]).logits[0].numpy()
            return out

    out32 = run(torch.float32)
    out64 = run(torch.float64)
    model.to(torch.float32)
    return Reference(config, state_dict, inputs, mask, out32, out64)


def left_padded_positions(mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Positions of a left-padded batch: counted from each row's first real token (0 on the pads)."""
    return np.asarray(np.maximum(np.cumsum(mask, axis=-1) - 1, 0), np.int64)


def cached_logits(params: Params, tokens: Array, model: Decoder, mask: Array, prefill: int) -> Array:
    """Logits of ``tokens`` ``(batch, seq)`` by cached decoding: the first ``prefill`` tokens in
    one step, then one token per step; ``mask`` (True on real tokens) for left padding."""
    batch, seq = tokens.shape
    positions = jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0)
    cache = empty_cache(model, batch, seq)
    step = jax.jit(decoder_step, static_argnums=3)  # the model (its blocks) is static: two traces
    logits: list[Array] = []
    for start, stop in [(0, prefill), *((t, t + 1) for t in range(prefill, seq))]:
        step_logits, cache = step(params, cache, tokens[:, start:stop], model, mask, positions[:, start:stop])
        logits.append(step_logits)
    return jnp.concatenate(logits, axis=1)


Model = Decoder | Bert | ViT


def from_hf(family: Family, hf_config: Any) -> Model:
    """The zephyr model of a family's config."""
    makers: dict[Family, Callable[[Any], Model]] = {"gpt2": gpt2, "mistral": mistral, "gemma2": gemma2, "bert": bert, "vit": vit}
    return makers[family](hf_config)


def params_from_hf(state_dict: StateDict, model: Model) -> Params:
    """The params of a family's model from its transformers state dict."""
    if isinstance(model, Decoder):  # GPT-2's learned positions, or RoPE (Mistral, Gemma 2)
        return decoder_params(state_dict, model) if model.max_positions is None else gpt2_params(state_dict, model)
    if isinstance(model, Bert):
        return bert_params(state_dict, model)
    return vit_params(state_dict, model)
