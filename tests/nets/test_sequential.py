"""sequential: layer i gets params[i]; equals chain(thread_params(...)); activations re-exported."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import nets, trace
from zephyr.functools.composition import chain, thread_params
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking


def test_sequential_matches_explicit_calls(key: jax.Array) -> None:
    layers = [nets.linear(_, _, 8), lambda p, x: nets.gelu(x), nets.layer_norm(_, _), nets.linear(_, _, 3)]
    x = jax.random.normal(key, (2, 5))
    params: Any = trace(nets.sequential(_, _, layers), key, x)
    assert sorted(params) == [0, 2, 3]
    assert jax.tree.map(jnp.shape, params[0]) == {"bias": (8,), "weights": (5, 8)}
    y = nets.sequential(params, x, layers)
    h = nets.linear(params[0], x, 8)
    h = jax.nn.gelu(h)
    h = nets.layer_norm(params[2], h)
    expected = nets.linear(params[3], h, 3)
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), rtol=1e-6)
    composed = chain(thread_params(layers, {**params, 1: {}}))(x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(composed), rtol=1e-6)


def test_sequential_empty_is_identity() -> None:
    x = jnp.ones(3)
    assert nets.sequential({}, x, []) is x


def test_activations_are_jax_nn() -> None:
    x = jnp.linspace(-2.0, 2.0, 5)
    for name in ("relu", "gelu", "silu", "tanh", "sigmoid", "softmax"):
        np.testing.assert_allclose(np.asarray(getattr(nets, name)(x)), np.asarray(getattr(jax.nn, name)(x)))


def test_bad_layer() -> None:
    with pytest.raises(TypeError, match=r"layers"):  # checking on: the annotation rejects it
        nets.sequential({}, jnp.ones(3), [lambda p, x: x, 3])  # type: ignore[list-item]  # not a function on purpose
    with checking(False), pytest.raises(TypeError, match=r"sequential: `layers\[1\]` is int, not a function"):
        nets.sequential({}, jnp.ones(3), [lambda p, x: x, 3])  # type: ignore[list-item]  # not a function on purpose
