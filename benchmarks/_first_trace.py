# jax annotates its random and tree functions partially.
# pyright: reportUnknownMemberType=false, reportUnknownArgumentType=false, reportUnknownLambdaType=false
"""The "first" section: the first trace of a user's own deep model (issue 16).

The model is the benchmark's GPT with the blocks written by the user, a Python loop of
``nets.transformer_block`` (``_models.gpt_user_loop``). At every depth its first trace (the
trace cache cleared, so the forward runs: one block, the others replayed) is timed against

- zephyr's own ``initialize`` of the same specs, its programs compiled: what the trace
  costs without the forward, the floor of a first trace;
- raw JAX's hand-written init (``_raw.init_gpt``), in the same process;
- the what-if: the same first trace with replay switched off (every block's forward runs);
- the abstract run on its own (``collect_specs``, the cache cleared): the forward's share;
- at the deepest depth, Equinox's constructor of its own GPT (``_equinox.py``);
- the same GPT as a plain (not ``@flexible``) loop with the user's own attention glue
  (``_models.gpt_plain_loop``, the same specs): its first trace against the same
  ``initialize`` (issue 26: only the nets in it replay).

Then the seed model of ``examples/seed_model.py`` (batch 4, features 8): its first trace
with replay against without, and its abstract run alone with and without. All sides of a
figure are interleaved (``paired``). ``--quick`` checks the params' layout only (no applies
compiled) and leaves out Equinox and the seed model (fixed sizes, ~10 s of compiles).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import zephyr
import zephyr._flexible as flexible_module

import _models
from _memory import nbytes
from _pairs import JSON, Config, Pair, check_pair, clear_trace_cache, gpt_pair, same_shapes
from _report import log, ms
from _subprocess import has_equinox
from _timing import paired

SEED_BATCH, SEED_FEATURES = 4, 8
"""The seed model's sample input: ``(4, 8)``."""


def _run_every_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], run: Callable[[], Any]) -> Any:
    return run()


@contextmanager
def replay_off() -> Generator[None]:
    """Within: every ``@flexible`` call during trace runs its body (zephyr's replay switched off)."""
    saved = flexible_module.call_during_trace
    flexible_module.call_during_trace = _run_every_call
    try:
        yield
    finally:
        flexible_module.call_during_trace = saved


def first_trace(f: Callable[..., Any], key: jax.Array, *args: Any) -> Callable[[], Any]:
    """A first trace of ``f``: the trace cache cleared, so the forward runs."""
    return lambda: (clear_trace_cache(), zephyr.trace(f, key, *args))[1]


def first_trace_replay_off(f: Callable[..., Any], key: jax.Array, *args: Any) -> Callable[[], Any]:
    """The same first trace with every ``@flexible`` call run (no replay)."""

    def run() -> Any:
        with replay_off():
            clear_trace_cache()
            return zephyr.trace(f, key, *args)

    return run


def abstract_run(f: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """The first half of a first trace on its own: ``collect_specs`` with the cache cleared."""
    return lambda: (clear_trace_cache(), zephyr.collect_specs(f, args, {}))[1]


def user_loop_pair(cfg: Config, depth: int) -> Pair:
    """The GPT of ``depth`` blocks as a user's loop, against raw JAX's unrolled GPT."""
    key = jax.random.key(0)
    unrolled = gpt_pair(cfg, depth, scan=False)
    model = _models.gpt_user_loop(cfg.vocab, cfg.d_model, depth, cfg.heads)
    return Pair(
        f"gpt{depth}-user-loop",
        lambda: zephyr.trace(model, key, unrolled.x),
        unrolled.init,
        unrolled.init_threefry4x32,
        model,
        unrolled.apply_raw,
        unrolled.x,
        unrolled.labels,
    )


def section_first_trace(cfg: Config, out: JSON) -> None:
    """First trace of the user-loop GPT per depth and of the seed model, with and without replay."""
    key = jax.random.key(0)
    rows: JSON = {}
    for depth in cfg.depths:
        pair = user_loop_pair(cfg, depth)
        deep = depth >= 16
        model = pair.apply_zephyr
        if deep or cfg.quick:  # checking both applies compiles both programs (a deep one, or ~10 s quick): the layout only
            if not same_shapes(pair.trace(), pair.init()):
                raise AssertionError(f"{pair.name}: zephyr and raw params differ in layout")
            row: JSON = {"max_abs_diff": None}
        else:
            row = {"max_abs_diff": check_pair(pair)}
        clear_trace_cache()
        (specs,) = zephyr.collect_specs(model, (pair.x,), {})
        sides: dict[str, Callable[[], object]] = {
            "first_trace": first_trace(model, key, pair.x),
            "initialize": lambda specs=specs: zephyr.initialize(specs, key),
            "raw": pair.init,
            "replay_off": first_trace_replay_off(model, key, pair.x),
            "abstract_run": abstract_run(model, pair.x),
        }
        if depth == cfg.depths[-1] and not cfg.quick and has_equinox():  # quick: Equinox's eager init compiles ~5 s
            import _equinox  # the peer (equinox is in the dev extra)

            sides["equinox"] = lambda: _equinox.init_gpt(key, cfg.vocab, cfg.d_model, depth, cfg.seq, cfg.heads)
        plain = _models.gpt_plain_loop(cfg.vocab, cfg.d_model, depth, cfg.heads)
        if depth == cfg.depths[0] and not same_shapes(pair.trace(), zephyr.trace(plain, key, pair.x)):
            raise AssertionError(f"{pair.name}: the plain loop's params differ in layout")
        sides["plain_first_trace"] = first_trace(plain, key, pair.x)
        times = paired(sides, cfg.deep_reps if deep else cfg.reps)
        row.update(times)
        row["plain_vs_initialize"] = times["plain_first_trace"] / times["initialize"]
        row["depth"] = depth
        row["vs_initialize"] = times["first_trace"] / times["initialize"]
        row["vs_raw"] = times["first_trace"] / times["raw"]
        row["vs_replay_off"] = times["first_trace"] / times["replay_off"]
        row["replay_off_vs_raw"] = times["replay_off"] / times["raw"]
        if "equinox" in times:
            row["vs_equinox"] = times["first_trace"] / times["equinox"]
            row["equinox_vs_raw"] = times["equinox"] / times["raw"]
        rows[pair.name] = row
        log(f"first trace {pair.name}: " + ", ".join(f"{name} {ms(t)}" for name, t in times.items()))
    out["first_trace"] = rows
    if not cfg.quick:  # the seed model has no tiny shapes (~10 s of compiles); tests/test_replay.py checks its params
        section_seed_model(cfg, out)


def section_seed_model(cfg: Config, out: JSON) -> None:
    """The seed model's first trace with replay against without (and its abstract run alone)."""
    key = jax.random.key(0)
    seed = _models.seed_model()
    x = jnp.ones((SEED_BATCH, SEED_FEATURES))
    with replay_off():
        clear_trace_cache()
        every = zephyr.trace(seed, key, x)
    replayed = first_trace(seed, key, x)()
    same = same_shapes(replayed, every) and all(  # on the host: no compile per leaf shape
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(replayed), jax.tree.leaves(every), strict=True)
    )
    if not same:
        raise AssertionError("seed model: the params with replay differ from those without")

    def abstract_run_replay_off() -> object:
        with replay_off():
            return abstract_run(seed, x)()

    times = paired(
        {
            "first_trace": first_trace(seed, key, x),
            "replay_off": first_trace_replay_off(seed, key, x),
            "abstract_run": abstract_run(seed, x),
            "abstract_run_replay_off": abstract_run_replay_off,
        },
        cfg.reps,
    )
    out["first_trace_seed"] = {
        **times, "input_shape": [SEED_BATCH, SEED_FEATURES], "leaves": len(jax.tree.leaves(replayed)),
        "param_bytes": nbytes(replayed),
        "ratio": times["first_trace"] / times["replay_off"],
        "abstract_ratio": times["abstract_run"] / times["abstract_run_replay_off"],
    }
    log("first trace seed model: " + ", ".join(f"{name} {ms(t)}" for name, t in times.items()))
