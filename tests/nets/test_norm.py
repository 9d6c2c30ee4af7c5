"""layer_norm, rms_norm, group_norm and batch_norm against their formulas."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed
import pytest

from zephyr import nets, trace, trace_with_state
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking


def _random_params(params: Any, key: jax.Array) -> Any:
    """Non-trivial scale and offset, so the reference checks them too."""
    return {k: jax.random.normal(jax.random.fold_in(key, i), v.shape) for i, (k, v) in enumerate(sorted(params.items()))}


def test_layer_norm_matches_formula(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 5))
    params = _random_params(trace(nets.layer_norm, key, x), key)
    assert params["scale"].shape == (5,) and params["offset"].shape == (5,)
    y = nets.layer_norm(params, x)
    xn = np.asarray(x, np.float64)
    mean = xn.mean(-1, keepdims=True)
    var = xn.var(-1, keepdims=True)
    expected = (xn - mean) / np.sqrt(var + 1e-5) * np.asarray(params["scale"]) + np.asarray(params["offset"])
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_several_axes(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 4))
    params = _random_params(trace(nets.layer_norm(_, _, (0, -1)), key, x), key)
    assert params["scale"].shape == (2, 4)
    y = nets.layer_norm(params, x, (0, -1))
    xn = np.asarray(x, np.float64)
    mean = xn.mean((0, 2), keepdims=True)
    var = xn.var((0, 2), keepdims=True)
    scale = np.asarray(params["scale"])[:, None, :]
    offset = np.asarray(params["offset"])[:, None, :]
    np.testing.assert_allclose(np.asarray(y), (xn - mean) / np.sqrt(var + 1e-5) * scale + offset, rtol=1e-5, atol=1e-5)


def test_layer_norm_without_params(key: jax.Array) -> None:
    x = jax.random.normal(key, (3, 4))
    params = trace(nets.layer_norm(_, _, scale_initializer=None, offset_initializer=None), key, x)
    assert params == {}
    y = nets.layer_norm(params, x, scale_initializer=None, offset_initializer=None)
    np.testing.assert_allclose(np.asarray(y.mean(-1)), 0.0, atol=1e-6)



def test_an_initializer_of_none_leaves_its_param_out(key: jax.Array) -> None:
    x = jax.random.normal(key, (4, 3))
    assert trace(nets.rms_norm(_, _, scale_initializer=None), key, x) == {}
    no_offset = nets.batch_norm(_, _, _, True, offset_initializer=None)
    params, state = trace_with_state(no_offset, key, x)
    assert sorted(params) == ["scale"] and sorted(state) == ["mean", "var"]
    y, _state = nets.batch_norm(params, state, x, True, offset_initializer=None)
    np.testing.assert_allclose(np.asarray(y.mean(0)), 0.0, atol=1e-5)

def test_layer_norm_bfloat16_keeps_dtype_with_bf16_params(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 8)).astype(jnp.bfloat16)
    params: Any = trace(nets.layer_norm(_, _, param_dtype=jnp.bfloat16), key, x)
    assert params["scale"].dtype == jnp.bfloat16
    assert nets.layer_norm(params, x, param_dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_rms_norm_matches_formula(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 6))
    params = _random_params(trace(nets.rms_norm, key, x), key)
    assert jax.tree.map(jnp.shape, params) == {"scale": (6,)}
    xn = np.asarray(x, np.float64)
    expected = xn / np.sqrt((xn**2).mean(-1, keepdims=True) + 1e-5) * np.asarray(params["scale"])
    np.testing.assert_allclose(np.asarray(nets.rms_norm(params, x)), expected, rtol=1e-5, atol=1e-5)


def test_group_norm_matches_formula(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 3, 6))
    params = _random_params(trace(nets.group_norm(_, _, 3), key, x), key)
    assert jax.tree.map(jnp.shape, params) == {"offset": (6,), "scale": (6,)}
    y = nets.group_norm(params, x, 3)
    xn = np.asarray(x, np.float64)
    expected = np.empty_like(xn)
    for n in range(2):
        for g in range(3):
            block = xn[n, :, :, 2 * g : 2 * g + 2]
            expected[n, :, :, 2 * g : 2 * g + 2] = (block - block.mean()) / np.sqrt(block.var() + 1e-5)
    expected = expected * np.asarray(params["scale"]) + np.asarray(params["offset"])
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_group_norm_with_one_group_is_layer_norm_over_all_but_batch(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 4, 3))
    gn = nets.group_norm({}, x, 1, scale_initializer=None, offset_initializer=None)
    ln = nets.layer_norm({}, x, (1, 2), scale_initializer=None, offset_initializer=None)
    np.testing.assert_allclose(np.asarray(gn), np.asarray(ln), rtol=1e-5, atol=1e-5)


def _ema_reference(xs: list[np.ndarray], momentum: float) -> tuple[np.ndarray, np.ndarray]:
    mean, var = np.zeros(xs[0].shape[-1]), np.ones(xs[0].shape[-1])
    for x in xs:
        mean = momentum * mean + (1 - momentum) * x.mean(0)
        var = momentum * var + (1 - momentum) * x.var(0)
    return mean, var


def test_batch_norm_running_statistics_follow_their_definition(key: jax.Array) -> None:
    xs = [jax.random.normal(jax.random.fold_in(key, i), (8, 3)) * (i + 1) + i for i in range(4)]
    params, state = trace_with_state(nets.batch_norm(_, _, _, True, momentum=0.9), key, xs[0])
    assert jax.tree.map(jnp.shape, state) == {"mean": (3,), "var": (3,)}
    assert jax.tree.map(jnp.shape, params) == {"offset": (3,), "scale": (3,)}
    np.testing.assert_array_equal(np.asarray(state["mean"]), 0.0)
    np.testing.assert_array_equal(np.asarray(state["var"]), 1.0)
    for x in xs:
        y, state = nets.batch_norm(params, state, x, True, momentum=0.9)
        xn = np.asarray(x, np.float64)
        np.testing.assert_allclose(np.asarray(y), (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5), rtol=1e-4, atol=1e-4)
    mean, var = _ema_reference([np.asarray(x, np.float64) for x in xs], 0.9)
    np.testing.assert_allclose(np.asarray(state["mean"]), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(state["var"]), var, rtol=1e-5, atol=1e-5)


def test_batch_norm_eval_uses_running_statistics_and_keeps_state(key: jax.Array) -> None:
    x = jax.random.normal(key, (5, 2, 3))
    params, _state = trace_with_state(nets.batch_norm(_, _, _, False), key, x)
    state = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
    y, new_state = nets.batch_norm(params, state, x, False)
    xn = np.asarray(x, np.float64)
    expected = (xn - np.array([1.0, 2.0, 3.0])) / np.sqrt(np.array([4.0, 1.0, 0.25]) + 1e-5)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
    assert new_state is not state
    np.testing.assert_array_equal(np.asarray(new_state["mean"]), np.asarray(state["mean"]))


def test_batch_norm_feature_axis_other_than_last(key: jax.Array) -> None:
    x = jax.random.normal(key, (4, 3, 5))
    params, state_tree = trace_with_state(nets.batch_norm(_, _, _, True, axis=1), key, x)
    state: Any = state_tree
    assert state["mean"].shape == (3,)
    _y, new_state = nets.batch_norm(params, state, x, True, axis=1)
    expected = 0.01 * np.asarray(x, np.float64).mean((0, 2))
    np.testing.assert_allclose(np.asarray(new_state["mean"]), expected, rtol=1e-5, atol=1e-6)


def test_batch_norm_trains_with_optax(key: jax.Array) -> None:
    """A small classifier with batch norm: the loss falls and the state moves, under jit."""

    def model(params: Any, state: Any, x: jax.Array, is_training: bool) -> tuple[jax.Array, Any]:
        h = nets.linear(params["in"], x, 8)
        h, bn_state = nets.batch_norm(params["bn"], state["bn"], h, is_training)
        return nets.linear(params["out"], jax.nn.relu(h), 1), {"bn": bn_state}

    x = jax.random.normal(key, (32, 4))
    target = (x[:, :1] > 0).astype(jnp.float32)
    params, state = trace_with_state(model, key, x, True)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params: Any, state: Any) -> tuple[jax.Array, Any]:
        logits, new_state = model(params, state, x, True)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target)), new_state

    @jax.jit
    def step(params: Any, state: Any, opt_state: Any) -> tuple[Any, Any, Any, jax.Array]:
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    losses: list[float] = []
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with floats
        for _step in range(60):
            params, state, opt_state, loss = step(params, state, opt_state)
            losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert not np.allclose(np.asarray(state["bn"]["mean"]), 0.0)
    eval_logits, eval_state = model(params, state, x, False)
    assert eval_logits.shape == (32, 1)
    np.testing.assert_array_equal(np.asarray(eval_state["bn"]["var"]), np.asarray(state["bn"]["var"]))


def test_bad_inputs() -> None:
    with checking(False):  # with checking on, the annotations reject a wrong rank first
        _bad_inputs()
    with pytest.raises(TypeError, match=r"group_norm"):
        nets.group_norm({}, jnp.ones((6,)), 2)


def _bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"layer_norm: `x` must have at least one axis, got shape \(\)"):
        nets.layer_norm({}, jnp.ones(()), scale_initializer=None, offset_initializer=None)
    with pytest.raises(ValueError, match=r"layer_norm: `axis` 2 is out of range for `x` of rank 2"):
        nets.layer_norm({}, jnp.ones((2, 3)), 2, scale_initializer=None, offset_initializer=None)
    with pytest.raises(ValueError, match=r"layer_norm: `axis` names an axis twice"):
        nets.layer_norm({}, jnp.ones((2, 3)), (1, -1), scale_initializer=None, offset_initializer=None)
    with pytest.raises(ValueError, match=r"group_norm: `num_groups` must divide the 6 channels of `x`, got 4"):
        nets.group_norm({}, jnp.ones((2, 6)), 4)
    with pytest.raises(ValueError, match=r"group_norm: `x` must have at least 2 axes"):
        nets.group_norm({}, jnp.ones((6,)), 2)
    with pytest.raises(ValueError, match=r"batch_norm: `x` must have at least 2 axes"):
        nets.batch_norm({}, {"mean": jnp.zeros(3), "var": jnp.ones(3)}, jnp.ones((3,)), True)
    with pytest.raises(ValueError, match=r"batch_norm: `momentum` must be in \[0, 1\], got 1.5"):
        nets.batch_norm({}, {"mean": jnp.zeros(3), "var": jnp.ones(3)}, jnp.ones((2, 3)), True, momentum=1.5)


def test_wrong_param_shape_names_the_path(key: jax.Array) -> None:
    x = jnp.ones((2, 5))
    params = trace(nets.layer_norm, key, x)
    with pytest.raises(ValueError, match=r"scale"):
        nets.layer_norm(params, jnp.ones((2, 4)))
    _params, state = trace_with_state(nets.batch_norm(_, _, _, True), key, x)
    with pytest.raises(ValueError, match=r"mean"):
        nets.batch_norm(params, state, jnp.ones((2, 4)), True)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm", "group_norm"])
def test_norms_broadcast_statistics_and_params_with_size_1_axes(name: str) -> None:
    # keepdims, as raw JAX writes a norm: no full-size copy of a statistic or a param for a
    # scan's backward to save (the LLaMA train step's temporaries: benchmarks/README.md).
    x = jnp.ones((2, 3, 8))
    net = getattr(nets, name)
    args = (2,) if name == "group_norm" else ()
    params = trace(lambda p, x: net(p, x, *args), jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(lambda p, x: net(p, x, *args))(params, x)
    broadcasts = [getattr(eqn.outvars[0].aval, "shape") for eqn in jaxpr.jaxpr.eqns if eqn.primitive.name == "broadcast_in_dim"]
    assert broadcasts and all(math.prod(shape) < math.prod(x.shape) for shape in broadcasts), broadcasts
