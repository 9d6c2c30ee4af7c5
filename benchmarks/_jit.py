# jax annotates value_and_grad partially.
# pyright: reportUnknownMemberType=false
"""The "jit" section: zephyr's jitted forward and train step against raw JAX's.

For every model: the loss of both sides on zephyr's params (they must agree, so that the
timings compare the same computation), run time, lower+compile time (raw JAX twice, the
noise floor) and the opcodes of the optimized HLO, which are the same for the same program.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no stubs for every module
from jax import Array
from jax.stages import Compiled

from _pairs import JSON, Config, Pair, Tree, pair_named
from _report import log, ms
from _timing import calls_in, compile_in_turn, noise, per_call, ready


def _loss(apply: Callable[[Tree, Array], Array]) -> Callable[[Tree, Array, Array], Array]:
    def loss(params: Tree, x: Array, labels: Array) -> Array:
        logits = apply(params, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    return loss


def _train_step(apply: Callable[[Tree, Array], Array]) -> Callable[..., Any]:
    optimizer = optax.adam(1e-3)
    loss = _loss(apply)

    def step(params: Tree, opt_state: Tree, x: Array, labels: Array) -> tuple[Tree, Tree, Array]:
        value, grads = jax.value_and_grad(loss)(params, x, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


LOSS_TOLERANCE = 1e-5
"""How far the two sides' losses on the same params may differ (float32 rounding)."""


def same_loss(pair: Pair, params: Tree) -> JSON:
    """Both sides' jitted losses on ``params``; an AssertionError if they differ by more than :data:`LOSS_TOLERANCE`."""
    args = (params, pair.x, pair.labels)
    losses: list[Array] = [jax.jit(_loss(apply))(*args) for apply in (pair.apply_zephyr, pair.apply_raw)]
    zephyr_loss, raw_loss = (float(loss) for loss in losses)
    diff = abs(zephyr_loss - raw_loss)
    if not diff <= LOSS_TOLERANCE:
        raise AssertionError(
            f"section_jit: `{pair.name}`: zephyr's loss {zephyr_loss!r} and raw JAX's {raw_loss!r} on the same "
            f"params differ by {diff:.2e} (> {LOSS_TOLERANCE:.0e}): the two sides are not the same model"
        )
    return {"zephyr": zephyr_loss, "raw": raw_loss, "abs_diff": diff}


_OPCODE = re.compile(r"=\s.*?\s([a-z][a-z0-9\-]*)\(")


def hlo_opcodes(text: str) -> Counter[str]:
    """The opcodes of an optimized HLO module's instructions, counted."""
    ops: Counter[str] = Counter()
    for line in text.splitlines():
        match = _OPCODE.search(line)
        if match and not line.lstrip().startswith(("HloModule", "ENTRY")):
            ops[match.group(1)] += 1
    return ops


def _strip_names(hlo: str) -> str:
    """Optimized HLO without names, metadata and ids: what is computed, not what it is called."""
    text = re.sub(r", metadata=\{[^}]*\}", "", hlo)
    text = re.sub(r"%[\w.\-]+", "%v", text)
    text = re.sub(r"^HloModule.*$", "", text, flags=re.M)
    return re.sub(r"\b[\w.\-]+(?=\s*\(|\s*=)", "n", text)


def _hlo_text(compiled: Compiled) -> str:
    """The optimized HLO module of ``compiled``, as text."""
    text = compiled.as_text()
    if text is None:
        raise RuntimeError("section_jit: this backend gives no text for a compiled program's optimized HLO")
    return text


def section_jit(cfg: Config, out: JSON) -> None:
    """Both sides' losses checked equal, then jitted forward and train step: run time, lower+compile time, optimized HLO."""
    rows: JSON = {}
    pairs = [pair_named(cfg, name) for name in cfg.jit_models]
    optimizer = optax.adam(1e-3)
    for pair in pairs:
        params = pair.trace()
        opt_state = optimizer.init(params)
        row: JSON = {"loss": same_loss(pair, params)}
        for kind in ("forward", "train_step"):
            if kind == "forward":
                fz: Callable[..., Any] = pair.apply_zephyr
                fr: Callable[..., Any] = pair.apply_raw
                args: tuple[Any, ...] = (params, pair.x)
            else:
                fz, fr = _train_step(pair.apply_zephyr), _train_step(pair.apply_raw)
                args = (params, opt_state, pair.x, pair.labels)

            # "raw_again" is the raw program once more: the two raw figures give the noise floor
            # of this machine, against which "within noise" is judged.
            compiled, compile_best = compile_in_turn({"zephyr": fz, "raw": fr, "raw_again": fr}, args, cfg.compile_reps)
            cz, cr = compiled["zephyr"], compiled["raw"]
            hlo_z, hlo_r = _hlo_text(cz), _hlo_text(cr)
            ops_z, ops_r = hlo_opcodes(hlo_z), hlo_opcodes(hlo_r)
            cr_again = compiled["raw_again"]
            run_times = per_call({"zephyr": lambda: ready(cz(*args)), "raw": lambda: ready(cr(*args)),
                                  "raw_again": lambda: ready(cr_again(*args))},
                                 calls_in(lambda: ready(cr(*args))), cfg.step_reps)
            row[kind] = {
                "zephyr": run_times["zephyr"], "raw": run_times["raw"],
                "ratio": run_times["zephyr"] / run_times["raw"],
                "noise": noise(run_times["raw_again"], run_times["raw"]),
                "compile_zephyr": compile_best["zephyr"], "compile_raw": compile_best["raw"],
                "compile_ratio": compile_best["zephyr"] / compile_best["raw"],
                "compile_noise": noise(compile_best["raw_again"], compile_best["raw"]),
                "hlo_ops_zephyr": sum(ops_z.values()), "hlo_ops_raw": sum(ops_r.values()),
                "hlo_same_opcodes": ops_z == ops_r,
                "hlo_same_text": _strip_names(hlo_z) == _strip_names(hlo_r),
                "hlo_opcode_diff": {k: ops_z[k] - ops_r[k] for k in set(ops_z) | set(ops_r) if ops_z[k] != ops_r[k]},
            }
            log(f"jit {pair.name} {kind}: run {ms(run_times['zephyr'])} vs {ms(run_times['raw'])}, "
                f"compile {ms(compile_best['zephyr'])} vs {ms(compile_best['raw'])}, "
                f"HLO ops {sum(ops_z.values())} vs {sum(ops_r.values())}")
        rows[pair.name] = row
    out["jit"] = rows
