"""Shapes by signature: a params TypedDict declares the leaves; the call form agrees."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Annotated, NotRequired, Required, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import Array
from jaxtyping import Float, Int

from zephyr import trace, validate
from jax.nn.initializers import ones
from zephyr.functools.partial import flexible
from zephyr.typing import Params, params_layout
from zephyr.typing._dims import call_arguments


class LinearParams(TypedDict):
    weights: Float[Array, "d_in out_dim"]
    bias: Float[Array, " out_dim"]


@flexible
def typed_linear(params: LinearParams, x: Float[Array, "*batch d_in"], out_dim: int) -> Float[Array, "*batch out_dim"]:
    return x @ params["weights"] + params["bias"][None]


@flexible
def called_linear(params: Params, x: Array, out_dim: int) -> Array:
    w = validate(params["weights"], (x.shape[-1], out_dim))
    b = validate(params["bias"], (out_dim,))
    return x @ w + b[None]


def test_the_signature_alone_declares_the_leaves(key: Array) -> None:
    params = trace(typed_linear, key, jnp.ones((2, 5)), 3)
    assert jax.tree.map(jnp.shape, params) == {"bias": (3,), "weights": (5, 3)}


def test_signature_form_and_call_form_give_the_same_params(key: Array) -> None:
    x = jnp.ones((2, 5))
    by_signature = trace(typed_linear, key, x, 3)
    by_call = trace(called_linear, key, x, 3)
    for a, b in zip(jax.tree.leaves(by_signature), jax.tree.leaves(by_call)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(typed_linear(by_signature, x, 3), called_linear(by_call, x, 3))


class BlockParams(TypedDict):
    up: Annotated[Float[Array, "d d*4"], jax.nn.initializers.ones, "decay"]
    down: Float[Array, "d*4 d"]
    heads: Float[Array, "heads d_head"]
    scale: Annotated[Float[Array, " d"], ones, ("norm", "no_decay")]
    proj: LinearParams
    steps: Int[Array, ""]


@flexible
def block(params: BlockParams, x: Float[Array, "b d"], heads: int, d_head: int, out_dim: int) -> Array:
    h = (x @ params["up"]) @ params["down"] * params["scale"][None]
    return typed_linear(params["proj"], h, out_dim)


class _TotalBase(TypedDict):
    weights: Float[Array, "d_in out_dim"]


class _PartialParams(_TotalBase, total=False):
    bias: Float[Array, " out_dim"]  # not required: left to the body
    scale: Required[Float[Array, " out_dim"]]
    shift: NotRequired[Float[Array, " out_dim"]]


@flexible
def partly_required(params: _PartialParams, x: Float[Array, "*batch d_in"], out_dim: int) -> Float[Array, "*batch out_dim"]:
    return x @ params["weights"] * params["scale"][None]


def test_required_fields_are_read_from_the_hint_and_the_declaring_class(key: Array) -> None:
    # `weights` is required by its total base, `scale` by Required[...] (a string annotation
    # here, which __required_keys__ misses); the leaves and the checked keys agree.
    layout = params_layout(partly_required)
    assert layout is not None
    assert [leaf.path for leaf in layout.leaves] == [("weights",), ("scale",)]
    assert layout.levels[0].required == {"weights", "scale"}
    params = trace(partly_required, key, jnp.ones((2, 3)), 4)
    assert jax.tree.map(jnp.shape, params) == {"weights": (3, 4), "scale": (4,)}


def test_symbolic_dims_nested_typeddicts_and_annotated_extras(key: Array) -> None:
    params = trace(block, key, jnp.ones((2, 3)), 4, 5, 6)
    assert jax.tree.map(jnp.shape, params) == {
        "down": (12, 3),
        "heads": (4, 5),
        "proj": {"bias": (6,), "weights": (3, 6)},
        "scale": (3,),
        "steps": (),
        "up": (3, 12),
    }
    np.testing.assert_array_equal(np.asarray(params["up"]), np.ones((3, 12), np.float32))
    np.testing.assert_array_equal(np.asarray(params["scale"]), np.ones(3, np.float32))
    assert params["steps"].dtype == jnp.int32
    layout = params_layout(block)
    assert layout is not None
    tags = {leaf.path: leaf.tags for leaf in layout.leaves}
    assert tags[("up",)] == ("decay",) and tags[("scale",)] == ("norm", "no_decay")


class UnbindableParams(TypedDict):
    w: Float[Array, "d_in hidden"]


@flexible
def unbindable(params: UnbindableParams, x: Float[Array, "b d_in"]) -> Array:
    return x @ params["w"]


def test_an_unbindable_dim_names_the_dim_the_leaf_and_the_function(key: Array) -> None:
    with pytest.raises(ValueError, match=r"`unbindable`, `params\['w'\]` \('d_in hidden'\): cannot bind dim `hidden`.*\(bound: b=2, d_in=3\)"):
        trace(unbindable, key, jnp.ones((2, 3)))


@flexible
def by_dim_string(params: Params, x: Float[Array, "*batch d_in"], out_dim: int) -> Array:
    w = validate(params["w"], "d_in out_dim")
    v = validate(params["v"], Float[Array, "out_dim d_in"])
    b = validate(params["b"], "out_dim*2")
    return x @ w @ v + jnp.sum(b)


def test_validate_resolves_dim_strings_and_annotations_from_the_enclosing_arguments(key: Array) -> None:
    params = trace(by_dim_string, key, jnp.ones((2, 3)), 4)
    assert jax.tree.map(jnp.shape, params) == {"b": (8,), "v": (4, 3), "w": (3, 4)}
    assert by_dim_string(params, jnp.ones((2, 3)), 4).shape == (2, 3)
    with pytest.raises(ValueError, match=r"expected shape \(5, 4\), got \(3, 4\)"):
        by_dim_string(params, jnp.ones((2, 5)), 4)


def test_validate_with_an_unknown_dim_name_says_which(key: Array) -> None:
    @flexible
    def net(params: Params, x: Float[Array, "b d"]) -> Array:
        return validate(params["w"], "d width")

    with pytest.raises(ValueError, match=r"validate in `net`: cannot bind dim `width`"):
        trace(net, key, jnp.ones((2, 3)))


class SquareParams(TypedDict):
    w: Float[Array, "d d"]


@flexible
def two_inputs(params: SquareParams, x: Float[Array, "b d"], y: Float[Array, "b d"]) -> Array:
    return x @ params["w"] + y


def test_a_shape_mismatch_between_arguments_is_reported(key: Array) -> None:
    with pytest.raises(ValueError, match=r"`two_inputs` argument `y`: dim `d` is 4 here but 3 elsewhere"):
        trace(two_inputs, key, jnp.ones((2, 3)), jnp.ones((2, 4)))


@flexible
def refined(params: SquareParams, x: Float[Array, "b d"]) -> Array:
    w = validate(params["w"], (x.shape[-1],) * 2, jax.nn.initializers.ones, dtype=jnp.bfloat16)
    return x @ w.astype(x.dtype)


def test_explicit_validate_refines_a_signature_leaf(key: Array) -> None:
    params = trace(refined, key, jnp.ones((2, 3)))
    assert params["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(params["w"], np.float32), np.ones((3, 3), np.float32))


def _signature_bind(fn: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object], partial: bool) -> list[tuple[str, object]]:
    signature = inspect.signature(fn)
    bound = signature.bind_partial(*args, **kwargs) if partial else signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return list(bound.arguments.items())


def _net(params: object, x: object, width: int, use_bias: bool = True, *, scale: float = 1.0, dtype: object = None) -> None: ...


def _variadic(params: object, *args: object, scale: float = 1.0, **kwargs: object) -> None: ...


def _positional_only(params: object, x: object, /, width: int = 2) -> None: ...


def test_call_arguments_bind_as_the_signature_does_in_its_order() -> None:
    cases: list[tuple[Callable[..., object], tuple[object, ...], dict[str, object], bool]] = [
        (_net, (1, 2, 3), {}, False),
        (_net, (1, 2), {"width": 3}, False),
        (_net, (1, 2, 3, False), {"dtype": "bfloat16"}, False),
        (_net, (), {"scale": 2.0, "width": 3, "x": 2, "params": 1}, False),
        (_net, (1,), {}, True),  # partial: the missing ones are left out
        (_net, (1,), {"scale": 0.5}, True),
        (_variadic, (1, 2, 3), {"scale": 2.0, "other": 4}, False),
        (_positional_only, (1, 2), {"width": 5}, False),
    ]
    for fn, args, kwargs, partial in cases:
        found = call_arguments(fn, args, kwargs, partial=partial)
        assert list(found.items()) == _signature_bind(fn, args, kwargs, partial)


def test_call_arguments_that_do_not_bind_raise_the_signatures_error() -> None:
    cases: list[tuple[Callable[..., object], tuple[object, ...], dict[str, object]]] = [
        (_net, (1, 2, 3, True, 5), {}),  # too many positional
        (_net, (1, 2, 3), {"width": 4}),  # twice
        (_net, (1, 2, 3), {"size": 4}),  # unknown
        (_net, (1, 2), {}),  # missing
        (_positional_only, (1,), {"x": 2}),  # positional-only by keyword
    ]
    for fn, args, kwargs in cases:
        with pytest.raises(TypeError) as expected:
            inspect.signature(fn).bind(*args, **kwargs)
        with pytest.raises(TypeError, match=re.escape(str(expected.value))):
            call_arguments(fn, args, kwargs)
