"""Memory figures of the benchmark: resident set size, its peak during one call, array bytes.

The peak is read from the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``)
after resetting it through ``/proc/self/clear_refs``; where that reset is not allowed, a
thread polls ``VmRSS`` instead.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import jax
import numpy as np

from _timing import ready

T = TypeVar("T")


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_kib() -> int:
    """This process's resident set size now, in KiB."""
    return _status_kib("VmRSS")


def peak_kib() -> int:
    """This process's peak resident set size since the last :func:`reset_peak`, in KiB."""
    return _status_kib("VmHWM")


def reset_peak() -> bool:
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
        self.peak = rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib())
            time.sleep(0.0005)

    def stop(self) -> int:
        """Stop polling; the peak seen, in KiB."""
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_kib())


def peak_growth(fn: Callable[[], T]) -> tuple[int, float, T]:
    """``(peak RSS growth in bytes, seconds, result)`` of one call of ``fn``."""
    gc.collect()
    before = rss_kib()
    sampler = None if reset_peak() else _Sampler()
    start = time.perf_counter()
    result = fn()
    ready(result)
    seconds = time.perf_counter() - start
    peak = sampler.stop() if sampler is not None else peak_kib()
    return (peak - before) * 1024, seconds, result


def nbytes(tree: object) -> int:
    """Total bytes of the arrays in ``tree``."""
    leaves: list[jax.Array] = jax.tree.leaves(tree)
    return sum(int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize for leaf in leaves)
