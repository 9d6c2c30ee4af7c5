# jax annotates block_until_ready, jit and the lowering stages partially.
# pyright: reportUnknownMemberType=false
"""The benchmark's timers: interleaved medians, per-call figures, compile times, the noise floor.

Every timer runs the sides it compares in turn, each going first once per round
(:func:`in_turn`), so that load on a shared machine and warm caches hit them alike.
"""

from __future__ import annotations

import gc
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any, TypeVar

import jax
from jax.stages import Compiled

T = TypeVar("T")


def ready(value: object) -> None:
    """Wait until the arrays in ``value`` are computed (JAX dispatches asynchronously)."""
    jax.block_until_ready(value)


def in_turn(fns: dict[str, T], i: int) -> list[tuple[str, T]]:
    """The items in order, rotated by ``i``: each goes first in turn (no order bias)."""
    items = list(fns.items())
    k = i % len(items)
    return items[k:] + items[:k]


def paired(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, the functions' runs interleaved."""
    for _i in range(warmup):
        for fn in fns.values():
            ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    gc.collect()
    for i in range(reps):
        for name, fn in in_turn(fns, i):
            start = time.perf_counter()
            ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def per_call(
    fns: dict[str, Callable[[], object]], number: int, repeat: int = 7, stat: Callable[[list[float]], float] = statistics.median
) -> dict[str, float]:
    """Seconds per call over ``repeat`` timeit runs of ``number`` calls, interleaved (median by default)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for i in range(repeat):
        for name, fn in in_turn(fns, i):
            times[name].append(timeit.timeit(fn, number=number) / number)
    return {name: stat(ts) for name, ts in times.items()}


def calls_in(fn: Callable[[], object], budget: float = 0.02) -> int:
    """How many calls of ``fn`` take about ``budget`` seconds (at least one)."""
    fn()
    start = time.perf_counter()
    fn()
    return max(1, int(budget / max(time.perf_counter() - start, 1e-7)))


def _anew(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` as a new function object: ``jax.jit`` of it hits no cache."""

    def call(*args: Any) -> Any:
        return f(*args)

    return call


def compile_in_turn(
    sides: dict[str, Callable[..., Any]], args: tuple[Any, ...], reps: int
) -> tuple[dict[str, Compiled], dict[str, float]]:
    """Lower and compile every side ``reps`` times, in turn: each side's program and its fastest compile.

    Each compile starts from a new function, so no cache is hit. The fastest, not the median:
    a compile is one long run whose outliers are pauses (GC, the other core's load), not part
    of its cost; timeit's advice for such runs.
    """
    compiled: dict[str, Compiled] = {}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(reps):
        for name, f in in_turn(sides, i):
            fresh = jax.jit(_anew(f))
            start = time.perf_counter()
            compiled[name] = fresh.lower(*args).compile()
            times[name].append(time.perf_counter() - start)
    return compiled, {name: min(ts) for name, ts in times.items()}


def noise(again: float, first: float) -> float:
    """The noise floor: how far a second measurement of the same program strays from the first."""
    return abs(again / first - 1)
