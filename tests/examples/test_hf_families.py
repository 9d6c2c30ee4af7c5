"""GPT-2, Mistral, Gemma 2, a BERT encoder and ViT built from zephyr's parts (``examples/_hf_families.py``)
against Hugging Face ``transformers`` on tiny random weights: the same outputs to 1e-5, and
cached decoding equal to the full forward for the decoders, left-padded batch included.

torch, transformers and safetensors are no dependency of zephyr (the ``hf`` extra installs
them: ``pip install -e '.[hf]'``); without them this file is skipped.
"""

from __future__ import annotations

import dataclasses
from functools import cache, partial
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.examples.test_examples import load

for module in ("torch", "transformers", "safetensors"):
    pytest.importorskip(
        module, reason=f"{module} is not installed: the Hugging Face reference needs the `hf` extra (torch, transformers, safetensors)"
    )

TOLERANCE = 1e-5


def families() -> ModuleType:
    return load("_hf_families")


@cache
def reference(family: str) -> Any:
    return families().reference(family)


def outputs(family: str, model: Any, ref: Any) -> np.ndarray[Any, Any]:
    """The zephyr model's logits (decoders, left-padded) or last hidden states (encoders)."""
    f = families()
    if family == "vit":
        return np.asarray(f.vit_encoder(f.params_from_hf(ref.state_dict, model), jnp.asarray(ref.inputs), model))
    tokens, mask = jnp.asarray(ref.inputs, jnp.int32), jnp.asarray(ref.mask)
    params = f.params_from_hf(ref.state_dict, model)
    if family == "bert":
        return np.asarray(f.bert_encoder(params, tokens, model, padding_mask=mask))
    positions = jnp.asarray(f.left_padded_positions(ref.mask), jnp.int32)
    return np.asarray(f.decoder(params, tokens, model, padding_mask=mask, positions=positions))


def real(family: str, ref: Any) -> np.ndarray[Any, Any]:
    """Where the outputs are compared: every position but a decoder's left pads."""
    return ref.mask if family in families().DECODERS else np.ones(ref.out32.shape[:-1], bool)


def max_difference(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], where: np.ndarray[Any, Any]) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)[where]))


@pytest.mark.parametrize("family", ["gpt2", "mistral", "gemma2", "bert", "vit"])
def test_matches_transformers(family: str) -> None:
    ref = reference(family)
    model = families().from_hf(family, ref.hf_config)
    out = outputs(family, model, ref)
    where = real(family, ref)
    assert max_difference(out, ref.out32, where) < TOLERANCE, f"{family} vs transformers float32"
    assert max_difference(out, ref.out64, where) < TOLERANCE, f"{family} vs transformers float64"


@pytest.mark.parametrize("family", ["gpt2", "mistral", "gemma2"])
def test_cached_decoding_matches_full_forward(family: str) -> None:
    f = families()
    ref = reference(family)
    model = f.from_hf(family, ref.hf_config)
    params = f.params_from_hf(ref.state_dict, model)
    tokens, mask = jnp.asarray(ref.inputs, jnp.int32), jnp.asarray(ref.mask)
    assert not ref.mask.all(), "the batch must be left-padded"
    cached = np.asarray(f.cached_logits(params, tokens, model, mask, prefill=5))
    full = outputs(family, model, ref)
    where = real(family, ref)
    assert max_difference(cached, full, where) < TOLERANCE, f"{family}: cached vs full forward"
    assert max_difference(cached, ref.out32, where) < TOLERANCE, f"{family}: cached vs transformers"
    # the padded row gives its unpadded logits: the pads change nothing
    alone = np.asarray(f.decoder(params, tokens[:1, 3:], model))[0]
    np.testing.assert_allclose(cached[0, 3:], alone, atol=TOLERANCE)


@pytest.mark.parametrize("family", ["gpt2", "mistral", "gemma2", "bert", "vit"])
def test_loaded_params_have_the_models_layout(family: str) -> None:
    """The converted params are exactly the tree (names, shapes) the zephyr model traces."""
    from zephyr import trace

    f = families()
    ref = reference(family)
    model = f.from_hf(family, ref.hf_config)
    inputs = jnp.asarray(ref.inputs) if family == "vit" else jnp.asarray(ref.inputs, jnp.int32)
    net = {
        "vit": partial(f.vit_encoder, model=model),
        "bert": partial(f.bert_encoder, model=model),
    }.get(family, partial(f.decoder, model=model))
    traced = trace(net, jax.random.key(0), inputs)
    loaded = f.params_from_hf(ref.state_dict, model)
    shapes = partial(jax.tree.map, lambda a: a.shape)
    assert shapes(loaded) == shapes(traced)


def _without_part(family: str, model: Any) -> Any:
    """The model with one of its family's parts left out (or swapped for a near miss)."""
    f, nets = families(), families().nets
    if family == "mistral":  # no sliding window
        block = model.blocks[0]
        attention = dataclasses.replace(block.attention, on_logits=())
        return dataclasses.replace(model, blocks=(dataclasses.replace(block, attention=attention),))
    if family == "gemma2":  # no final soft-cap
        return dataclasses.replace(model, final_cap=None)
    if family == "gpt2":  # the exact GELU for the tanh one
        block = dataclasses.replace(model.blocks[0], mlp=nets.feed_forward(ref_config(family).n_inner, f.exact_gelu))
        return dataclasses.replace(model, blocks=(block,))
    mlp = nets.feed_forward(ref_config(family).intermediate_size, f.tanh_gelu)  # tanh GELU for the exact one
    return dataclasses.replace(model, block=dataclasses.replace(model.block, mlp=mlp))


def ref_config(family: str) -> Any:
    return reference(family).hf_config


@pytest.mark.parametrize("family", ["gpt2", "mistral", "gemma2", "bert", "vit"])
def test_a_missing_part_shows(family: str) -> None:
    """The check can fail: without the family's part the outputs are off by more than ten times the tolerance."""
    ref = reference(family)
    model = _without_part(family, families().from_hf(family, ref.hf_config))
    assert max_difference(outputs(family, model, ref), ref.out32, real(family, ref)) > 10 * TOLERANCE


def test_gemma2_alternates_local_and_global_layers() -> None:
    model = families().from_hf("gemma2", ref_config("gemma2"))
    windows = [[part for part in b.attention.on_logits if type(part).__name__ == "SlidingWindow"] for b in model.blocks]
    assert [len(w) for w in windows] == [1, 0]
    assert model.num_layers == 4 and model.embed_scale == pytest.approx(np.sqrt(32))
