# pyright: reportUnknownMemberType=false, reportUnknownArgumentType=false
"""When each leaf of a first trace is drawn, against when the forward ends (issue 26).

``python benchmarks/draw_timeline.py [BLOCKS ...]``: the user-loop GPT of ``_models`` (the
``first`` section's model), its trace cache cleared. For every leaf: when ``trace``
dispatched its draw (ms from the start of the trace) and when its value was ready (a
watcher thread waits on each in dispatch order), then when the forward ended and when
``trace`` returned. Draws ready before the forward ends ran on XLA's threads while Python
was still tracing: the overlap. Not part of ``run.py``.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import zephyr  # noqa: E402
import zephyr.core._api as core_api  # noqa: E402
import zephyr.core._initializers as core_initializers  # noqa: E402

import _models  # noqa: E402


def timeline(blocks: int) -> None:
    """Print the per-leaf timeline of one first trace of the ``blocks``-block user loop."""
    model = _models.gpt_user_loop(1000, 256, blocks, 4)
    x = jnp.zeros((8, 128), jnp.int32)
    key = jax.random.key(0)
    for _ in range(2):  # warm: every program compiled, as in the `first` section
        zephyr.clear_trace_cache()
        jax.block_until_ready(zephyr.trace(model, key, x))
    dispatched: list[tuple[str, float]] = []
    ready: dict[str, float] = {}
    pending: queue.Queue[tuple[str, Any] | None] = queue.Queue()
    forward_end: list[float] = []
    real_draw = core_initializers.initialize_leaf
    real_collect = core_api._collect_specs  # pyright: ignore[reportPrivateUsage]

    def draw(leaf: Any, k: Any, sharding: Any = None) -> Any:
        value = real_draw(leaf, k, sharding)
        dispatched.append((leaf.name, time.perf_counter()))
        pending.put((leaf.name, value))
        return value

    def collect(*args: Any) -> Any:
        try:
            return real_collect(*args)
        finally:
            forward_end.append(time.perf_counter())

    def watch() -> None:
        while (item := pending.get()) is not None:
            jax.block_until_ready(item[1])
            ready[item[0]] = time.perf_counter()

    watcher = threading.Thread(target=watch)
    watcher.start()
    core_initializers.initialize_leaf = draw
    core_api.initialize_leaf = draw
    core_api._collect_specs = collect  # pyright: ignore[reportPrivateUsage]
    try:
        zephyr.clear_trace_cache()
        start = time.perf_counter()
        params = zephyr.trace(model, key, x)
        returned = time.perf_counter()
        jax.block_until_ready(params)
        done = time.perf_counter()
    finally:
        core_initializers.initialize_leaf = real_draw
        core_api.initialize_leaf = real_draw
        core_api._collect_specs = real_collect  # pyright: ignore[reportPrivateUsage]
        pending.put(None)
        watcher.join()
    end = forward_end[0]
    ms = lambda t: (t - start) * 1e3  # noqa: E731
    print(f"\n{blocks} block(s), load {os.getloadavg()[0]:.1f}: {len(dispatched)} leaves")
    print("| leaf | dispatched (ms) | ready (ms) |\n| --- | --- | --- |")
    shown = dispatched if len(dispatched) <= 30 else dispatched[:12] + dispatched[-6:]
    for name, t in shown:
        print(f"| {name} | {ms(t):.1f} | {ms(ready[name]):.1f} |")
    during = sum(1 for name, t in dispatched if t <= end)
    ready_during = sum(1 for name, _ in dispatched if ready[name] <= end)
    print(f"forward ended at {ms(end):.1f} ms; trace returned at {ms(returned):.1f} ms; all ready at {ms(done):.1f} ms")
    print(f"{during} of {len(dispatched)} draws dispatched during the forward, {ready_during} of them ready before it ended")


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [1, 4]:
        timeline(n)
