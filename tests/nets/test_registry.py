"""Cross-cutting sweeps over every registered net (tests/nets/cases_*.py): a second trace
draws the same params, jit equals eager, gradients are finite, vmap over a new batch axis
equals the single call, bfloat16 inputs give finite outputs. One test per net and mode shares
one trace among the five (it was five tests per net and mode, with six traces).

Each sweep runs twice: with run-time checking on (as the rest of the suite, see the root
conftest.py) and off (the default a user gets), so the unchecked path of every net is
covered too; the unchecked half in the newest environment only (``once``).
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


@pytest.fixture(params=[True, pytest.param(False, marks=pytest.mark.once)], ids=["checked", "unchecked"])
def mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run the test body with run-time checking on, then off.

    Checking off runs in the newest environment only (``once``, see the root conftest.py): the
    nets' math is the same in both modes, so the checked sweep covers it on the oldest JAX too.
    """
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
def test_a_net_traces_the_same_twice_and_runs_under_jit_grad_vmap_and_bfloat16(
    case: NetCase, key: jax.Array, mode: bool
) -> None:
    """One trace per net and mode, shared by the five properties (each names itself when it fails)."""
    params, state, x = _build(case, key)

    again, _, _ = _build(case, key)
    assert str(jax.tree.structure(again)) == str(jax.tree.structure(params)), "a second trace differs"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        assert isinstance(a, jax.Array), f"params hold a {type(a).__name__}, not a jax.Array"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg="a second trace draws other params")

    eager = _call(case, params, state, x)
    jitted = jax.jit(lambda p, s, x: _call(case, p, s, x))(params, state, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5, err_msg="jit != eager")

    # grad, vmap and bfloat16 under jit: one program each, where eagerly every operation
    # compiles a program of its own (most of the sweep's time); jit != eager is checked above.
    grads = jax.jit(jax.grad(lambda p: jnp.sum(_call(case, p, state, x).astype(jnp.float32))))(params)
    assert str(jax.tree.structure(grads)) == str(jax.tree.structure(params))  # nets without params: {}
    for leaf in jax.tree.leaves(grads):
        assert bool(jnp.all(jnp.isfinite(leaf))), "a gradient is not finite"

    xs = jax.tree.map(lambda a: jnp.stack([a, a]), x)
    ys = jax.jit(jax.vmap(lambda x: _call(case, params, state, x)))(xs)
    np.testing.assert_allclose(np.asarray(ys[0]), np.asarray(eager), rtol=1e-5, atol=1e-5, err_msg="vmap != eager")

    x16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a, x)
    y16 = jax.jit(lambda x: _call(case, params, state, x))(x16)
    assert bool(jnp.all(jnp.isfinite(y16.astype(jnp.float32)))), "bfloat16 inputs give non-finite outputs"
