"""The benchmark harness runs end to end (``benchmarks/run.py --quick``), so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zephyr_benchmarks_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_the_table_and_json(tmp_path: Path) -> None:
    run = _load_run()
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--no-children", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert {"init_warm", "first_trace", "trace_vs_batch", "abstract_trace", "jit", "compile", "eager", "table"} <= set(results)
    for name, row in results["init_warm"].items():
        assert row["zephyr"] > 0 and row["raw"] > 0, name
        assert row["max_abs_diff"] is None or row["max_abs_diff"] < 1e-4, name  # same model both sides
    assert results["abstract_trace"]["loop"]["new_live_arrays"] == 0
    for name, row in results["jit"].items():  # each pair's two sides compute the same loss before they are timed
        assert row["loss"]["abs_diff"] <= 1e-5, name
    assert {"mlp", "llama"} <= set(results["jit"])
    for name, row in results["first_trace"].items():  # issue 16: the first trace of a user's loop
        assert row["first_trace"] > 0 and row["initialize"] > 0 and row["raw"] > 0 and row["replay_off"] > 0, name
        assert row["plain_first_trace"] > 0, name  # issue 26: the plain (not @flexible) loop
    assert any(row["what"].startswith("first trace, GPT 1 blocks user loop vs raw init") for row in results["table"])
    assert set(results["compile"]) == {"llama1-scan", "llama1-loop"}  # issue 26: building the train step
    for name, row in results["compile"].items():
        for side in ("zephyr", "raw"):
            assert row[side]["compile_cpu"] > 0 and row[side]["first_step"] >= row[side]["lower"] + row[side]["compile"], name
            assert row[side]["jaxpr_equations"] > 0, name
    assert any(row["what"].startswith("LLaMA train step, 1 blocks loop: lower+compile, CPU time") for row in results["table"])
    assert all(row["met"] in {"met", "NOT met", "n/a", "-"} for row in results["table"])


def test_fresh_process_child_measures_cold_time_and_memory() -> None:
    run = _load_run()
    figures = run.child("fresh", "zephyr", "mlp", True)
    assert figures["param_bytes"] > 0 and figures["cold_seconds"] > 0
    assert figures["cold_peak_growth_bytes"] >= 0


def test_child_of_an_unknown_model_names_the_models() -> None:
    run = _load_run()
    with pytest.raises(ValueError, match=r"pair_named: model must be one of mlp, cnn, gpt, gpt-scan, llama, memory, memory-scan, got 'gtp'"):
        run.child("fresh", "zephyr", "gtp", True)
