"""Placeholders: the hole algebra, signatures, errors."""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zephyr import nets
from zephyr.functools.partial import Holed, PlaceholderType, flexible, hole_aware, placeholder_hole as _


@flexible
def record(a: int, b: int, c: int, d: int | str = "d", *, e: int | str = "e") -> tuple[int | str, ...]:
    """Return the arguments it was called with."""
    return (a, b, c, d, e)


def test_the_placeholder_is_a_pickling_singleton() -> None:
    assert PlaceholderType() is _
    assert copy.deepcopy(_) is _
    assert pickle.loads(pickle.dumps(_)) is _
    assert repr(_) == "_"


def test_a_call_without_holes_calls_the_function() -> None:
    assert record(1, 2, 3) == (1, 2, 3, "d", "e")


def test_holes_fill_left_to_right_in_several_steps() -> None:
    step = record(_, 2, _)
    assert isinstance(step, Holed)
    step2: Any = step(1)  # statically one fill completes the call; at run time holes remain
    assert isinstance(step2, Holed)
    assert step2(3) == (1, 2, 3, "d", "e")
    assert record(_, _, _)(1, 2, 3) == (1, 2, 3, "d", "e")


def test_a_hole_passed_again_stays_a_hole() -> None:
    partly: Any = record(_, _, 3)(_, 2)  # type: ignore[arg-type]  # typed holes are the first three positional ones, filled positionally: this one is run-time only
    assert partly(1) == (1, 2, 3, "d", "e")


def test_keyword_holes_fill_by_keyword() -> None:
    assert record(1, 2, 3, e=_)(e=5) == (1, 2, 3, "d", 5)  # type: ignore[call-overload]  # typed holes are the first three positional ones, filled positionally: this one is run-time only
    assert record(1, 2, 3, d=_)(d=4) == (1, 2, 3, 4, "e")  # type: ignore[call-overload]  # typed holes are the first three positional ones, filled positionally: this one is run-time only


def test_positional_holes_fill_by_their_parameter_name() -> None:
    assert record(_, _, 3)(b=2, a=1) == (1, 2, 3, "d", "e")  # type: ignore[call-arg]  # typed holes are the first three positional ones, filled positionally: this one is run-time only


def test_extra_positional_arguments_are_appended() -> None:
    assert record(_, 2, 3)(1, 4) == (1, 2, 3, 4, "e")  # type: ignore[call-arg]  # typed holes are the first three positional ones, filled positionally: this one is run-time only


def test_wrapper_keeps_name_doc_wrapped_and_signature() -> None:
    assert record.__name__ == "record"
    assert record.__doc__ == "Return the arguments it was called with."
    assert inspect.signature(record) == inspect.signature(record.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(nets.linear).parameters)[:3] == ["params", "x", "out_dim"]


def test_a_holed_call_has_the_signature_of_the_missing_arguments() -> None:
    holed: Any = record(_, 2, _, e=_)  # type: ignore[call-overload]  # typed holes are the first three positional ones, filled positionally: this one is run-time only
    assert list(inspect.signature(holed).parameters) == ["a", "c", "d", "e"]
    assert repr(holed) == "record(_, 2, _, e=_)"
    assert list(inspect.signature(nets.linear(_, _, 256)).parameters)[:2] == ["params", "x"]


def test_a_hole_that_can_never_be_filled_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"`record` takes at most 4 positional arguments; a hole at position 4 can never be filled"):
        record(1, 2, 3, 4, _)  # type: ignore[call-overload]  # the fallback overload accepts it: the run-time check catches it
    with pytest.raises(TypeError, match=r"`record` has no parameter `z`"):
        record(_, 2, 3, z=_)  # type: ignore[call-overload]  # typed holes are the first three positional ones, filled positionally: this one is run-time only


def test_a_hole_reaching_a_plain_function_as_a_value_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"the placeholder `_` was used as a value"):
        jnp.ones(2) + _  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue]  # the error under test
    with pytest.raises(TypeError, match=r"PlaceholderType"):
        jnp.sum(_)  # type: ignore[arg-type]  # the error under test


def test_missing_hyperparameter_is_pythons_own_clear_error(key: jax.Array) -> None:
    with pytest.raises(TypeError, match=r"missing (1 required positional|a required) argument: 'out_dim'"):
        nets.linear({}, jnp.ones(2))  # type: ignore[call-overload]  # the error under test


def test_hole_aware_is_flexible_and_flexible_is_idempotent() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    assert hole_aware(add)(_, 1)(2) == 3
    once: object = flexible(add)
    assert flexible(add) is not once and flexible(once) is once  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # re-wrapping a flexible object


def test_holed_nets_trace_and_apply(key: jax.Array) -> None:
    from zephyr import trace

    model = nets.linear(_, _, 4)
    x = jnp.ones((2, 3))
    params = trace(model, key, x)
    assert model(params, x).shape == (2, 4)


arguments = st.lists(st.integers(min_value=0, max_value=99), min_size=3, max_size=3)
hole_masks = st.lists(st.booleans(), min_size=3, max_size=3)


@given(values=arguments, mask=hole_masks, split=st.integers(min_value=0, max_value=3))
def test_any_holes_filled_in_any_number_of_steps_give_the_direct_call(
    values: list[int], mask: list[bool], split: int
) -> None:
    holed_args = [_ if hole else v for v, hole in zip(values, mask)]
    missing = [v for v, hole in zip(values, mask) if hole]
    result: Any = record(*holed_args)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # ints and holes mixed
    if not missing:
        assert result == record(*values)
        return
    first, rest = missing[:split], missing[split:]
    if first:
        result = result(*first)
    if rest:
        result = result(*rest)
    assert result == record(*values)


@given(values=arguments, mask=hole_masks)
def test_filling_by_name_equals_filling_by_position(values: list[int], mask: list[bool]) -> None:
    names = ["a", "b", "c"]
    holed_args = [_ if hole else v for v, hole in zip(values, mask)]
    by_name = {n: v for n, v, hole in zip(names, values, mask) if hole}
    if not by_name:
        return
    holed: Any = record(*holed_args)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # ints and holes mixed
    assert holed(**by_name) == record(*values)
