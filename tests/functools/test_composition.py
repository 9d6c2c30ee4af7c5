"""Composition: chain, skip, thread and its variants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zephyr.functools.composition import chain, skip, thread, thread_identity, thread_key, thread_params


def test_chain_applies_left_to_right() -> None:
    assert chain([lambda x: x + 1, lambda x: x * 10])(jnp.ones(1)).tolist() == [20.0]
    assert chain([]) (jnp.ones(1)).tolist() == [1.0]


def test_chain_rejects_a_non_function() -> None:
    with pytest.raises(TypeError, match=r"chain: element 1 is int, not a function"):
        chain([abs, 3])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]  # the error under test


def test_skip_adds_the_input() -> None:
    np.testing.assert_array_equal(skip(lambda x: 2 * x)(jnp.ones(3)), 3 * np.ones(3))


def test_skip_needs_the_same_shape() -> None:
    with pytest.raises(ValueError, match=r"skip: the wrapped function maps shape \(3,\) to \(2,\)"):
        skip(lambda x: x[:2])(jnp.ones(3))


def test_thread_params_hands_each_function_its_own_flat_subtree() -> None:
    tree = {i: jnp.full((1,), float(i)) for i in range(3)}
    seen = [f(10.0) for f in thread_params([lambda p, x: float(p[0]) + x] * 3, tree)]
    assert seen == [10.0, 11.0, 12.0]


def test_thread_key_hands_each_function_its_own_split_key(key: jax.Array) -> None:
    keys = [f(None) for f in thread_key([lambda k, x: k] * 3, key)]
    expected = jax.random.split(key, 3)
    for i, k in enumerate(keys):
        np.testing.assert_array_equal(jax.random.key_data(k), jax.random.key_data(expected[i]))


def test_thread_identity_and_thread() -> None:
    assert [f(1) for f in thread_identity([lambda v, x: v + x] * 2, 10)] == [11, 11]
    shares = thread([lambda v, x: v * x] * 3, 2, lambda v, n: [v + i for i in range(n)])
    assert [f(10) for f in shares] == [20, 30, 40]
    with pytest.raises(ValueError, match=r"split_rule gave 1 shares for 2 functions"):
        thread([lambda v, x: x] * 2, 0, lambda v, n: [v])
