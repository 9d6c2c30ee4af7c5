"""Code that must NOT type-check (checked, never run).

Every line marked ``# type: ignore[code]  # pyright: ignore[rule]`` is an error in both
checkers: mypy's ``warn_unused_ignores`` and pyright's ``reportUnnecessaryTypeIgnoreComment``
fail the run if one of them stops being an error, and ``test_typing_snippets.py`` checks a
copy without the ignores, expecting an error on each marked line and nowhere else.
"""

from jax import Array

from zephyr import nets, validate
from zephyr.functools.composition import chain
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, ParamsTree


def plain(params: ParamsTree, x: Array) -> Array:  # ParamsTree: a hole is no value of it
    return nets.linear(params, x, 8)


def wrong_types(params: Params, x: Array) -> None:
    nets.linear(params, x, "256")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    nets.linear(_, _, "256")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    nets.linear(3, x, 256)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    nets.linear(_, _, 256)(params, "x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    nets.dropout(params, _, x, "0.2")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


def too_many_arguments(params: Params, x: Array) -> None:
    nets.linear(_, _, 256)(params, x, 3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    nets.linear(params, _, 256)(x, x)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def holes_where_values_are_required(params: Params, x: Array) -> None:
    nets.linear(params, x, 256, _)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    nets.linear(params, x, out_dim=_)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    plain(_, x)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    validate(_, (3, 8))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def hole_forms_without_an_overload(params: Params, x: Array, reference: Array) -> None:
    # The stubs type the forms users write (docs/guide/placeholders.md); these work at run time.
    nets.linear(_, x, 256)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    nets.linear_like(_, _, reference)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    nets.linear(_, _, _)(_, x, 256)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def wrong_composition() -> None:
    chain([nets.linear(_, _, 256)])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
