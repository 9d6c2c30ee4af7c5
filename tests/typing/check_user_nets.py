"""Your own ``@flexible`` nets, typed with no stubs (checked by all five checkers, never run).

A call without holes is checked against the net's own signature; holes among its first three
positional parameters give a callable of the missing ones, in their types; ``trace`` returns
the net's params type and ``stack`` keeps the layer's signature. The same mistakes, which
every checker must report, are in ``wrong_user_nets.py``.
"""

from collections.abc import Callable
from typing import TypedDict, assert_type

from jax import Array

from zephyr import nets, stack, trace, trace_with_state, validate
from zephyr.functools.composition import chain
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, ParamsTree


# A net takes a ParamsTree: a Params (ParamsTree | Any) parameter would take the hole `_` as a
# value in `block(_, x, 8)` (docs/guide/placeholders.md).
@flexible
def block(params: ParamsTree, x: Array, width: int, scale: float = 1.0) -> Array:
    return nets.linear(params["linear"], x, width) * scale


class DenseParams(TypedDict):
    weights: Array
    bias: Array


@flexible
def dense_typed(params: DenseParams, x: Array, out_dim: int) -> Array:
    return x @ params["weights"] + params["bias"]


@flexible
def counter(params: ParamsTree, state: ParamsTree, x: Array) -> tuple[Array, ParamsTree]:
    count = validate(state["count"], ())
    return x, {"count": count + 1}


@flexible
def activation(x: Array) -> Array:
    return x


def calls_without_holes(p: Params, x: Array, typed: DenseParams) -> None:
    assert_type(block(p, x, 8), Array)
    assert_type(block(p, x, 8, 2.0), Array)
    assert_type(block(p, x, width=8, scale=0.5), Array)
    assert_type(dense_typed(typed, x, 5), Array)
    assert_type(dense_typed({"weights": x, "bias": x}, x, 5), Array)
    assert_type(dense_typed(p["dense"], x, 5), Array)  # a subtree of traced params
    assert_type(activation(x), Array)


def calls_with_holes(p: Params, x: Array) -> None:
    assert_type(block(_, _, 8)(p, x), Array)
    assert_type(block(p, _, 8)(x), Array)
    assert_type(block(_, x, 8)(p), Array)
    assert_type(block(p, x, _)(8), Array)
    assert_type(block(_, _, _)(p, x, 8), Array)
    assert_type(block(_, x, _)(p, 8), Array)
    assert_type(block(p, _, _)(x, 8), Array)
    assert_type(block(_, _, 8, 0.5)(p, x), Array)
    assert_type(activation(_)(x), Array)
    typed: Callable[[Params, Array], Array] = block(_, _, 8)
    assert_type(typed(p, x), Array)
    assert_type(chain([block(p, _, 8), activation, nets.linear(p, _, 4)])(x), Array)


def traced(key: Array, x: Array) -> None:
    assert_type(trace(block, key, x, 8), ParamsTree)
    assert_type(trace(block(_, _, 32), key, x), ParamsTree)
    assert_type(trace(dense_typed, key, x, 5), DenseParams)
    assert_type(trace(dense_typed(_, _, 5), key, x), DenseParams)
    assert_type(trace_with_state(counter, key, x), tuple[ParamsTree, ParamsTree])
    params = trace(dense_typed, key, x, 5)
    assert_type(params["weights"].shape, tuple[int, ...])
    deep = stack(block(_, _, 8), 12)
    assert_type(deep(trace(deep, key, x), x), Array)
