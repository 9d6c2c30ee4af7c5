"""``stack(f, n, scan=False)``: an unrolled loop of identical blocks, traced as one block."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import Array

from zephyr import nets, stack, trace
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params


@flexible
def block(params: Params, x: Array, hidden: int) -> Array:
    h = nets.linear(params["up"], x, hidden)
    return x + nets.linear(params["down"], jax.nn.gelu(h), x.shape[-1])


def test_unrolled_stack_equals_the_python_loop_leaf_for_leaf(key: Array) -> None:
    x = jnp.ones((2, 4))

    def loop(params: Params, x: Array) -> Array:
        for i in range(5):
            x = block(params[i], x, 8)
        return x

    looped = trace(loop, key, x)
    unrolled = stack(block(_, _, 8), 5, scan=False)
    params = trace(unrolled, key, x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, looped)
    jax.tree.map(np.testing.assert_array_equal, params, looped)
    np.testing.assert_allclose(unrolled(params, x), loop(looped, x), rtol=1e-6)


def test_unrolled_stack_traces_one_block_whatever_the_depth(key: Array) -> None:
    calls = []

    @flexible
    def counted(params: Params, x: Array) -> Array:
        calls.append(1)
        return nets.linear(params, x, x.shape[-1])

    params = trace(stack(counted, 12, scan=False), key, jnp.ones((2, 3)))
    assert len(calls) == 1 and sorted(params) == list(range(12))


def test_unrolled_stack_with_keys_gives_each_layer_its_own_key(key: Array) -> None:
    def noisy(params: Params, layer_key: Array, x: Array) -> Array:
        return nets.linear(params, x, 3) + jax.random.normal(layer_key, x.shape)

    deep = stack(noisy, 3, with_key=True, scan=False)
    params = trace(deep, key, jax.random.key(1), jnp.ones((2, 3)))
    keys = jax.random.split(jax.random.key(1), 3)
    expected = jnp.ones((2, 3))
    for i in range(3):
        expected = noisy(params[i], keys[i], expected)
    np.testing.assert_allclose(deep(params, jax.random.key(1), jnp.ones((2, 3))), expected, rtol=1e-6)


def test_an_unrolled_layer_that_changes_the_shape_is_named(key: Array) -> None:
    with pytest.raises(ValueError, match=r"stack\(linear, 2, scan=False\): each layer must map x to the same shape"):
        trace(stack(nets.linear(_, _, 3), 2, scan=False), key, jnp.ones((2, 4)))


def test_layers_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match=r"stack: `layers` must be a positive int, got 0"):
        stack(nets.relu, 0)  # type: ignore[arg-type]  # not a (params, x) net: the layers check comes first


@pytest.mark.parametrize("scan", [True, False])
def test_a_stacked_layer_keeps_the_initializer_its_body_validates_with(key: Array, scan: bool) -> None:
    # nets.linear declares `weights` by its signature (default initializer), then its body
    # validates it again with the given one: the layer traced alone must see that refinement.
    half = jax.nn.initializers.constant(0.5)
    params = trace(stack(nets.linear(_, _, 4, weights_initializer=half, bias_initializer=half), 3, scan=scan), key, jnp.ones((2, 4)))
    for leaf in jax.tree.leaves(params):
        np.testing.assert_array_equal(leaf, np.full(leaf.shape, 0.5, np.float32))
