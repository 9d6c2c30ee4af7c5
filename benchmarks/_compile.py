# jax annotates jit and the lowering stages partially.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
"""The "compile" section: how long the LLaMA-style model's train step takes to build (issue 26).

For 4 and 32 blocks (``--quick``: 1), scanned and as a Python loop, the train step of
``_jit`` (``value_and_grad`` + ``optax.adam``) of zephyr's model (``_models.llama``) and of
the same model in raw JAX (``_raw.apply_llama``), on the same params. Each side in turn, each
time from a new function (no cache hit): ``jax.jit(step).lower(*args)`` (JAX tracing the
step: the nets' Python runs here), ``.compile()`` (XLA), then the first call until its
result is ready: the first step's wall time is their sum, what a user waits for at the first
``jit(step)(...)``. The fastest of ``cfg.compile_reps`` runs (a compile's outliers are
pauses, not its cost); the jaxpr's equation count of each side says how much was staged.
Each figure is taken twice: wall time, and the CPU time of the whole process (every
thread: XLA compiles on several). On a machine shared with other jobs the wall time of a
compile moves with their load (30 s of wall for 1 s of CPU at a load of 15 on 2 cores);
the CPU time does not, so the ratios are of CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no stubs for every module

import zephyr

import _models
import _raw
from _jit import _train_step  # pyright: ignore[reportPrivateUsage]  # the jit section's train step, shared
from _pairs import JSON, Config
from _report import log, ms
from _timing import in_turn


def _anew(f: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        return f(*args)

    return call


def _equations(jaxpr: Any) -> int:
    """Equations of a closed jaxpr, those of its sub-jaxprs (scan bodies, nested jits) included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's jaxpr, or a Jaxpr
                if hasattr(inner, "eqns"):
                    count += _equations(inner)
    return count


def build_times(sides: dict[str, Callable[..., Any]], args: tuple[Any, ...], reps: int) -> dict[str, dict[str, float]]:
    """Per side, the fastest lower, compile and first step (lower + compile + first call) of ``reps``, in turn."""
    kinds = ("lower", "compile", "first_step")
    runs: dict[str, dict[str, list[float]]] = {
        name: {kind + suffix: [] for kind in kinds for suffix in ("", "_cpu")} for name in sides
    }
    for i in range(reps):
        for name, step in in_turn(sides, i):
            fresh = jax.jit(_anew(step))
            marks = [(time.perf_counter(), time.process_time())]
            lowered = fresh.lower(*args)
            marks.append((time.perf_counter(), time.process_time()))
            compiled = lowered.compile()
            marks.append((time.perf_counter(), time.process_time()))
            jax.block_until_ready(compiled(*args))
            marks.append((time.perf_counter(), time.process_time()))
            for clock, suffix in ((0, ""), (1, "_cpu")):
                runs[name]["lower" + suffix].append(marks[1][clock] - marks[0][clock])
                runs[name]["compile" + suffix].append(marks[2][clock] - marks[1][clock])
                runs[name]["first_step" + suffix].append(marks[3][clock] - marks[0][clock])
    return {name: {kind: min(ts) for kind, ts in kinds.items()} for name, kinds in runs.items()}


def section_compile(cfg: Config, out: JSON) -> None:
    """Lower, compile and first-step times of the LLaMA train step, zephyr against raw JAX."""
    size = cfg.llama
    key = jax.random.key(0)
    tokens = jax.random.randint(jax.random.key(2), (size.batch, size.seq), 0, size.vocab)
    labels = jax.random.randint(jax.random.key(1), (size.batch, size.seq), 0, size.vocab)
    rows: JSON = {}
    for blocks in cfg.compile_blocks:
        for scan in (True, False):
            model = _models.llama(size.vocab, size.d_model, blocks, size.heads, size.kv_heads, size.mlp_dim, scan=scan)
            params = zephyr.trace(model, key, tokens)
            opt_state = optax.adam(1e-3).init(params)
            args = (params, opt_state, tokens, labels)
            steps = {
                "zephyr": _train_step(model),
                "raw": _train_step(lambda p, t, scan=scan: _raw.apply_llama(p, t, size.heads, size.kv_heads, scan=scan)),
            }
            times = build_times(steps, args, cfg.compile_reps)
            name = f"llama{blocks}{'-scan' if scan else '-loop'}"
            row: JSON = {"blocks": blocks, "scan": scan, **times}
            for side, step in steps.items():
                row[side]["jaxpr_equations"] = _equations(jax.make_jaxpr(step)(*args).jaxpr)
            for kind in ("lower", "compile", "first_step"):
                row[f"{kind}_ratio"] = times["zephyr"][kind + "_cpu"] / times["raw"][kind + "_cpu"]
                row[f"{kind}_wall_ratio"] = times["zephyr"][kind] / times["raw"][kind]
            rows[name] = row
            log(f"compile {name}: " + ", ".join(
                f"{side} lower {ms(t['lower'])} compile {ms(t['compile'])} first step {ms(t['first_step'])}"
                f" (CPU {ms(t['lower_cpu'])}, {ms(t['compile_cpu'])}, {ms(t['first_step_cpu'])})"
                f" ({row[side]['jaxpr_equations']} eqns)" for side, t in times.items()))
    out["compile"] = rows
