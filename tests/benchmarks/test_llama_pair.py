"""The jit section's "llama" pair: ``examples/llama.py``'s model from the nets and the same
model written in raw JAX compute the same loss on the same params, or the section refuses to time them."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from types import ModuleType

import jax
import pytest
from jax import Array

from zephyr import clear_trace_cache

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _benchmark_module(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def test_the_llama_pair_has_one_layout_and_one_loss() -> None:
    pairs, jit = _benchmark_module("_pairs"), _benchmark_module("_jit")
    pair = pairs.llama_pair(pairs.QUICK)
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):  # as run.py
        params = pair.trace()
        assert pairs.same_shapes(params, pair.init())
        loss = jit.same_loss(pair, params)
    assert loss["zephyr"] > 0 and loss["abs_diff"] <= 1e-5
    clear_trace_cache()


def test_a_raw_model_that_differs_is_refused_before_timing() -> None:
    pairs, jit = _benchmark_module("_pairs"), _benchmark_module("_jit")
    pair = pairs.llama_pair(pairs.QUICK)

    def scaled(params: object, tokens: Array) -> Array:
        logits: Array = pair.apply_raw(params, tokens)
        return logits * 1.5

    other = dataclasses.replace(pair, apply_raw=scaled)
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        params = pair.trace()
        with pytest.raises(AssertionError, match=(
            r"^section_jit: `llama`: zephyr's loss [0-9.]+ and raw JAX's [0-9.]+ on the same params differ by "
            r"[0-9.]+e[-+]\d+ \(> 1e-05\): the two sides are not the same model$"
        )):
            jit.same_loss(other, params)
    clear_trace_cache()
