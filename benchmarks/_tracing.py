# jax annotates live_arrays and tree.leaves partially.
# pyright: reportUnknownMemberType=false, reportUnknownArgumentType=false
"""The "init" and "abstract" sections: building params, zephyr's trace against raw JAX's init.

"init" times the warm trace of every model against raw init (with zephyr's cached forward
and with the cache cleared, and against raw JAX drawing from threefry4x32 keys), then the
abstract forward at several batch sizes. "abstract" measures ``zephyr.abstract_trace`` of
the deepest GPT: time, new live arrays, peak RSS growth.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable

import jax

import zephyr

import _models
from _memory import nbytes, peak_kib, reset_peak, rss_kib
from _pairs import JSON, Config, Pair, check_pair, clear_trace_cache, cnn_pair, gpt_pair, mlp_pair
from _report import log, ms
from _timing import paired


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
        rss_before = rss_kib()
        reset = reset_peak()
        result = run()
        grown_kib = (peak_kib() - rss_before) if reset else None
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
