"""The "first" section's what-if really switches replay off, and its user-loop GPT matches raw JAX's layout."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import zephyr._flexible as flexible_module
from zephyr import clear_trace_cache, nets, trace
from zephyr.functools.partial import flexible
from zephyr.typing import Params

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _first_trace_module() -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("_first_trace")


def test_replay_off_runs_every_block_and_restores_replay() -> None:
    first_trace = _first_trace_module()
    calls: list[int] = []

    @flexible
    def block(params: Params, x: Array) -> Array:
        calls.append(1)
        return nets.linear(params, x, x.shape[-1])

    def net(params: Params, x: Array) -> Array:
        for i in range(4):
            x = block(params[i], x)
        return x

    replay = vars(flexible_module)["call_during_trace"]  # zephyr._flexible's stub does not export it
    x = jnp.ones((2, 3))
    first_trace.first_trace_replay_off(net, jax.random.key(0), x)()
    assert len(calls) == 4
    assert vars(flexible_module)["call_during_trace"] is replay
    calls.clear()
    first_trace.first_trace(net, jax.random.key(0), x)()
    assert len(calls) == 1  # replayed: one block's forward
    clear_trace_cache()


def test_the_user_loop_gpt_has_raw_jaxs_layout() -> None:
    first_trace = _first_trace_module()
    pairs = importlib.import_module("_pairs")
    cfg = pairs.QUICK
    pair = first_trace.user_loop_pair(cfg, 3)
    assert pairs.same_shapes(pair.trace(), pair.init())
    params = trace(pair.apply_zephyr, jax.random.key(0), pair.x)
    assert sorted(params["transformer"]) == ["final_norm", "layers"] and sorted(params["transformer"]["layers"]) == [0, 1, 2]
    clear_trace_cache()


def test_the_plain_loop_gpt_has_the_user_loops_params() -> None:
    _first_trace_module()
    models = importlib.import_module("_models")
    x = jnp.zeros((2, 8), jnp.int32)
    user = trace(models.gpt_user_loop(50, 32, 2, 4), jax.random.key(0), x)
    plain = trace(models.gpt_plain_loop(50, 32, 2, 4), jax.random.key(0), x)
    assert str(jax.tree.structure(plain)) == str(jax.tree.structure(user))
    jax.tree.map(np.testing.assert_array_equal, plain, user)
