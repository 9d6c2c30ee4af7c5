"""Cross-cutting sweeps over every registered net (tests/nets/cases_*.py).

Each sweep runs twice: with run-time checking on (as the rest of the suite, see the root
conftest.py) and off (the default a user gets), so the unchecked path of every net is
covered too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.nets.registry import NetCase, all_cases
from zephyr import trace, trace_with_state
from zephyr.typing import checking

CASES = all_cases()


@pytest.fixture(params=[True, False], ids=["checked", "unchecked"])
def mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run the test body with run-time checking on, then off."""
    enabled: bool = request.param
    with checking(enabled):
        assert checking() is enabled
        yield enabled


def _build(case: NetCase, key: jax.Array) -> tuple[Any, Any, Any]:
    x = case.make_x(jax.random.fold_in(key, 1))
    if case.stateful:
        params, state = trace_with_state(case.apply, key, x)
        return params, state, x
    return trace(case.apply, key, x), None, x


def _call(case: NetCase, params: Any, state: Any, x: Any) -> Any:
    if case.stateful:
        y, _new_state = case.apply(params, state, x)
        return y
    return case.apply(params, x)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_jit_matches_eager(case: NetCase, key: jax.Array, mode: bool) -> None:
    params, state, x = _build(case, key)
    eager = _call(case, params, state, x)
    jitted = jax.jit(lambda p, s, x: _call(case, p, s, x))(params, state, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_trace_is_deterministic_and_params_are_plain(case: NetCase, key: jax.Array, mode: bool) -> None:
    first, _state, _x = _build(case, key)
    second, _, _ = _build(case, key)
    assert str(jax.tree.structure(first)) == str(jax.tree.structure(second))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)):
        assert isinstance(a, jax.Array)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_grad_is_finite(case: NetCase, key: jax.Array, mode: bool) -> None:
    params, state, x = _build(case, key)
    grads = jax.grad(lambda p: jnp.sum(_call(case, p, state, x).astype(jnp.float32)))(params)
    assert str(jax.tree.structure(grads)) == str(jax.tree.structure(params))  # nets without params: {}
    for leaf in jax.tree.leaves(grads):
        assert bool(jnp.all(jnp.isfinite(leaf)))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_vmap_over_a_new_batch_axis(case: NetCase, key: jax.Array, mode: bool) -> None:
    params, state, x = _build(case, key)
    xs = jax.tree.map(lambda a: jnp.stack([a, a]), x)
    ys = jax.vmap(lambda x: _call(case, params, state, x))(xs)
    single = _call(case, params, state, x)
    np.testing.assert_allclose(np.asarray(ys[0]), np.asarray(single), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bfloat16_inputs(case: NetCase, key: jax.Array, mode: bool) -> None:
    params, state, x = _build(case, key)
    x16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a, x)
    y = _call(case, params, state, x16)
    assert bool(jnp.all(jnp.isfinite(y.astype(jnp.float32))))

