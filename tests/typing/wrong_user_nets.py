"""Mistakes in calls of your own ``@flexible`` nets: every line marked ``# error`` must be an
error in each of the five checkers, and no other line (tests/typing/test_checkers.py).

Not a ``check_*.py`` file: it has no ignores, so the checkers' strict runs leave it out.
"""

from typing import TypedDict

from jax import Array

from zephyr import nets, stack, trace
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, ParamsTree


@flexible
def block(params: Params, x: Array, width: int) -> Array:
    return nets.linear(params, x, width)


@flexible
def strict_block(params: ParamsTree, x: Array, width: int) -> Array:
    return nets.linear(params, x, width)


class DenseParams(TypedDict):
    weights: Array
    bias: Array


@flexible
def dense_typed(params: DenseParams, x: Array, out_dim: int) -> Array:
    return x @ params["weights"] + params["bias"]


def wrong(p: Params, x: Array, key: Array) -> None:
    block(p, x, "8")  # error: wrong hyperparameter type, no hole in the call
    block(p, x, 8, 9)  # error: too many arguments
    block(_, _, 8)(p, x, 9)  # error: too many arguments to a holed call
    block(_, _, 8)(p, "x")  # error: str where an Array is expected
    dense_typed({"weight": x, "bias": x}, x, 5)  # error: wrong key for a TypedDict params (missed by: mypy, pyright, basedpyright, ty, pyrefly)
    trace(dense_typed, key, x, "5")  # error: wrong sample hyperparameter (missed by: pyrefly)
    stack(nets.linear(_, _, 8), 12)(p)  # error: too few arguments
    _y: Array = block(p, x, "8")  # error: the call is wrong, not the assignment
    block(p, "x", _)  # error: a wrong value beside a hole
    block(p, x, width=_)  # error: keyword holes are not typed: refused
    trace(block(_, _, 32), key, x, 3)  # error: too many sample arguments
    block(_, _, 8)(p)  # error: too few arguments to a holed call
    nets.linear(3, x, 256)  # error: an int is not a params tree (a net takes a ParamsTree)
    nets.linear(_, _, 8)(3, x)  # error: nor to a holed net
    strict_block(3, x, 8)  # error: nor to a net of yours annotated with ParamsTree
    _n: int = p  # error: a Params value is not Any: it does not assign to an int
