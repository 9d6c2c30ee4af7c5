"""Affine nets against plain formulas on the same weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.utils import leaf, shapes
from zephyr import nets, trace
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking


def test_linear_is_x_at_weights_plus_bias(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 5))
    params = trace(nets.linear(_, _, 4), key, x)
    w, b = np.asarray(leaf(params, "weights")), np.asarray(leaf(params, "bias"))
    expected = np.einsum("abi,io->abo", np.asarray(x), w) + b
    np.testing.assert_allclose(nets.linear(params, x, 4), expected, rtol=1e-5, atol=1e-5)


def test_linear_without_bias_declares_no_bias(key: jax.Array) -> None:
    x = jnp.ones((2, 5))
    params = trace(nets.linear(_, _, 4, False), key, x)
    assert shapes(params) == {"weights": (5, 4)}
    np.testing.assert_allclose(nets.linear(params, x, 4, False), np.asarray(x) @ np.asarray(leaf(params, "weights")), rtol=1e-6)


def test_linear_initializers_and_param_dtype(key: jax.Array) -> None:
    x = jnp.ones((2, 5))
    net = nets.linear(_, _, 3, weights_initializer=jax.nn.initializers.ones, bias_initializer=jax.nn.initializers.ones, param_dtype=jnp.bfloat16)
    params = trace(net, key, x)
    assert leaf(params, "weights").dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(net(params, x)), np.full((2, 3), 6.0, np.float32))


def test_linear_computes_in_the_requested_dtype(key: jax.Array) -> None:
    x = jnp.ones((2, 5), jnp.bfloat16)
    params = trace(nets.linear(_, _, 3), key, x)
    assert nets.linear(params, x, 3).dtype == jnp.float32  # bf16 x, f32 params: f32
    assert nets.linear(params, x, 3, dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_linear_like_takes_its_size_from_the_reference(key: jax.Array) -> None:
    x, reference = jnp.ones((2, 5)), jnp.ones((9, 7))
    params = trace(nets.linear_like, key, x, reference)
    assert shapes(params) == {"bias": (7,), "weights": (5, 7)}


def test_branch_linear_is_a_reshaped_linear(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 4))
    params = trace(nets.branch_linear(_, _, 3), key, x)
    assert shapes(params) == {"bias": (12,), "weights": (4, 12)}
    flat = np.asarray(x) @ np.asarray(leaf(params, "weights")) + np.asarray(leaf(params, "bias"))
    np.testing.assert_allclose(nets.branch_linear(params, x, 3), flat.reshape(2, 3, 4), rtol=1e-5, atol=1e-6)


def test_mlp_is_linear_layers_with_activation_between(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 4))
    params = trace(nets.mlp(_, _, [8, 3]), key, x)
    h = np.maximum(np.asarray(x) @ np.asarray(leaf(params, 0, "weights")) + np.asarray(leaf(params, 0, "bias")), 0)
    y = h @ np.asarray(leaf(params, 1, "weights")) + np.asarray(leaf(params, 1, "bias"))
    np.testing.assert_allclose(nets.mlp(params, x, [8, 3]), y, rtol=1e-5, atol=1e-6)
    final = nets.mlp(params, x, [8, 3], jax.nn.relu, jnp.tanh)
    np.testing.assert_allclose(final, np.tanh(y), rtol=1e-5, atol=1e-6)



def test_mlp_layers_are_made_by_its_projections_part(key: jax.Array) -> None:
    x = jnp.ones((2, 4))
    part = nets.projections(use_bias=False, out_initializer=jax.nn.initializers.zeros)
    params = trace(nets.mlp(_, _, [8, 3], projections=part), key, x)
    assert shapes(params) == {0: {"weights": (4, 8)}, 1: {"weights": (8, 3)}}
    assert not np.asarray(leaf(params, 1, "weights")).any() and np.asarray(leaf(params, 0, "weights")).any()

def test_bad_inputs_name_the_argument(key: jax.Array) -> None:
    with checking(False):
        with pytest.raises(ValueError, match=r"`linear` argument `x`: expected at least 1 axes, got shape \(\)"):
            trace(nets.linear(_, _, 3), key, jnp.ones(()))
        with pytest.raises(ValueError, match=r"branch_linear: `num_branches` must be a positive int, got 0"):
            trace(nets.branch_linear(_, _, 0), key, jnp.ones((2, 4)))
        with pytest.raises(ValueError, match=r"mlp: `out_dims` must be a non-empty sequence of positive ints, got \[\]"):
            trace(nets.mlp(_, _, []), key, jnp.ones((2, 4)))
    params = trace(nets.linear(_, _, 3), key, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"`params\['weights'\]`.*expected shape \(5, 3\).*got \(4, 3\)"):
        nets.linear(params, jnp.ones((2, 5)), 3)
