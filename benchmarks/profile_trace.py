"""Where the first trace of a user's deep model goes: ``python benchmarks/profile_trace.py``.

Profiles (cProfile) the first trace of the benchmark's GPT written as a user's Python loop
of ``nets.transformer_block`` (``_models.gpt_user_loop``, 16 blocks by default) in a warm
process: one trace first (initializer programs compiled, JAX's caches warm), then the trace
cache cleared and the trace profiled, as the "first" section of ``run.py`` times it; then
the abstract run alone (``collect_specs``, the forward without initialization). Each is
profiled ``--runs`` times and the fastest run shown (on a loaded machine, a preempted run
charges its wait to whatever function was running). Prints

- unprofiled medians: the first trace, ``initialize`` of its specs, the abstract run;
- per profile, its wall time and garbage-collector pauses; own time grouped by owner
  (zephyr's files, JAX: ``jax`` and ``jaxlib``, numpy, C builtins, the Python standard
  library, other packages, this benchmark's own files); zephyr's share by file and by the
  pieces of its per-call path (the ``@flexible`` wrapper: ``_flexible.py`` and the hole
  check of ``functools/_partial.py``; ``validate`` and the trace engine: ``core/_api.py``,
  ``core/_trace.py``; the signature binding: ``typing/_signature.py``; replay:
  ``core/_replay.py``); the top functions by cumulative and by own time, each with its
  owner; the durations JAX reports through ``jax.monitoring``.

In the first trace, ``initialize_leaf``'s own time is mostly the compiled initializer
programs running: jit's C++ fast path calls them without a Python frame, so cProfile
charges XLA's work to the Python function that called it.

``--replay-off`` profiles the trace with every ``@flexible`` call run (replay switched off).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import statistics
import sys
import sysconfig
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.monitoring  # noqa: E402
import numpy as np  # noqa: E402

import zephyr  # noqa: E402
from zephyr.typing import checking  # noqa: E402

import _models  # noqa: E402
from _first_trace import replay_off  # noqa: E402
from _pairs import FULL  # noqa: E402
from _timing import ready  # noqa: E402

ZEPHYR = Path(zephyr.__file__).resolve().parent
JAX_DIRS = tuple(Path(m.__file__).resolve().parent for m in (jax, __import__("jaxlib")) if m.__file__)
NUMPY = Path(np.__file__).resolve().parent
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
SITE = Path(sysconfig.get_paths()["purelib"]).resolve()

PIECES: dict[str, tuple[str, ...]] = {
    "@flexible wrapper (_flexible.py, functools/_partial.py)": ("_flexible.py", "functools/_partial.py"),
    "validate and the trace engine (core/_api.py, core/_trace.py)": ("core/_api.py", "core/_trace.py"),
    "signature binding (typing/_signature.py)": ("typing/_signature.py",),
    "replay (core/_replay.py)": ("core/_replay.py",),
}
"""zephyr's per-call path, by the files its pieces live in (relative to the package)."""


@dataclass(frozen=True)
class Entry:
    """One function of the profile."""

    owner: str
    where: str  # file:line(name), the file relative to its package
    calls: int
    own: float  # seconds in the function itself
    cumulative: float  # seconds in it and everything it called


def owner_of(code: object) -> tuple[str, str]:
    """The owner of a profiled function (zephyr, jax, numpy, builtins, python, other, benchmarks) and its name."""
    if isinstance(code, str):  # a C function: "<built-in method ...>" or "<method ... of ... objects>"
        return "builtins", code
    filename: str = getattr(code, "co_filename", "?")
    name = f"{getattr(code, 'co_name', '?')}:{getattr(code, 'co_firstlineno', 0)}"
    path = Path(filename).resolve() if filename and not filename.startswith("<") else None
    if path is None:
        return "python", f"{filename}({name})"
    for owner, roots in (("zephyr", (ZEPHYR,)), ("jax", JAX_DIRS), ("numpy", (NUMPY,)), ("benchmarks", (HERE,))):
        for root in roots:
            if path.is_relative_to(root):
                return owner, f"{path.relative_to(root.parent)}({name})"
    if path.is_relative_to(SITE):
        return "other", f"{path.relative_to(SITE)}({name})"
    if path.is_relative_to(STDLIB):
        return "python", f"{path.relative_to(STDLIB)}({name})"
    return "other", f"{filename}({name})"


def entries(profile: cProfile.Profile) -> list[Entry]:
    """The profiled functions with their owners."""
    found: list[Entry] = []
    for stat in profile.getstats():
        owner, where = owner_of(stat.code)
        found.append(Entry(owner, where, stat.callcount, stat.inlinetime, stat.totaltime))
    return found


def _table(title: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.rjust(w) if i < len(row) - 1 else cell for i, (cell, w) in enumerate(zip(row, widths, strict=True))))


def report(found: list[Entry], total: float, top: int) -> None:
    """Print the owners, zephyr's pieces and files, and the top functions."""
    by_owner: dict[str, float] = defaultdict(float)
    for e in found:
        by_owner[e.owner] += e.own
    own_total = sum(by_owner.values())
    rows = [("owner", "own time", "share")]
    rows += [(owner, f"{t * 1e3:.1f} ms", f"{t / own_total:.0%}") for owner, t in sorted(by_owner.items(), key=lambda kv: -kv[1])]
    _table(f"own time by owner (profiled trace {total * 1e3:.1f} ms)", rows)

    zephyr_entries = [e for e in found if e.owner == "zephyr"]
    rows = [("zephyr's piece", "own time", "share of all", "calls of its top function")]
    for piece, files in PIECES.items():
        mine = [e for e in zephyr_entries if any(f"zephyr/{f}(" in e.where for f in files)]
        own = sum(e.own for e in mine)
        busiest = max(mine, key=lambda e: e.calls, default=None)
        rows.append((piece, f"{own * 1e3:.1f} ms", f"{own / own_total:.1%}",
                     f"{busiest.calls} {busiest.where}" if busiest else "-"))
    _table("zephyr's per-call path", rows)

    by_file: dict[str, float] = defaultdict(float)
    for e in zephyr_entries:
        by_file[e.where.split("(")[0]] += e.own
    rows = [("zephyr file", "own time", "share of all")]
    rows += [(f, f"{t * 1e3:.1f} ms", f"{t / own_total:.1%}") for f, t in sorted(by_file.items(), key=lambda kv: -kv[1])[:top]]
    _table("zephyr's own time by file", rows)

    orders: tuple[tuple[Callable[[Entry], float], str], ...] = (
        (lambda e: e.cumulative, "cumulative"), (lambda e: e.own, "own time"),
    )
    for key, label in orders:
        ranked = sorted(found, key=key, reverse=True)[:top]
        rows = [("cumulative", "own", "calls", "owner", "function")]
        rows += [(f"{e.cumulative * 1e3:.1f} ms", f"{e.own * 1e3:.1f} ms", str(e.calls), e.owner, e.where) for e in ranked]
        _table(f"top {top} by {label}", rows)

    ranked = sorted(zephyr_entries, key=lambda e: e.cumulative, reverse=True)[:top]
    rows = [("cumulative", "own", "calls", "function")]
    rows += [(f"{e.cumulative * 1e3:.1f} ms", f"{e.own * 1e3:.1f} ms", str(e.calls), e.where) for e in ranked]
    _table(f"zephyr's top {top} by cumulative time", rows)


@dataclass
class Profiled:
    """The fastest of several profiled runs: its wall time, profile, JAX events and GC pauses."""

    seconds: float
    profile: cProfile.Profile
    events: dict[str, list[float]]
    gc_pauses: list[float]


def profiled(fn: Callable[[], Any], runs: int) -> Profiled:
    """Profile ``fn`` ``runs`` times; keep the fastest run (the least disturbed by other load)."""
    best: Profiled | None = None
    for _i in range(runs):
        events: dict[str, list[float]] = defaultdict(list)
        pauses: list[float] = []

        def on_duration(event: str, duration_secs: float, **kwargs: str | int) -> None:
            events[event].append(duration_secs)

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                pauses.append(time.perf_counter())
            elif pauses:
                pauses[-1] = time.perf_counter() - pauses[-1]

        gc.collect()
        jax.monitoring.register_event_duration_secs_listener(on_duration)
        gc.callbacks.append(on_gc)
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        ready(fn())
        profile.disable()
        seconds = time.perf_counter() - start
        gc.callbacks.remove(on_gc)
        jax.monitoring.unregister_event_duration_listener(on_duration)
        if best is None or seconds < best.seconds:
            best = Profiled(seconds, profile, events, pauses)
    assert best is not None
    return best


def median_seconds(fn: Callable[[], Any], runs: int) -> float:
    """Median wall time of ``fn`` over ``runs`` calls."""
    times: list[float] = []
    for _i in range(runs):
        start = time.perf_counter()
        ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Profile the first trace and its abstract run; print where they go."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--depth", type=int, default=16, help="blocks of the user-loop GPT (default 16)")
    parser.add_argument("--top", type=int, default=25, help="functions per list (default 25)")
    parser.add_argument("--runs", type=int, default=5, help="profiled runs; the fastest is shown (default 5)")
    parser.add_argument("--replay-off", action="store_true", help="run every @flexible call (no replay)")
    args = parser.parse_args(argv)
    cfg = FULL
    key = jax.random.key(0)
    tokens = jax.random.randint(jax.random.key(2), (cfg.batch, cfg.seq), 0, cfg.vocab)
    model = _models.gpt_user_loop(cfg.vocab, cfg.d_model, args.depth, cfg.heads)
    replay = nullcontext if not args.replay_off else replay_off

    def first() -> Any:
        with replay():
            zephyr.clear_trace_cache()
            return zephyr.trace(model, key, tokens)

    def abstract() -> Any:
        with replay():
            zephyr.clear_trace_cache()
            return zephyr.collect_specs(model, (tokens,), {})

    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"), checking(False):
        ready(first())  # warm: initializer programs compiled
        (specs,) = zephyr.collect_specs(model, (tokens,), {})
        figures = {
            "first trace": median_seconds(first, args.runs),
            "initialize of its specs": median_seconds(lambda: zephyr.initialize(specs, key), args.runs),
            "abstract run (collect_specs)": median_seconds(abstract, args.runs),
        }
        whole = profiled(first, args.runs)
        forward = profiled(abstract, args.runs)

    print(f"{args.depth}-block user-loop GPT, replay {'off' if args.replay_off else 'on'}, unprofiled medians of "
          f"{args.runs}: " + ", ".join(f"{name} {t * 1e3:.1f} ms" for name, t in figures.items()))
    for title, run in (("FIRST TRACE", whole), ("ABSTRACT RUN ALONE (collect_specs, the forward)", forward)):
        print(f"\n=== {title}: fastest of {args.runs} profiled runs {run.seconds * 1e3:.1f} ms; "
              f"GC: {len(run.gc_pauses)} collections, {sum(run.gc_pauses) * 1e3:.1f} ms")
        report(entries(run.profile), run.seconds, args.top)
        if run.events:
            rows = [("jax.monitoring event", "count", "total")]
            rows += [(name, str(len(ts)), f"{sum(ts) * 1e3:.1f} ms")
                     for name, ts in sorted(run.events.items(), key=lambda kv: -sum(kv[1]))]
            _table("JAX's own durations during the profiled run", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
