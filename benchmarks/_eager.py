# jax annotates jit partially: the jitted function, its lambda and its results are partly Unknown.
# pyright: reportUnknownMemberType=false, reportUnknownArgumentType=false, reportUnknownLambdaType=false
"""The "eager" section: the per-call cost of ``@flexible`` and of run-time checking.

``nets.linear`` (32 -> 32, batch 4) called eagerly is timed against its own body as a plain function and
against ``x @ w + b``, with checking off and on, then piece by piece; under ``jit``, its
call and first call (trace and compile) with checking off and on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp
from jax import Array

import zephyr
from zephyr import nets
from zephyr.functools.partial import flexible
from zephyr.typing import Params, checking

from _pairs import JSON, Config
from _report import log, ms, us
from _timing import per_call, ready

LINEAR = (32, 32)
"""``nets.linear``'s input and output width in the eager figures (issue 16's 32 -> 32)."""


def section_eager(cfg: Config, out: JSON) -> None:
    """Per-call overhead of ``flexible`` and of run-time checking, eagerly and under jit."""

    def tiny(x: object, y: object) -> object:
        return x

    flex = flexible(tiny)
    t = per_call({"plain": lambda: tiny(1, 2), "flexible": lambda: flex(1, 2)}, cfg.tiny_number)
    rows: JSON = {"tiny": {**t, "overhead_us": (t["flexible"] - t["plain"]) * 1e6}}
    log(f"flexible tiny: +{rows['tiny']['overhead_us']:.3f} us per call")

    d_in, d_out = LINEAR  # issue 16: nets.linear 32 -> 32, batch 4
    x = jax.random.normal(jax.random.key(2), (4, d_in))
    params = zephyr.trace(nets.linear, jax.random.key(0), x, d_out)
    w, b = cast(Array, params["weights"]), cast(Array, params["bias"])

    from zephyr._nets._dtypes import add_trailing, cast as cast_to, compute_dtype

    def same_jnp(x: Array) -> Array:  # nets.linear's body as a plain function: no @flexible, no annotations
        weights = zephyr.validate(w, (x.shape[-1], d_out))
        compute = compute_dtype(None, x, weights)
        y = jnp.matmul(cast_to(x, compute), cast_to(weights, compute))
        return add_trailing(y, cast_to(zephyr.validate(b, (d_out,)), compute))

    def natural(x: Array) -> Array:  # what a JAX user writes
        return x @ w + b

    def checked_linear() -> Array:
        with checking(True):
            return nets.linear(params, x, d_out)

    t = per_call(
        {
            "zephyr": lambda: nets.linear(params, x, d_out),
            "same_jnp": lambda: same_jnp(x),
            "natural": lambda: natural(x),
            "zephyr_checking_on": checked_linear,
        },
        cfg.eager_number,
    )
    rows["linear_eager"] = {
        **t,
        "d_in": d_in,
        "d_out": d_out,
        "ratio_vs_same_jnp": t["zephyr"] / t["same_jnp"],
        "overhead_vs_same_jnp_us": (t["zephyr"] - t["same_jnp"]) * 1e6,
        "overhead_vs_natural_us": (t["zephyr"] - t["natural"]) * 1e6,
        "checking_on_extra_us": (t["zephyr_checking_on"] - t["zephyr"]) * 1e6,
    }
    log(f"linear eager {d_in}->{d_out}: zephyr {us(t['zephyr'])}, same jnp {us(t['same_jnp'])} "
        f"({t['zephyr'] / t['same_jnp']:.2f}x), natural "
        f"{us(t['natural'])}, checking on {us(t['zephyr_checking_on'])}")

    # Where the eager time of nets.linear goes (each piece on its own).
    y0 = jnp.matmul(x, w)
    parts = per_call(
        {
            "validate": lambda: zephyr.validate(w, (d_in, d_out)),
            "compute_dtype": lambda: compute_dtype(None, x, w),
            "astype_same_dtype": lambda: x.astype(jnp.float32),
            "broadcast_to": lambda: jnp.broadcast_to(b, (4, d_out)),
            "matmul": lambda: jnp.matmul(x, w),
            "add": lambda: y0 + b,
        },
        cfg.eager_number,
    )
    rows["linear_eager_parts_us"] = {name: t * 1e6 for name, t in parts.items()}
    log("linear eager parts: " + ", ".join(f"{name} {us(t)}" for name, t in parts.items()))

    # Under jit: one jitted function traced with checking off, one with it on.
    def linear_fn(p: Params, x: Array) -> Array:
        return nets.linear(p, x, d_out)

    first: dict[str, float] = {}
    jitted: dict[str, Callable[[], object]] = {}
    for name, on in (("off", False), ("on", True)):
        compiled_first: list[float] = []
        for _i in range(cfg.compile_reps):
            fn = jax.jit(lambda p, x: linear_fn(p, x))
            with checking(on):
                start = time.perf_counter()
                ready(fn(params, x))
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
