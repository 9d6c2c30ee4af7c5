"""Check ``examples/llama.py`` against Hugging Face ``transformers``' ``LlamaForCausalLM``.

A tiny random LLaMA (vocabulary 67, width 32, 2 layers, 4 query heads sharing 2 key/value
heads, SwiGLU width 48, tied embeddings) is built in transformers with a fixed torch seed and
saved with ``save_pretrained``, the safetensors file a real checkpoint has. ``params_from_hf``
loads that file; the same random token ids (batch 2, 16 steps) go through both models in
float32, and the check prints the largest logit difference of

- the whole sequence at once (``llama.llama``), and
- cached decoding: the first half as one prefill, then one token per ``llama.llama_step``,

each against transformers' logits of the whole sequence, and exits 1 if one exceeds 1e-4.

torch and transformers are no dependency of zephyr (CI has neither): without them the
script says how to install them and exits 0, skipped. Run it with a venv that has them (a
CPU build of torch is enough):

    python3 -m venv /path/to/venv-with-torch
    /path/to/venv-with-torch/bin/pip install torch transformers safetensors optax -e .
    /path/to/venv-with-torch/bin/python examples/llama_hf_check.py
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # examples/ is not a package
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama import Config, empty_cache, llama, llama_step, params_from_hf  # noqa: E402

TOLERANCE = 1e-4
REFERENCE = ("torch", "transformers", "safetensors")
INSTALL = """\
skipped: the reference needs {missing} (no dependencies of zephyr).
Install them in a separate venv (a CPU build of torch is enough) and run the check there:

    python3 -m venv /path/to/venv-with-torch
    /path/to/venv-with-torch/bin/pip install torch transformers safetensors optax -e .
    /path/to/venv-with-torch/bin/python examples/llama_hf_check.py"""


class Differences(NamedTuple):
    """The largest absolute logit differences from transformers' logits of the whole sequence."""

    full: float  # llama.llama on the whole sequence
    cached: float  # a prefill of the first half, then llama.llama_step one token at a time


def missing_reference() -> list[str]:
    """The reference's modules that do not import (empty when the check can run)."""
    missing: list[str] = []
    for name in REFERENCE:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def config_from_hf(hf_config: Any) -> Config:
    """The :class:`llama.Config` of a ``LlamaConfig``; refuses what ``llama.llama`` does not model."""
    # transformers 5 keeps the base and the kind in `rope_parameters`; 4.x in `rope_theta` and
    # `rope_scaling` (None for the plain rotation).
    rope = getattr(hf_config, "rope_parameters", None) or getattr(hf_config, "rope_scaling", None) or {}
    rope_base = float(rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0)))
    head_dim = hf_config.hidden_size // hf_config.num_attention_heads
    supported = [  # (name, value, the only value examples/llama.py models)
        ("tie_word_embeddings", hf_config.tie_word_embeddings, True),
        ("attention_bias", hf_config.attention_bias, False),
        ("mlp_bias", getattr(hf_config, "mlp_bias", False), False),
        ("hidden_act", hf_config.hidden_act, "silu"),
        ("head_dim", getattr(hf_config, "head_dim", None) or head_dim, head_dim),
        ("rope_type", rope.get("rope_type", rope.get("type", "default")), "default"),
    ]
    for name, actual, expected in supported:
        if actual != expected:
            raise ValueError(f"config_from_hf: `{name}`: examples/llama.py models {expected!r} only, got {actual!r}")
    return Config(
        vocab_size=hf_config.vocab_size,
        d=hf_config.hidden_size,
        num_layers=hf_config.num_hidden_layers,
        num_heads=hf_config.num_attention_heads,
        num_kv_heads=hf_config.num_key_value_heads,
        mlp_dim=hf_config.intermediate_size,
        rope_base=rope_base,
        eps=hf_config.rms_norm_eps,
    )


def max_differences(seed: int = 0, batch: int = 2, seq: int = 16) -> Differences:
    """Build the tiny random model in transformers, load it into zephyr, compare the logits."""
    # Typed as Any: torch, transformers and safetensors are not installed where the type
    # checkers run (.venv, CI), and this check must not make them a dependency of zephyr.
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")
    safetensors_numpy: Any = importlib.import_module("safetensors.numpy")

    hf_config = transformers.LlamaConfig(
        vocab_size=67,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        attention_bias=False,
        max_position_embeddings=64,
        # Far larger than transformers' default 0.02, at which attention is almost uniform and
        # the logits tiny: there, loading q/k in Meta's interleaved layout moves the logits by
        # only ~2e-3, and a rope base of 500000 for 10000 by ~4e-4. At 0.3 they move by 5 to 9.
        initializer_range=0.3,
    )
    transformers.utils.logging.disable_progress_bar()  # save_pretrained's, on stderr
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config).eval()
    with torch.no_grad():  # norm scales off their init of ones, so that a lost scale shows
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(0.5, 1.5)

    tokens = np.random.default_rng(seed).integers(0, hf_config.vocab_size, (batch, seq))
    with torch.no_grad():
        reference = np.asarray(model(input_ids=torch.from_numpy(tokens)).logits.numpy(), np.float32)

    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)  # tied: the file has no `lm_head.weight`
        state_dict: dict[str, np.ndarray[Any, Any]] = safetensors_numpy.load_file(f"{directory}/model.safetensors")
    params = params_from_hf(state_dict)
    config = config_from_hf(hf_config)

    ids = jnp.asarray(tokens, jnp.int32)
    full = np.asarray(llama(params, ids, config))

    cache = empty_cache(config, batch, seq)
    half = seq // 2
    logits, cache = llama_step(params, cache, ids[:, :half], config)
    steps = [logits]
    for t in range(half, seq):
        logits, cache = llama_step(params, cache, ids[:, t : t + 1], config)
        steps.append(logits)
    cached = np.asarray(jnp.concatenate(steps, axis=1))

    return Differences(
        full=float(np.max(np.abs(full - reference))),
        cached=float(np.max(np.abs(cached - reference))),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the exit status (0: within tolerance, or skipped)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="torch and token seed (default: 0)")
    args = parser.parse_args(argv)

    missing = missing_reference()
    if missing:
        print(INSTALL.format(missing=", ".join(missing)))
        return 0
    torch: Any = importlib.import_module("torch")  # Any: see max_differences
    transformers: Any = importlib.import_module("transformers")
    print(f"reference: transformers {transformers.__version__}, torch {torch.__version__}")
    differences = max_differences(args.seed)
    print(f"max |logit difference|, whole sequence (llama.llama):       {differences.full:.2e}")
    print(f"max |logit difference|, prefill + one token per llama_step: {differences.cached:.2e}")
    worst = max(differences)
    if worst > TOLERANCE:
        print(f"FAILED: {worst:.2e} exceeds the tolerance {TOLERANCE:.0e}")
        return 1
    print(f"ok: both within {TOLERANCE:.0e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
