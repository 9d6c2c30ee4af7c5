"""``examples/llama.py`` against Hugging Face ``transformers``' ``LlamaForCausalLM``
(``examples/llama_hf_check.py``): the same tiny random weights give the same logits.

torch and transformers are no dependency of zephyr and CI installs neither: there this file
is skipped. Run it in a venv that has them (the check's docstring says how to make one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest

from tests.examples.test_examples import load

for module in ("torch", "transformers", "safetensors"):
    pytest.importorskip(
        module, reason=f"{module} is not installed: the Hugging Face reference needs torch, transformers and safetensors"
    )

TOLERANCE = 1e-4


def test_llama_matches_transformers() -> None:
    max_differences = cast(Callable[[], tuple[float, float]], load("llama_hf_check").max_differences)
    full, cached = max_differences()
    assert full < TOLERANCE, f"llama.llama vs transformers: max |logit difference| {full:.2e}"
    assert cached < TOLERANCE, f"prefill + llama_step vs transformers: max |logit difference| {cached:.2e}"
