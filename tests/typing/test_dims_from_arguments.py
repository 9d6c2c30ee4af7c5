"""Dim strings in ``validate`` bind from the arguments of the running @flexible call."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import Array
from jaxtyping import Float

from zephyr import nets, trace, validate
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params


@flexible
def rebinding(params: Params, x: Float[Array, "*batch d_in"], out_dim: int) -> Array:
    x = jnp.concatenate([x, x], axis=-1)  # a new local `x`, twice as wide
    w = validate(params["w"], "d_in out_dim")  # d_in is the argument's width, not the local's
    return x[..., : w.shape[0]] @ w


def test_dims_bind_from_the_call_arguments_not_the_current_locals(key: Array) -> None:
    params = trace(rebinding, key, jnp.ones((2, 3)), 4)
    assert jax.tree.map(jnp.shape, params) == {"w": (3, 4)}
    assert rebinding(params, jnp.ones((2, 3)), 4).shape == (2, 4)


def test_dims_bind_in_a_closure_and_a_lambda_inside_a_flexible_net(key: Array) -> None:
    @flexible
    def outer(params: Params, x: Float[Array, "b d_in"], out_dim: int) -> Array:
        def project(p: Params, h: Array) -> Array:  # a closure, not @flexible itself
            return h @ validate(p["w"], "d_in out_dim")

        bias = (lambda p: validate(p["b"], "out_dim"))(params)
        return project(params, x) + bias[None]

    params = trace(outer, key, jnp.ones((2, 5)), 3)
    assert jax.tree.map(jnp.shape, params) == {"b": (3,), "w": (5, 3)}


def test_dims_bind_from_the_innermost_flexible_call(key: Array) -> None:
    @flexible
    def inner(params: Params, h: Float[Array, "b width"]) -> Array:
        return h * validate(params["scale"], "width")[None]

    @flexible
    def outer(params: Params, x: Float[Array, "b d_in"], width: int) -> Array:
        h = nets.linear(params["proj"], x, width)
        return inner(params["inner"], h) @ validate(params["out"], "width d_in")

    params = trace(outer, key, jnp.ones((2, 5)), 7)
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes["inner"] == {"scale": (7,)} and shapes["out"] == (7, 5)


def test_a_dim_string_outside_a_flexible_function_says_to_use_flexible_or_a_tuple(key: Array) -> None:
    def plain(params: Params, x: Array) -> Array:
        return x @ validate(params["w"], "d_in out")

    with pytest.raises(TypeError, match=r"no @flexible function is running\. Make the function @flexible, or\ngive a tuple of ints"):
        trace(plain, key, jnp.ones((2, 3)))


def test_a_holed_call_binds_from_its_filled_arguments(key: Array) -> None:
    @flexible
    def dense(params: Params, x: Float[Array, "*b d_in"], out_dim: int) -> Array:
        return x @ validate(params["w"], "d_in out_dim")

    params = trace(dense(_, _, 6), key, jnp.ones((4, 2)))
    assert jax.tree.map(jnp.shape, params) == {"w": (2, 6)}
    assert dense(_, _, out_dim=6)(params, jnp.ones((4, 2))).shape == (4, 6)
