"""Every script in examples/ runs through its ``main(argv)`` with tiny settings, so none can rot.

A new example must get an entry in ``TINY`` (the test below fails until it does). The runs
use the rank promotion "raise" and run-time checking of tests/conftest.py, but JAX's standard
dtype promotion, as users have it: optax's Adam itself raises `x ** count` (float, int32)
under "strict".
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import cast

import jax
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Tiny settings: each run takes seconds. "{tmp}" becomes a fresh temporary directory.
TINY: dict[str, list[str]] = {
    "batchnorm_state": ["--steps", "3", "--batch-size", "16"],
    "char_transformer": [
        "--steps", "2", "--d", "16", "--heads", "2", "--layers", "1", "--context", "24",
        "--batch-size", "2", "--sample-length", "8", "--chars", "4000",
    ],
    "digits_cnn": ["--epochs", "1", "--limit", "96", "--batch-size", "32", "--out", "{tmp}"],
    "gemma2": ["--layers", "2", "--d", "16", "--window", "2", "--length", "6", "--new-tokens", "3"],
    "llama": [
        "--steps", "2", "--d", "16", "--heads", "2", "--kv-heads", "1", "--layers", "1", "--context", "24",
        "--batch-size", "2", "--sample-length", "8", "--chars", "4000",
    ],
    "llama_hf_check": [],  # skipped (prints how to install the reference) without torch
    "lstm_sequence": ["--steps", "2", "--hidden-size", "8", "--length", "8", "--batch-size", "4", "--delay", "2"],
    "resume_train": ["--steps", "6", "--every", "2", "--kill-after", "4", "--batch-size", "8", "--dir", "{tmp}/run"],
    "seed_model": ["--batch", "2"],
    "sharded_train": ["--steps", "2", "--batch", "8", "--hidden", "8"],
    "tags_per_depth": ["--steps", "3", "--widths", "4", "4", "1"],
    "typed_nets": ["--steps", "3"],
    "vit": ["--epochs", "1", "--limit", "64", "--batch-size", "32", "--d", "16", "--heads", "2", "--layers", "1"],
}


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (examples/ is not a package)."""
    module_name = f"zephyr_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def main_of(name: str) -> Callable[[list[str] | None], object]:
    main = getattr(load(name), "main", None)
    assert callable(main), f"examples/{name}.py has no main(argv) function"
    return cast(Callable[[list[str] | None], object], main)


def test_every_example_has_tiny_settings() -> None:
    missing = sorted(set(example_names()) - set(TINY))
    assert not missing, f"add tiny settings to TINY in {__file__} for: {', '.join(missing)}"


@pytest.mark.parametrize("name", example_names())
def test_example_runs_with_tiny_settings(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if name not in TINY:
        pytest.fail(f"examples/{name}.py has no tiny settings in TINY")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in TINY[name]]
    with jax.numpy_dtype_promotion("standard"):
        main_of(name)(argv)
    assert capsys.readouterr().out.strip(), f"examples/{name}.py printed nothing"


@pytest.mark.parametrize("name", example_names())
def test_example_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main_of(name)(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out
