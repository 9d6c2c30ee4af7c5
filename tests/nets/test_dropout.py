"""dropout and stochastic_depth: masks, scaling, identity cases, statistics, bad input."""

from __future__ import annotations

from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import nets, trace
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking


def test_dropout_is_inverted_dropout_with_the_keys_bernoulli_mask(key: jax.Array) -> None:
    x = jax.random.normal(key, (4, 50))
    y = nets.dropout({}, key, x, 0.3)
    # Reference: the same Bernoulli draw, written out.
    keep = np.asarray(jax.random.bernoulli(key, 0.7, x.shape))
    np.testing.assert_allclose(np.asarray(y), np.where(keep, np.asarray(x) / 0.7, 0.0), rtol=1e-6)


def test_dropout_statistics(key: jax.Array) -> None:
    y = nets.dropout({}, key, jnp.ones((20000,)), 0.25)
    dropped = float(jnp.mean(y == 0))
    assert abs(dropped - 0.25) < 0.02
    assert abs(float(jnp.mean(y)) - 1.0) < 0.03
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 4 / 3], rtol=1e-6)


def test_dropout_identity_cases(key: jax.Array) -> None:
    x = jax.random.normal(key, (3, 4))
    assert nets.dropout({}, key, x, 0.0) is x
    assert nets.dropout({}, key, x, 0.9, deterministic=True) is x
    np.testing.assert_array_equal(np.asarray(nets.dropout({}, key, x, 1.0)), 0.0)


def test_dropout_new_key_new_mask_and_jit(key: jax.Array) -> None:
    x = jnp.ones((100,))
    a = nets.dropout({}, key, x, 0.5)
    b = nets.dropout({}, jax.random.fold_in(key, 1), x, 0.5)
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    jitted = jax.jit(lambda k, x: nets.dropout({}, k, x, 0.5))(key, x)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(a))


def test_dropout_has_no_params(key: jax.Array) -> None:
    assert trace(nets.dropout(_, _, _, 0.1), key, key, jnp.ones((2, 3))) == {}


def test_stochastic_depth_drops_whole_samples(key: jax.Array) -> None:
    x = jax.random.normal(key, (64, 3, 4))
    y = nets.stochastic_depth({}, key, x, 0.5)
    keep = np.asarray(jax.random.bernoulli(key, 0.5, (64, 1, 1)))
    np.testing.assert_allclose(np.asarray(y), np.where(keep, np.asarray(x) / 0.5, 0.0), rtol=1e-6)
    per_sample = np.asarray(jnp.all(y == 0, axis=(1, 2)))
    assert 10 < per_sample.sum() < 54
    assert nets.stochastic_depth({}, key, x, 0.5, deterministic=True) is x


def test_bad_inputs(key: jax.Array) -> None:
    x = jnp.ones((2, 3))
    for rate in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"dropout: `rate` must be a number in \[0, 1\], got"):
            nets.dropout({}, key, x, rate)
    with pytest.raises(ValueError, match=r"stochastic_depth: `rate` must be a number in \[0, 1\], got 2.0"):
        nets.stochastic_depth({}, key, x, 2.0)
    with checking(False):  # with checking on, the annotations reject these first
        with pytest.raises(TypeError, match=r"dropout: `key` must be a JAX random key"):
            nets.dropout({}, jnp.ones(3), x, 0.5)
        with pytest.raises(ValueError, match=r"stochastic_depth: `x` must have a batch axis, got shape \(\)"):
            nets.stochastic_depth({}, key, jnp.ones(()), 0.5)
        with pytest.raises(TypeError, match=r"stochastic_depth: `deterministic` must be True or False, got 'yes'"):
            nets.stochastic_depth({}, key, x, 0.5, deterministic=cast(bool, "yes"))  # the error under test
    with pytest.raises(TypeError, match=r"stochastic_depth"):
        nets.stochastic_depth({}, key, jnp.ones(()), 0.5)
