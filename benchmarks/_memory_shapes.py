# jax.numpy's ones/zeros are annotated partially (their `device` argument).
# pyright: reportUnknownMemberType=false
"""Memory over many shapes: RSS growth of tracing nets of distinct leaf shapes, zephyr vs raw.

Each side runs in a fresh interpreter (``python _memory_shapes.py IMPL N``): ``N`` linear
layers of ``N`` distinct output widths, initialized by ``zephyr.trace`` or by raw eager
``jax.nn.initializers`` calls; the figure is the RSS after the last one minus the RSS after
the first (each new shape compiles new programs on both sides: JAX keeps raw's, zephyr
keeps a bounded number).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from _pairs import JSON, Config
from _report import log

HERE = Path(__file__).resolve()


def _measure(impl: str, n: int) -> JSON:
    """In a fresh process: RSS growth over ``n`` inits of distinct leaf shapes, in MiB."""
    import jax
    import jax.numpy as jnp

    from _memory import rss_kib

    x = jnp.ones((2, 8))
    if impl == "zephyr":
        from zephyr import nets, trace
        from zephyr.functools.partial import placeholder_hole as _

        def one(i: int) -> object:
            return trace(nets.linear(_, _, 16 + i), jax.random.key(0), x)
    else:
        init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")

        def one(i: int) -> object:
            k_w, _k_b = jax.random.split(jax.random.key(0))
            return {"weights": init(k_w, (8, 16 + i)), "bias": jnp.zeros((16 + i,))}

    one(0)
    gc.collect()
    start = rss_kib()
    for i in range(1, n + 1):
        one(i)
    gc.collect()
    return {"impl": impl, "shapes": n, "rss_growth_mib": (rss_kib() - start) / 1024}


def section_memory_shapes(cfg: Config, out: JSON) -> None:
    """The "memory over many shapes" row: 1000 distinct leaf shapes (10 in quick mode)."""
    n = 10 if cfg.quick else 1000
    rows: JSON = {}
    for impl in ("zephyr", "raw"):
        env = {k: v for k, v in os.environ.items() if k != "ZEPHYR_TYPECHECK"}
        done = subprocess.run(
            [sys.executable, str(HERE), impl, str(n)], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"memory over many shapes ({impl}) failed:\n{done.stderr[-3000:]}")
        rows[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"memory over {n} shapes, {impl}: +{rows[impl]['rss_growth_mib']:.0f} MiB RSS")
    out["memory_shapes"] = rows


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]))))
