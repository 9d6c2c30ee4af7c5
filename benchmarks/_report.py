"""The benchmark's output: progress lines, figures as text, and the table of ratios against the targets.

:func:`table` turns the figures of a run (``results.json``) into rows of zephyr, raw JAX,
their ratio, the target (of issue 6; of issue 16 for the first-trace rows and the eager
``nets.linear`` ratio) and whether it is met; :func:`print_table` prints them as markdown.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

from _pairs import JSON, Config

_START = time.perf_counter()


def elapsed() -> float:
    """Seconds since the benchmark started (since this module was imported)."""
    return time.perf_counter() - _START


def log(message: str) -> None:
    """One progress line on stderr, after the seconds elapsed."""
    print(f"[{elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    """``seconds`` in milliseconds (in microseconds below one)."""
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else us(seconds)


def us(seconds: float) -> str:
    """``seconds`` in microseconds."""
    return f"{seconds * 1e6:.2f} us"


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


def _first_trace_rows(r: JSON) -> list[Row]:
    """The "first" section: the first trace of the user-loop GPT and of the seed model (issue 16)."""
    rows: list[Row] = []
    for row in r.get("first_trace", {}).values():
        what = f"first trace, GPT {row['depth']} blocks user loop"
        rows.append(Row(f"{what} vs initialize of its specs", ms(row["first_trace"]), f"{ms(row['initialize'])} (initialize)",
                        f"{row['vs_initialize']:.2f}x", "<= 1.10x", _met(row["vs_initialize"] <= 1.10)))
        rows.append(Row(f"{what} vs raw init", ms(row["first_trace"]), ms(row["raw"]),
                        f"{row['vs_raw']:.2f}x", "<= 0.60x", _met(row["vs_raw"] <= 0.6)))
        if "plain_first_trace" in row:
            rows.append(Row(f"first trace, GPT {row['depth']} blocks plain loop (not @flexible) vs initialize of its specs",
                            ms(row["plain_first_trace"]), f"{ms(row['initialize'])} (initialize)",
                            f"{row['plain_vs_initialize']:.2f}x", "<= 1.25x", _met(row["plain_vs_initialize"] <= 1.25)))
        rows.append(Row("  what-if: replay off (every block's forward runs) vs raw init", ms(row["replay_off"]), ms(row["raw"]),
                        f"{row['replay_off_vs_raw']:.2f}x (replay on/off {row['vs_replay_off']:.2f}x)", "-", "-"))
        rows.append(Row("  the abstract run alone (collect_specs, cache cleared)", ms(row["abstract_run"]), "-",
                        f"{row['abstract_run'] / row['first_trace']:.0%} of the first trace", "-", "-"))
        if "equinox" in row:
            rows.append(Row(f"{what} vs Equinox's constructor", ms(row["first_trace"]), f"{ms(row['equinox'])} (Equinox)",
                            f"{row['vs_equinox']:.2f}x", "-", "-"))
            rows.append(Row(f"  Equinox's constructor vs raw init, GPT {row['depth']} blocks", ms(row["equinox"]), ms(row["raw"]),
                            f"{row['equinox_vs_raw']:.2f}x", "-", "-"))
    seed = r.get("first_trace_seed")
    if seed:
        batch, features = seed["input_shape"]
        rows.append(Row(f"first trace, seed model ({batch}, {features}): replay on vs off", ms(seed["first_trace"]),
                        f"{ms(seed['replay_off'])} (replay off)", f"{seed['ratio']:.2f}x", "<= 0.75x", _met(seed["ratio"] <= 0.75)))
        rows.append(Row("  the abstract run alone (collect_specs, cache cleared): replay on vs off", ms(seed["abstract_run"]),
                        f"{ms(seed['abstract_run_replay_off'])} (replay off)", f"{seed['abstract_ratio']:.2f}x", "-", "-"))
    return rows


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
    rows += _first_trace_rows(r)
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
        loss = row["loss"]
        rows.append(Row(f"loss on the same params, {name}", f"{loss['zephyr']:.6f}", f"{loss['raw']:.6f}",
                        f"abs diff {loss['abs_diff']:.1e}", "<= 1e-05", _met(loss["abs_diff"] <= 1e-5)))
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
    for name, row in r.get("compile", {}).items():  # issue 26: building the LLaMA train step (CPU time)
        z, w = row["zephyr"], row["raw"]
        what = f"LLaMA train step, {row['blocks']} blocks {'scan' if row['scan'] else 'loop'}"
        built_z, built_w = z["lower_cpu"] + z["compile_cpu"], w["lower_cpu"] + w["compile_cpu"]
        rows.append(Row(f"{what}: lower+compile, CPU time", ms(built_z), ms(built_w),
                        f"{built_z / built_w:.2f}x (lower {row['lower_ratio']:.2f}x, compile {row['compile_ratio']:.2f}x)",
                        "<= 1.00x +10%", _met(built_z <= 1.1 * built_w)))
        rows.append(Row(f"  {what}: first step (lower, compile, first call), CPU time; wall",
                        f"{ms(z['first_step_cpu'])}; {ms(z['first_step'])}", f"{ms(w['first_step_cpu'])}; {ms(w['first_step'])}",
                        f"{row['first_step_ratio']:.2f}x; wall {row['first_step_wall_ratio']:.2f}x "
                        f"(jaxpr {z['jaxpr_equations']} vs {w['jaxpr_equations']} eqns)",
                        "<= 1.00x +10%", _met(row["first_step_ratio"] <= 1.1)))
    eager = r.get("eager")
    if eager:
        t = eager["tiny"]
        rows.append(Row("@flexible, no holes, tiny function", us(t["flexible"]), us(t["plain"]),
                        f"+{t['overhead_us']:.2f} us", "<= +1.5 us", _met(t["overhead_us"] <= 1.5)))
        e = eager["linear_eager"]
        ratio = e["zephyr"] / e["same_jnp"]
        rows.append(Row(f"nets.linear eager ({e['d_in']}->{e['d_out']}) vs its body as a plain function, checking off",
                        us(e["zephyr"]), us(e["same_jnp"]), f"{ratio:.2f}x ({e['overhead_vs_same_jnp_us']:+.1f} us)",
                        "<= 1.10x", _met(ratio <= 1.1)))
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
    """Print the table as markdown (on stdout); the text printed."""
    header = Row("what", "zephyr", "raw JAX", "zephyr/raw", "target", "met")
    lines = [header, Row("---", "---", "---", "---", "---", "---"), *rows]
    text = "\n".join("| " + " | ".join(asdict(line).values()) + " |" for line in lines)
    print(text)
    return text
