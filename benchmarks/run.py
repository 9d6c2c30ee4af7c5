# jax annotates jit, tree and jnp functions partially; a benchmark harness calls them everywhere.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false, reportUnknownLambdaType=false
"""zephyr against raw JAX, side by side in one run: ``python benchmarks/run.py [--quick]``.

Builds the same MLP, small CNN and GPT-style transformer in zephyr (``_models.py``) and in
raw JAX (``_raw.py``: hand-written init with ``jax.random`` calls and a pure apply, the
floor), measures them with warm-up and medians (zephyr and raw runs interleaved, so load
on a shared machine hits both alike), prints one table of zephyr/raw ratios next to the
targets of issue 6 and writes every figure to ``benchmarks/results.json``.

Figures that need a fresh process (cold first call, peak memory) run in subprocesses of
this script (``--child``). ``--quick`` runs every section on tiny shapes (a smoke test).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no stubs for every module  # noqa: E402
from jax import Array  # noqa: E402

import zephyr  # noqa: E402
from zephyr import nets  # noqa: E402
from zephyr.functools.partial import flexible  # noqa: E402
from zephyr.typing import Params, checking  # noqa: E402

import _models  # noqa: E402
import _raw  # noqa: E402

JSON = dict[str, Any]
Tree = Any  # a params pytree of either side (zephyr's dict or the raw dict)


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    vocab: int = 1000
    d_model: int = 256
    heads: int = 4
    seq: int = 128
    batch: int = 8
    depths: tuple[int, ...] = (1, 4, 16, 64)
    batches: tuple[int, ...] = (1, 8, 64, 512)
    jit_depth: int = 2
    jit_models: tuple[str, ...] = ("mlp", "cnn", "gpt", "gpt-scan")
    mlp_in: int = 256
    mlp_widths: tuple[int, ...] = (512, 512, 512, 512, 10)
    mlp_batch: int = 64
    cnn_shape: tuple[int, int, int, int] = (8, 32, 32, 3)
    classes: int = 10
    memory_d: int = 1024
    memory_depth: int = 6
    reps: int = 7
    deep_reps: int = 3
    compile_reps: int = 3
    step_reps: int = 9
    eager_number: int = 2000
    tiny_number: int = 200_000
    children: bool = True
    quick: bool = False


FULL = Config()
QUICK = Config(
    vocab=50, d_model=32, heads=2, seq=8, batch=2, depths=(1,), batches=(1, 4), jit_depth=1, jit_models=("mlp",),
    mlp_in=16, mlp_widths=(32, 10), mlp_batch=4, cnn_shape=(2, 8, 8, 3), memory_d=32,
    memory_depth=1, reps=2, deep_reps=1, compile_reps=1, step_reps=2, eager_number=50,
    tiny_number=2000, quick=True,
)


# ------------------------------------------------------------------------------ measuring


def _ready(value: object) -> None:
    jax.block_until_ready(value)


def paired(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, the functions' runs interleaved."""
    for _i in range(warmup):
        for fn in fns.values():
            _ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    gc.collect()
    for i in range(reps):
        for name, fn in _in_turn(fns, i):
            start = time.perf_counter()
            _ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _in_turn(fns: dict[str, Callable[[], object]], i: int) -> list[tuple[str, Callable[[], object]]]:
    """The functions in order, rotated by ``i``: each goes first in turn (no order bias)."""
    items = list(fns.items())
    k = i % len(items)
    return items[k:] + items[:k]


def samples_of(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``reps`` calls of ``fn`` (after ``warmup`` calls)."""
    for _i in range(warmup):
        _ready(fn())
    gc.collect()
    samples: list[float] = []
    for _i in range(reps):
        start = time.perf_counter()
        _ready(fn())
        samples.append(time.perf_counter() - start)
    return samples


def per_call(
    fns: dict[str, Callable[[], object]], number: int, repeat: int = 7, stat: Callable[[list[float]], float] = statistics.median
) -> dict[str, float]:
    """Seconds per call over ``repeat`` timeit runs of ``number`` calls, interleaved (median by default)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for i in range(repeat):
        for name, fn in _in_turn(fns, i):
            times[name].append(timeit.timeit(fn, number=number) / number)
    return {name: stat(ts) for name, ts in times.items()}


def _number(fn: Callable[[], object], budget: float = 0.02) -> int:
    """How many calls of ``fn`` take about ``budget`` seconds (at least one)."""
    fn()
    start = time.perf_counter()
    fn()
    return max(1, int(budget / max(time.perf_counter() - start, 1e-7)))


def clear_trace_cache() -> None:
    """Forget zephyr's cached abstract runs (if this zephyr caches them): the next trace runs the forward."""
    clear: Callable[[], None] | None = getattr(zephyr, "clear_trace_cache", None)
    if clear is not None:
        clear()


def nbytes(tree: Tree) -> int:
    """Total bytes of the arrays in ``tree``."""
    return sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


def same_shapes(a: Tree, b: Tree) -> bool:
    """Whether two trees have the same structure, shapes and dtypes."""
    spec: Callable[[Array], tuple[tuple[int, ...], str]] = lambda x: (tuple(x.shape), str(x.dtype))
    return bool(jax.tree.structure(a) == jax.tree.structure(b)) and jax.tree.leaves(
        jax.tree.map(spec, a)
    ) == jax.tree.leaves(jax.tree.map(spec, b))


# ------------------------------------------------------------------------------ the models


@dataclass(frozen=True)
class Pair:
    """One model on both sides: ``trace()`` / ``init()`` build params, applies run them."""

    name: str
    trace: Callable[[], Tree]
    init: Callable[[], Tree]
    init_threefry4x32: Callable[[], Tree]
    apply_zephyr: Callable[[Tree, Array], Array]
    apply_raw: Callable[[Tree, Array], Array]
    x: Array
    labels: Array


FAST_KEY = jax.random.key(0, impl="threefry4x32")
"""The what-if for raw JAX: its init drawing from the generator zephyr's leaf keys use."""


def _labels(shape: tuple[int, ...], classes: int) -> Array:
    return jax.random.randint(jax.random.key(1), shape, 0, classes)


def mlp_pair(cfg: Config) -> Pair:
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(2), (cfg.mlp_batch, cfg.mlp_in))
    widths = cfg.mlp_widths
    return Pair(
        "mlp",
        lambda: zephyr.trace(_models.mlp, key, x, widths),
        lambda: _raw.init_mlp(key, cfg.mlp_in, widths),
        lambda: _raw.init_mlp(FAST_KEY, cfg.mlp_in, widths),
        lambda p, x: _models.mlp(p, x, widths),
        _raw.apply_mlp,
        x,
        _labels((cfg.mlp_batch,), widths[-1]),
    )


def cnn_pair(cfg: Config) -> Pair:
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(2), cfg.cnn_shape)
    return Pair(
        "cnn",
        lambda: zephyr.trace(_models.cnn, key, x, cfg.classes),
        lambda: _raw.init_cnn(key, cfg.cnn_shape[-1], cfg.classes),
        lambda: _raw.init_cnn(FAST_KEY, cfg.cnn_shape[-1], cfg.classes),
        lambda p, x: _models.cnn(p, x, cfg.classes),
        _raw.apply_cnn,
        x,
        _labels((cfg.cnn_shape[0],), cfg.classes),
    )


def gpt_pair(cfg: Config, depth: int, *, scan: bool, d_model: int | None = None, batch: int | None = None) -> Pair:
    key = jax.random.key(0)
    d = d_model or cfg.d_model
    tokens = jax.random.randint(jax.random.key(2), (batch or cfg.batch, cfg.seq), 0, cfg.vocab)
    model = _models.gpt(cfg.vocab, d, depth, cfg.heads, scan=scan)
    return Pair(
        f"gpt{depth}{'-scan' if scan else ''}",
        lambda: zephyr.trace(model, key, tokens),
        lambda: _raw.init_gpt(key, cfg.vocab, d, depth, cfg.seq, stacked=scan),
        lambda: _raw.init_gpt(FAST_KEY, cfg.vocab, d, depth, cfg.seq, stacked=scan),
        model,
        lambda p, t: _raw.apply_gpt(p, t, cfg.heads, stacked=scan),
        tokens,
        _labels(tuple(tokens.shape), cfg.vocab),
    )


def check_pair(pair: Pair) -> float:
    """Same params layout on both sides; both applies agree on zephyr's params (max |diff|)."""
    params = pair.trace()
    if not same_shapes(params, pair.init()):
        raise AssertionError(f"{pair.name}: zephyr and raw params differ in layout")
    # Jitted: one compile per side instead of one per eager op.
    diff = jnp.max(jnp.abs(jax.jit(pair.apply_zephyr)(params, pair.x) - jax.jit(pair.apply_raw)(params, pair.x)))
    return float(diff)


# ------------------------------------------------------------------------------ sections


def section_init(cfg: Config, out: JSON) -> None:
    """Warm trace vs raw init, per model and per depth; and the batch-size sweep."""
    rows: JSON = {}
    pairs = [mlp_pair(cfg)]
    pairs += [] if cfg.quick else [cnn_pair(cfg)]  # quick: fewer compiles (CNN and scan run in other sections)
    pairs += [gpt_pair(cfg, depth, scan=False) for depth in cfg.depths]
    pairs += [] if cfg.quick else [gpt_pair(cfg, depth, scan=True) for depth in cfg.depths]
    for pair in pairs:
        deep = pair.name.startswith("gpt") and int(re.sub(r"\D", "", pair.name)) >= 16
        reps = cfg.deep_reps if deep else cfg.reps
        row: JSON = {"max_abs_diff": check_pair(pair) if not deep else None}
        times = paired({"zephyr": pair.trace, "raw": pair.init, "raw_threefry4x32": pair.init_threefry4x32}, reps)
        uncached = lambda: (clear_trace_cache(), pair.trace())[1]
        times["zephyr_uncached"] = paired({"z": uncached}, reps)["z"]
        row.update(times)
        row["param_bytes"] = nbytes(pair.init())
        row["leaves"] = len(jax.tree.leaves(pair.init()))
        for name in ("zephyr", "zephyr_uncached"):
            row["ratio" + name[len("zephyr"):]] = times[name] / times["raw"]
        row["ratio_vs_raw_threefry4x32"] = times["zephyr"] / times["raw_threefry4x32"]
        rows[pair.name] = row
        log(f"init {pair.name}: " + ", ".join(f"{name} {ms(t)}" for name, t in times.items()))
    out["init_warm"] = rows

    # The abstract forward (the cache cleared; initialization does not see the input), all
    # batch sizes interleaved so that load hits them alike.
    depth = cfg.depths[min(1, len(cfg.depths) - 1)]
    sweep_pairs = {str(batch): gpt_pair(cfg, depth, scan=False, batch=batch) for batch in cfg.batches}

    def forward_only(pair: Pair) -> Callable[[], object]:
        return lambda: (clear_trace_cache(), zephyr.collect_specs(pair.apply_zephyr, (pair.x,), {}))[1]

    medians = paired({b: forward_only(pair) for b, pair in sweep_pairs.items()}, 2 * cfg.reps)
    out["trace_vs_batch"] = {
        "depth": depth, "seconds": medians, "max_over_min": max(medians.values()) / min(medians.values()),
    }
    log(f"abstract forward vs batch (depth {depth}): " + ", ".join(f"{b}: {ms(t)}" for b, t in medians.items()))


def section_abstract(cfg: Config, out: JSON) -> None:
    """``abstract_trace`` at the deepest depth: time, live arrays created, RSS growth."""
    depth = cfg.depths[-1]
    rows: JSON = {}
    for scan in (False, True):
        pair = gpt_pair(cfg, depth, scan=scan)
        model = _models.gpt(cfg.vocab, cfg.d_model, depth, cfg.heads, scan=scan)
        run: Callable[[], object] = lambda: (clear_trace_cache(), zephyr.abstract_trace(model, pair.x))[1]
        run()
        gc.collect()
        live_before = len(jax.live_arrays())
        rss_before = _rss_kib()
        reset = _reset_peak()
        result = run()
        grown_kib = (_peak_kib() - rss_before) if reset else None
        live_after = len(jax.live_arrays())
        seconds = paired({"z": run}, cfg.deep_reps)["z"]
        rows["scan" if scan else "loop"] = {
            "depth": depth,
            "seconds": seconds,
            "new_live_arrays": live_after - live_before,
            "peak_rss_growth_kib": grown_kib,
            "abstract_param_bytes": nbytes(result),
        }
        log(f"abstract_trace depth {depth} {'scan' if scan else 'loop'}: {ms(seconds)} "
            f"new arrays {live_after - live_before}, "
            f"RSS +{grown_kib} KiB")
    out["abstract_trace"] = rows


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


_OPCODE = re.compile(r"=\s.*?\s([a-z][a-z0-9\-]*)\(")


def hlo_opcodes(text: str) -> Counter[str]:
    """The opcodes of an optimized HLO module's instructions, counted."""
    ops: Counter[str] = Counter()
    for line in text.splitlines():
        match = _OPCODE.search(line)
        if match and not line.lstrip().startswith(("HloModule", "ENTRY")):
            ops[match.group(1)] += 1
    return ops


def section_jit(cfg: Config, out: JSON) -> None:
    """Jitted forward and train step: run time, lower+compile time, optimized HLO."""
    rows: JSON = {}
    makers: dict[str, Callable[[], Pair]] = {
        "mlp": lambda: mlp_pair(cfg),
        "cnn": lambda: cnn_pair(cfg),
        "gpt": lambda: gpt_pair(cfg, cfg.jit_depth, scan=False),
        "gpt-scan": lambda: gpt_pair(cfg, cfg.jit_depth, scan=True),
    }
    pairs = [makers[name]() for name in cfg.jit_models]
    optimizer = optax.adam(1e-3)
    for pair in pairs:
        params = pair.trace()
        opt_state = optimizer.init(params)
        row: JSON = {}
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
            compiled: dict[str, Any] = {}
            compile_times: dict[str, list[float]] = {"zephyr": [], "raw": [], "raw_again": []}
            sides: dict[str, Callable[..., Any]] = {"zephyr": fz, "raw": fr, "raw_again": fr}
            for i in range(cfg.compile_reps):
                for name, f in _in_turn(sides, i):
                    fresh = jax.jit(lambda *a, f=f: f(*a))  # a new function: no cache hit
                    start = time.perf_counter()
                    compiled[name] = fresh.lower(*args).compile()
                    compile_times[name].append(time.perf_counter() - start)
            # The fastest of the compiles: a compile is one long run whose outliers are pauses
            # (GC, the other core's load), not part of its cost; timeit's advice for such runs.
            compile_best = {name: min(ts) for name, ts in compile_times.items()}
            cz, cr = compiled["zephyr"], compiled["raw"]
            ops_z, ops_r = hlo_opcodes(cz.as_text()), hlo_opcodes(cr.as_text())
            cr_again = compiled["raw_again"]
            run_times = per_call({"zephyr": lambda: _ready(cz(*args)), "raw": lambda: _ready(cr(*args)),
                                  "raw_again": lambda: _ready(cr_again(*args))},
                                 _number(lambda: _ready(cr(*args))), cfg.step_reps)
            row[kind] = {
                "zephyr": run_times["zephyr"], "raw": run_times["raw"],
                "ratio": run_times["zephyr"] / run_times["raw"],
                "noise": abs(run_times["raw_again"] / run_times["raw"] - 1),
                "compile_zephyr": compile_best["zephyr"], "compile_raw": compile_best["raw"],
                "compile_ratio": compile_best["zephyr"] / compile_best["raw"],
                "compile_noise": abs(compile_best["raw_again"] / compile_best["raw"] - 1),
                "hlo_ops_zephyr": sum(ops_z.values()), "hlo_ops_raw": sum(ops_r.values()),
                "hlo_same_opcodes": ops_z == ops_r,
                "hlo_same_text": _strip_names(cz.as_text()) == _strip_names(cr.as_text()),
                "hlo_opcode_diff": {k: ops_z[k] - ops_r[k] for k in set(ops_z) | set(ops_r) if ops_z[k] != ops_r[k]},
            }
            log(f"jit {pair.name} {kind}: run {ms(run_times['zephyr'])} vs {ms(run_times['raw'])}, "
                f"compile {ms(compile_best['zephyr'])} vs {ms(compile_best['raw'])}, "
                f"HLO ops {sum(ops_z.values())} vs {sum(ops_r.values())}")
        rows[pair.name] = row
    out["jit"] = rows


def _strip_names(hlo: str) -> str:
    """Optimized HLO without names, metadata and ids: what is computed, not what it is called."""
    text = re.sub(r", metadata=\{[^}]*\}", "", hlo)
    text = re.sub(r"%[\w.\-]+", "%v", text)
    text = re.sub(r"^HloModule.*$", "", text, flags=re.M)
    return re.sub(r"\b[\w.\-]+(?=\s*\(|\s*=)", "n", text)


def section_eager(cfg: Config, out: JSON) -> None:
    """Per-call overhead of ``flexible`` and of run-time checking, eagerly and under jit."""

    def tiny(x: object, y: object) -> object:
        return x

    flex = flexible(tiny)
    t = per_call({"plain": lambda: tiny(1, 2), "flexible": lambda: flex(1, 2)}, cfg.tiny_number)
    rows: JSON = {"tiny": {**t, "overhead_us": (t["flexible"] - t["plain"]) * 1e6}}
    log(f"flexible tiny: +{rows['tiny']['overhead_us']:.3f} us per call")

    x = jax.random.normal(jax.random.key(2), (4, 16))
    params = zephyr.trace(nets.linear, jax.random.key(0), x, 8)
    w, b = cast(Array, params["weights"]), cast(Array, params["bias"])

    from zephyr._nets._dtypes import add_trailing, cast as cast_to, compute_dtype

    def same_jnp(x: Array) -> Array:  # nets.linear's body as a plain function: no @flexible, no annotations
        weights = zephyr.validate(w, (x.shape[-1], 8))
        compute = compute_dtype(None, x, weights)
        y = jnp.matmul(cast_to(x, compute), cast_to(weights, compute))
        return add_trailing(y, cast_to(zephyr.validate(b, (8,)), compute))

    def natural(x: Array) -> Array:  # what a JAX user writes
        return x @ w + b

    def checked_linear() -> Array:
        with checking(True):
            return nets.linear(params, x, 8)

    t = per_call(
        {
            "zephyr": lambda: nets.linear(params, x, 8),
            "same_jnp": lambda: same_jnp(x),
            "natural": lambda: natural(x),
            "zephyr_checking_on": checked_linear,
        },
        cfg.eager_number,
    )
    rows["linear_eager"] = {
        **t,
        "overhead_vs_same_jnp_us": (t["zephyr"] - t["same_jnp"]) * 1e6,
        "overhead_vs_natural_us": (t["zephyr"] - t["natural"]) * 1e6,
        "checking_on_extra_us": (t["zephyr_checking_on"] - t["zephyr"]) * 1e6,
    }
    log(f"linear eager: zephyr {us(t['zephyr'])}, same jnp {us(t['same_jnp'])}, natural "
        f"{us(t['natural'])}, checking on {us(t['zephyr_checking_on'])}")

    # Where the eager time of nets.linear goes (each piece on its own).
    y0 = jnp.matmul(x, w)
    parts = per_call(
        {
            "validate": lambda: zephyr.validate(w, (16, 8)),
            "compute_dtype": lambda: compute_dtype(None, x, w),
            "astype_same_dtype": lambda: x.astype(jnp.float32),
            "broadcast_to": lambda: jnp.broadcast_to(b, (4, 8)),
            "matmul": lambda: jnp.matmul(x, w),
            "add": lambda: y0 + b,
        },
        cfg.eager_number,
    )
    rows["linear_eager_parts_us"] = {name: t * 1e6 for name, t in parts.items()}
    log("linear eager parts: " + ", ".join(f"{name} {us(t)}" for name, t in parts.items()))

    # Under jit: one jitted function traced with checking off, one with it on.
    def linear_fn(p: Params, x: Array) -> Array:
        return nets.linear(p, x, 8)

    first: dict[str, float] = {}
    jitted: dict[str, Callable[[], object]] = {}
    for name, on in (("off", False), ("on", True)):
        compiled_first: list[float] = []
        for _i in range(cfg.compile_reps):
            fn = jax.jit(lambda p, x: linear_fn(p, x))
            with checking(on):
                start = time.perf_counter()
                _ready(fn(params, x))
                compiled_first.append(time.perf_counter() - start)
            jitted[name] = lambda fn=fn: fn(params, x)
        first[name] = statistics.median(compiled_first)
    calls = per_call(jitted, cfg.eager_number, stat=min)  # one compiled program each: only dispatch noise differs
    rows["linear_jit"] = {
        "call_off": calls["off"], "call_on": calls["on"], "call_ratio": calls["on"] / calls["off"],
        "first_call_off": first["off"], "first_call_on": first["on"],
    }
    log(f"linear jit: call off {us(calls['off'])}, on {us(calls['on'])}; first call (trace+compile) "
        f"off {ms(first['off'])}, on {ms(first['on'])}")
    out["eager"] = rows


# ------------------------------------------------------------------------------ subprocesses


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_kib() -> int:
    return _status_kib("VmRSS")


def _peak_kib() -> int:
    return _status_kib("VmHWM")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class _Sampler:
    """Peak RSS by polling, where VmHWM cannot be reset."""

    def __init__(self) -> None:
        self.peak = _rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_kib())
            time.sleep(0.0005)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss_kib())


def _peak_growth(fn: Callable[[], Tree]) -> tuple[int, float, Tree]:
    """``(peak RSS growth in bytes, seconds, result)`` of one call of ``fn``."""
    gc.collect()
    before = _rss_kib()
    sampler = None if _reset_peak() else _Sampler()
    start = time.perf_counter()
    result = fn()
    _ready(result)
    seconds = time.perf_counter() - start
    peak = sampler.stop() if sampler is not None else _peak_kib()
    return (peak - before) * 1024, seconds, result


def child(kind: str, impl: str, model: str, quick: bool) -> JSON:
    """Run in a fresh process: the first call of one model's init (cold), then a warm one."""
    cfg = QUICK if quick else FULL
    if model == "memory":
        pair = gpt_pair(cfg, cfg.memory_depth, scan=False, d_model=cfg.memory_d)
    elif model == "memory-scan":
        pair = gpt_pair(cfg, cfg.memory_depth, scan=True, d_model=cfg.memory_d)
    elif model == "mlp":
        pair = mlp_pair(cfg)
    elif model == "cnn":
        pair = cnn_pair(cfg)
    else:
        pair = gpt_pair(cfg, cfg.jit_depth, scan=model.endswith("scan"))
    if impl == "equinox":
        import _equinox  # the peer (equinox is in the dev extra)

        depth = cfg.jit_depth
        fn: Callable[[], Any] = lambda: _equinox.init_gpt(jax.random.key(0), cfg.vocab, cfg.d_model, depth, cfg.seq, cfg.heads)
    else:
        fn = pair.trace if impl == "zephyr" else pair.init
    _ready(pair.x)
    cold_growth, cold_seconds, result = _peak_growth(fn)
    param_bytes = nbytes(result)
    del result
    warm_growth, warm_seconds, result = _peak_growth(fn)
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
    command = [sys.executable, str(Path(__file__).resolve()), "--child", impl, model]
    if quick:
        command.append("--quick")
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {impl} {model} failed:\n{done.stderr[-3000:]}")
    result: JSON = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def _has_equinox() -> bool:
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
        if model == "gpt" and not cfg.quick and _has_equinox():
            row["equinox"] = run_child("equinox", model, cfg.quick)
            row["cold_vs_equinox"] = row["zephyr"]["cold_seconds"] / row["equinox"]["cold_seconds"]
        if "raw" in row:
            row["cold_ratio"] = row["zephyr"]["cold_seconds"] / row["raw"]["cold_seconds"]
        rows[model] = row
        log(f"child {model}: " + "; ".join(
            f"{impl} cold {ms(r['cold_seconds'])} warm {ms(r['warm_seconds'])} peak/params "
            f"{r['cold_peak_over_params']:.2f} (warm {r['warm_peak_over_params']:.2f})"
            for impl, r in row.items() if isinstance(r, dict)
        ))
    out["fresh_process"] = rows


# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    what: str
    zephyr: str
    raw: str
    ratio: str
    target: str
    met: str


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def table(cfg: Config, r: JSON) -> list[Row]:
    """The table of zephyr/raw ratios and targets."""
    rows: list[Row] = []
    init = r.get("init_warm", {})
    for name, row in init.items():
        if name.startswith("gpt"):
            depth, scan = name[3:].removesuffix("-scan"), name.endswith("-scan")
            what = f"trace warm, GPT {depth} blocks {'scan' if scan else 'loop'}"
        else:
            what = f"trace warm, {name.upper()}"
        for key, label in (("", "cached forward"), ("_uncached", "with forward")):
            rows.append(Row(f"{what} ({label})", ms(row["zephyr" + key]),
                            ms(row["raw"]), f"{row['ratio' + key]:.2f}x", "<= 0.80x", _met(row["ratio" + key] <= 0.8)))
        rows.append(Row("  what-if: raw JAX drawing from threefry4x32 keys", ms(row["zephyr"]),
                        ms(row["raw_threefry4x32"]), f"{row['ratio_vs_raw_threefry4x32']:.2f}x", "-", "-"))
    sweep = r.get("trace_vs_batch")
    if sweep:
        values = list(sweep["seconds"].values())
        batches = ",".join(sweep["seconds"])
        flat = sweep["max_over_min"]
        rows.append(Row(f"trace forward vs batch ({batches}), GPT {sweep['depth']}", f"{ms(min(values))}..{ms(max(values))}",
                        "-", f"{flat:.2f}x", "flat (<= 1.15x)", _met(flat <= 1.15)))
    fresh = r.get("fresh_process", {})
    for model in ("mlp", "cnn", "gpt"):
        row = fresh.get(model)
        if row and "raw" in row:
            rows.append(Row(f"trace cold (fresh process), {model}", ms(row["zephyr"]["cold_seconds"]),
                            ms(row["raw"]["cold_seconds"]), f"{row['cold_ratio']:.2f}x",
                            "-", "-"))
        if row and "equinox" in row:
            rows.append(Row(f"trace cold (fresh process), {model} vs Equinox init", ms(row["zephyr"]["cold_seconds"]),
                            f"{ms(row['equinox']['cold_seconds'])} (Equinox)", f"{row['cold_vs_equinox']:.2f}x",
                            "<= 1.00x", _met(row["cold_vs_equinox"] <= 1.0)))
    for model, label in (("memory", "loop"), ("memory-scan", "scan")):
        row = fresh.get(model)
        if row:
            for impl in ("zephyr", "raw"):
                if impl in row:
                    m = row[impl]
                    rows.append(Row(
                        f"peak RSS / param bytes, {impl}, d {cfg.memory_d} x{cfg.memory_depth} {label}",
                        f"{m['cold_peak_over_params']:.2f} (warm {m['warm_peak_over_params']:.2f})",
                        f"{m['param_bytes'] / 2**20:.0f} MiB", "-", "<= 1.10",
                        _met(m["cold_peak_over_params"] <= 1.1) if impl == "zephyr" else "-"))
    for label, row in r.get("abstract_trace", {}).items():
        ok = row["seconds"] < 0.1 and row["new_live_arrays"] == 0
        rows.append(Row(f"abstract_trace, GPT {row['depth']} blocks {label}", ms(row["seconds"]), "-",
                        f"+{row['new_live_arrays']} arrays, RSS +{row['peak_rss_growth_kib']} KiB",
                        "< 100 ms, 0 arrays", _met(ok)))
    for name, row in r.get("jit", {}).items():
        for kind in ("forward", "train_step"):
            k = row[kind]
            run_band, compile_band = max(0.05, k["noise"]), max(0.10, k["compile_noise"])
            rows.append(Row(f"jit {kind}, {name}", ms(k["zephyr"]), ms(k["raw"]), f"{k['ratio']:.2f}x",
                            f"<= 1.00x +{run_band:.0%} (raw vs raw {k['noise']:.0%})",
                            _met(k["ratio"] <= 1 + run_band)))
            rows.append(Row(f"  compile {kind}, {name}", ms(k["compile_zephyr"]), ms(k["compile_raw"]),
                            f"{k['compile_ratio']:.2f}x", f"<= 1.00x +{compile_band:.0%} (raw vs raw {k['compile_noise']:.0%})",
                            _met(k["compile_ratio"] <= 1 + compile_band)))
            rows.append(Row(f"  optimized HLO {kind}, {name}", f"{k['hlo_ops_zephyr']} ops",
                            f"{k['hlo_ops_raw']} ops", "same" if k["hlo_same_text"] else
                            ("same opcodes" if k["hlo_same_opcodes"] else "differs"),
                            "same where possible", _met(k["hlo_same_opcodes"])))
    eager = r.get("eager")
    if eager:
        t = eager["tiny"]
        rows.append(Row("@flexible, no holes, tiny function", us(t["flexible"]), us(t["plain"]),
                        f"+{t['overhead_us']:.2f} us", "<= +1.5 us", _met(t["overhead_us"] <= 1.5)))
        e = eager["linear_eager"]
        rows.append(Row("nets.linear eager vs its body as a plain function, checking off", us(e["zephyr"]), us(e["same_jnp"]),
                        f"{e['overhead_vs_same_jnp_us']:+.1f} us", "<= +1.5 us", _met(e["overhead_vs_same_jnp_us"] <= 1.5)))
        rows.append(Row("nets.linear eager vs x @ w + b", us(e["zephyr"]), us(e["natural"]),
                        f"{e['zephyr'] / e['natural']:.2f}x", "-", "-"))
        rows.append(Row("nets.linear eager, checking on", us(e["zephyr_checking_on"]), us(e["zephyr"]),
                        f"+{e['checking_on_extra_us']:.0f} us", "shows eagerly", _met(e["checking_on_extra_us"] > 0)))
        j = eager["linear_jit"]
        rows.append(Row("nets.linear under jit, checking on vs off", us(j["call_on"]), us(j["call_off"]),
                        f"{j['call_ratio']:.2f}x", "1.00x (<= 1.05)", _met(j["call_ratio"] <= 1.05)))
        rows.append(Row("  jit first call (trace+compile), on vs off", ms(j["first_call_on"]),
                        ms(j["first_call_off"]), f"{j['first_call_on'] / j['first_call_off']:.2f}x", "-", "-"))
    return rows


def print_table(rows: list[Row]) -> str:
    """The table as markdown."""
    header = Row("what", "zephyr", "raw JAX", "zephyr/raw", "target", "met")
    lines = [header, Row("---", "---", "---", "---", "---", "---"), *rows]
    text = "\n".join("| " + " | ".join(asdict(line).values()) + " |" for line in lines)
    print(text)
    return text


# ------------------------------------------------------------------------------ main


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else us(seconds)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


_START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


SECTIONS: dict[str, Callable[[Config, JSON], None]] = {
    "init": section_init,
    "abstract": section_abstract,
    "jit": section_jit,
    "eager": section_eager,
    "fresh": section_children,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repetition: a smoke run")
    parser.add_argument("--json", type=Path, default=HERE / "results.json", help="where to write the figures")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--no-children", action="store_true", help="skip the fresh-process figures")
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"), checking(False):
        if args.child:
            print(json.dumps(child("fresh", args.child[0], args.child[1], args.quick)))
            return 0
        cfg = QUICK if args.quick else FULL
        results: JSON = {
            "meta": {
                "config": asdict(cfg), "jax": jax.__version__, "python": platform.python_version(),
                "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                "devices": len(jax.devices()),
            }
        }
        for name, section in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            if name == "fresh" and args.no_children:
                continue
            section(cfg, results)
        results["meta"]["seconds"] = time.perf_counter() - _START
        results["meta"]["load_average_end"] = os.getloadavg()
        rows = table(cfg, results)
        results["table"] = [asdict(row) for row in rows]
        results["table_markdown"] = print_table(rows)
        args.json.write_text(json.dumps(results, indent=1, default=str))
        log(f"done in {results['meta']['seconds']:.0f} s; figures in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
