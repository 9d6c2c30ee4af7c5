"""validate: declares during trace, checks afterwards, names what is wrong and where."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import pytest

from zephyr import collect_specs, nets, trace, validate
from tests.utils import leaf
from zephyr.typing import Params


def affine(params: Params, x: jax.Array, out: int) -> jax.Array:
    w = validate(params["weights"], (x.shape[-1], out))
    b = validate(params["bias"], (out,))
    return x @ w + b[None]


def test_returns_its_first_argument_on_real_arrays() -> None:
    w = jnp.ones((3, 2))
    assert validate(w, (3, 2)) is w


def test_a_wrong_shape_at_apply_time_names_the_parameter_and_both_shapes(key: jax.Array) -> None:
    params = trace(affine, key, jnp.ones((4, 3)), 2)
    with pytest.raises(
        ValueError,
        match=r"`params\['weights'\]` \(in `affine`, .*test_validate.py:\d+\): expected shape \(5, 2\), got \(3, 2\)",
    ):
        affine(params, jnp.ones((4, 5)), 2)


def test_a_wrong_shape_under_jit_is_caught_while_jit_traces(key: jax.Array) -> None:
    params = trace(affine, key, jnp.ones((4, 3)), 2)
    with pytest.raises(ValueError, match=r"`params\['bias'\]`.*expected shape \(3,\), got \(2,\)"):
        jax.jit(affine, static_argnums=2)({"weights": jnp.ones((3, 3)), "bias": params["bias"]}, jnp.ones((4, 3)), 3)


def test_a_library_net_names_its_parameter_on_bad_params(key: jax.Array) -> None:
    params = trace(nets.linear, key, jnp.ones((2, 4)), 3)
    with pytest.raises(ValueError, match=r"`params\['weights'\]`.*expected shape \(6, 3\).*got \(4, 3\)"):
        nets.linear(params, jnp.ones((2, 6)), 3)


def test_a_wrong_dtype_is_reported_when_asked_for() -> None:
    with pytest.raises(ValueError, match=r"expected dtype bfloat16, got float32"):
        validate(jnp.ones(2), (2,), dtype=jnp.bfloat16)


def test_a_non_array_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"validate: expected an array or `params\[...\]`, got str"):
        validate("w", (2,))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the error under test


def test_a_bad_shape_spec_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"`shape` must be a tuple of ints, a dim string"):
        validate(jnp.ones(2), 3.5)


def test_dtype_and_tags_are_declared(key: jax.Array) -> None:
    def net(params: Params, x: jax.Array) -> jax.Array:
        validate(params["w"], (2,), dtype=jnp.bfloat16, tags=("decay", "matrix"))
        return x

    params = trace(net, key, jnp.ones(2))
    assert leaf(params, "w").dtype == jnp.bfloat16
    (specs,) = collect_specs(net, (jnp.ones(2),), {})
    assert specs[("w",)].tags == ("decay", "matrix")


def test_declared_stand_in_validated_again_with_another_shape_names_the_path(key: jax.Array) -> None:
    def net(params: Params, x: jax.Array) -> jax.Array:
        validate(params["w"], (2,))
        return validate(params["w"], (3,))

    with pytest.raises(ValueError, match=r"`params\['w'\]`: declared twice with different shapes"):
        trace(net, key, jnp.ones(2))


def test_a_float_size_during_trace_names_the_parameter_path(key: jax.Array) -> None:
    def halved(params: Params, x: jax.Array) -> jax.Array:
        return validate(params["encoder"]["w"], (x.shape[-1], x.shape[-1] / 2))

    expected = (
        r"validate of `params\['encoder'\]\['w'\]`: `shape` must be a tuple of ints, got \(4, 2.0\) "
        r"\(item 1 is float 2.0; sizes computed with / are floats: use //\)"
    )
    with pytest.raises(TypeError, match=expected):
        trace(halved, key, jnp.ones((2, 4)))


def test_a_float_size_at_apply_time_names_the_argument() -> None:
    weights = jnp.ones((4, 2))
    with pytest.raises(TypeError, match=r"validate of .*`weights`.*: `shape` must be a tuple of ints, got \[4, 2.5\] \(item 1 is float 2.5"):
        validate(weights, [4, 2.5])


def test_a_size_of_another_type_is_named_with_its_index(key: jax.Array) -> None:
    with pytest.raises(TypeError, match=r"validate of `params\['w'\]`: `shape` must be a tuple of ints, got \(3, '2'\) \(item 1 is str '2'"):
        trace(_string_size, key, jnp.ones(2))


def _string_size(params: Params, x: jax.Array) -> jax.Array:
    size: Any = "2"
    return validate(params["w"], (3, size))
