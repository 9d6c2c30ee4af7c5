"""Figures that need a fresh process: the cold first call of an init and peak memory during it.

:func:`section_children` starts ``run.py --child IMPL MODEL`` once per model and side
(zephyr, raw JAX and, for the GPT, the Equinox peer of ``_equinox.py``); the child runs
:func:`child` and prints its figures as one line of JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from _memory import nbytes, peak_growth
from _pairs import FULL, JSON, QUICK, Config, pair_named
from _report import log, ms
from _timing import ready

RUN = Path(__file__).resolve().parent / "run.py"
"""The script the children run (with ``--child``)."""


def child(kind: str, impl: str, model: str, quick: bool) -> JSON:
    """Run in a fresh process: the first call of one model's init (cold), then a warm one."""
    cfg = QUICK if quick else FULL
    pair = pair_named(cfg, model)
    if impl == "equinox":
        import _equinox  # the peer (equinox is in the dev extra)

        depth = cfg.jit_depth
        fn: Callable[[], Any] = lambda: _equinox.init_gpt(jax.random.key(0), cfg.vocab, cfg.d_model, depth, cfg.seq, cfg.heads)
    else:
        fn = pair.trace if impl == "zephyr" else pair.init
    ready(pair.x)
    cold_growth, cold_seconds, result = peak_growth(fn)
    param_bytes = nbytes(result)
    del result
    warm_growth, warm_seconds, result = peak_growth(fn)
    del result
    return {
        "kind": kind, "impl": impl, "model": model, "param_bytes": param_bytes,
        "cold_seconds": cold_seconds, "warm_seconds": warm_seconds,
        "cold_peak_growth_bytes": cold_growth, "warm_peak_growth_bytes": warm_growth,
        "cold_peak_over_params": cold_growth / param_bytes, "warm_peak_over_params": warm_growth / param_bytes,
    }


def run_child(impl: str, model: str, quick: bool) -> JSON:
    """Run :func:`child` in a fresh interpreter (run-time checking off, large mallocs mmapped)."""
    env = {k: v for k, v in os.environ.items() if k != "ZEPHYR_TYPECHECK"}
    # Allocations above 64 KiB are mmapped and returned on free, so the warm figure is not
    # hidden by memory glibc kept from the cold call.
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    command = [sys.executable, str(RUN), "--child", impl, model]
    if quick:
        command.append("--quick")
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {impl} {model} failed:\n{done.stderr[-3000:]}")
    result: JSON = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def has_equinox() -> bool:
    """Whether the Equinox peer is installed (it is in the dev extra)."""
    try:
        import equinox  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        return False
    return True


def section_children(cfg: Config, out: JSON) -> None:
    """Cold first calls (fresh process per model and side) and peak memory during init."""
    models = ["gpt"] if cfg.quick else ["gpt", "memory", "memory-scan"]
    impls = ["zephyr"] if cfg.quick else ["zephyr", "raw"]
    rows: JSON = {}
    for model in models:
        row: JSON = {impl: run_child(impl, model, cfg.quick) for impl in impls}
        if model == "gpt" and not cfg.quick and has_equinox():
            row["equinox"] = run_child("equinox", model, cfg.quick)
            row["cold_vs_equinox"] = row["zephyr"]["cold_seconds"] / row["equinox"]["cold_seconds"]
        if "raw" in row:
            row["cold_ratio"] = row["zephyr"]["cold_seconds"] / row["raw"]["cold_seconds"]
        rows[model] = row
        sides: dict[str, JSON] = {impl: r for impl, r in row.items() if isinstance(r, dict)}
        log(f"child {model}: " + "; ".join(
            f"{impl} cold {ms(r['cold_seconds'])} warm {ms(r['warm_seconds'])} peak/params "
            f"{r['cold_peak_over_params']:.2f} (warm {r['warm_peak_over_params']:.2f})"
            for impl, r in sides.items()
        ))
    out["fresh_process"] = rows
