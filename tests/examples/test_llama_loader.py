"""``examples/llama.py``'s ``params_from_hf`` without torch: a state dict in Hugging Face's
``LlamaForCausalLM`` layout (numpy arrays, as ``safetensors.numpy.load_file`` gives) loads
into the params ``trace`` makes, each weight where the model reads it; an untied output
projection is refused. (The logits against transformers itself: test_llama_hf.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.examples.test_examples import load
from zephyr import trace

llama = load("llama")
CONFIG = llama.Config(vocab_size=11, d=8, num_layers=2, num_heads=2, num_kv_heads=1, mlp_dim=12)
HEAD = CONFIG.d // CONFIG.num_heads


def _hf_state_dict() -> dict[str, np.ndarray[Any, Any]]:
    """Random weights with transformers' names and torch's ``(out, in)`` shapes."""
    rng = np.random.default_rng(0)
    d, kv = CONFIG.d, CONFIG.num_kv_heads * HEAD
    shapes = {
        "input_layernorm.weight": (d,),
        "self_attn.q_proj.weight": (d, d),
        "self_attn.k_proj.weight": (kv, d),
        "self_attn.v_proj.weight": (kv, d),
        "self_attn.o_proj.weight": (d, d),
        "post_attention_layernorm.weight": (d,),
        "mlp.gate_proj.weight": (CONFIG.mlp_dim, d),
        "mlp.up_proj.weight": (CONFIG.mlp_dim, d),
        "mlp.down_proj.weight": (d, CONFIG.mlp_dim),
    }
    state = {
        f"model.layers.{i}.{name}": rng.normal(size=shape).astype(np.float32)
        for i in range(CONFIG.num_layers)
        for name, shape in shapes.items()
    }
    state["model.embed_tokens.weight"] = rng.normal(size=(CONFIG.vocab_size, d)).astype(np.float32)
    state["model.norm.weight"] = rng.normal(size=(d,)).astype(np.float32)
    return state


def test_a_hf_state_dict_loads_into_the_traced_params() -> None:
    state = _hf_state_dict()
    params = llama.params_from_hf(state)
    tokens = jnp.zeros((1, 5), jnp.int32)
    model = cast(Callable[..., Any], llama.llama)
    traced = trace(lambda p, t: model(p, t, CONFIG), jax.random.key(0), tokens)
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes == jax.tree.map(jnp.shape, traced)
    layers = params["transformer"]["layers"]
    np.testing.assert_array_equal(layers["attention"]["key"]["weights"][1], state["model.layers.1.self_attn.k_proj.weight"].T)
    np.testing.assert_array_equal(layers["mlp"]["down"]["weights"][0], state["model.layers.0.mlp.down_proj.weight"].T)
    np.testing.assert_array_equal(layers["mlp_norm"]["scale"][1], state["model.layers.1.post_attention_layernorm.weight"])
    np.testing.assert_array_equal(params["embed"]["embeddings"], state["model.embed_tokens.weight"])
    logits = model(params, tokens, CONFIG)
    assert logits.shape == (1, 5, CONFIG.vocab_size) and bool(jnp.all(jnp.isfinite(logits)))


def test_a_tied_lm_head_is_accepted_and_an_untied_one_refused() -> None:
    state = _hf_state_dict()
    state["lm_head.weight"] = state["model.embed_tokens.weight"].copy()
    llama.params_from_hf(state)
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    with pytest.raises(ValueError, match=r"params_from_hf: `lm_head.weight` differs from `model.embed_tokens.weight`"):
        llama.params_from_hf(state)
