"""The shared argument checks: what they accept, and their messages, whole."""

from __future__ import annotations

import re
from typing import Any

import jax
import numpy as np

import pytest

from zephyr._checks import (
    check_random_key,
    check_option,
    check_rate,
    fail,
    int_pairs,
    is_positive_int,
    min_rank,
    positive_int,
    positive_int_or_none,
    positive_ints,
)


def test_fail_says_who_what_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"^f: `n` must be even, got 3$"):
        fail("f", "n", "even", 3)
    with pytest.raises(TypeError, match=r"^f: `s` must be a str, got b'x'$"):
        fail("f", "s", "a str", b"x", TypeError)


@pytest.mark.parametrize("value,ok", [(1, True), (7, True), (0, False), (-2, False), (True, False), (2.0, False), ("3", False)])
def test_positive_int(value: object, ok: bool) -> None:
    assert is_positive_int(value) is ok
    if ok:
        assert positive_int("gru", "hidden_size", value) == value  # type: ignore[arg-type]  # any value at run time
    else:
        message = f"gru: `hidden_size` must be a positive int, got {value!r}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            positive_int("gru", "hidden_size", value)  # type: ignore[arg-type]  # any value at run time


def test_positive_int_or_none() -> None:
    assert positive_int_or_none("t", "mlp_dim", None) is None
    assert positive_int_or_none("t", "mlp_dim", 4) == 4
    with pytest.raises(ValueError, match=r"^t: `mlp_dim` must be a positive int or None, got 0$"):
        positive_int_or_none("t", "mlp_dim", 0)


def test_positive_ints() -> None:
    assert positive_ints("conv_2d", "stride", 2, 2) == (2, 2)
    assert positive_ints("conv_2d", "stride", [1, 3], 2) == (1, 3)
    with pytest.raises(ValueError, match=r"^conv_2d: `stride` must be a positive int or 2 positive ints, got \(1, 1, 1\)$"):
        positive_ints("conv_2d", "stride", (1, 1, 1), 2)
    with pytest.raises(ValueError, match=r"^p: `stride` must be a positive int or 1 positive ints \(one per axis\), got \(True,\)$"):
        positive_ints("p", "stride", (True,), 1, " (one per axis)")


def test_int_pairs() -> None:
    assert int_pairs([(1, 2), [0, 3]], 2) == [(1, 2), (0, 3)]
    assert int_pairs([(1, 2)], 2) is None
    assert int_pairs([(1, 2, 3), (0, 0)], 2) is None
    assert int_pairs([(1.0, 2)], 1) is None  # type: ignore[list-item]  # any value at run time


@pytest.mark.parametrize("value,ok", [(0, True), (1, True), (0.5, True), (1.5, False), (-0.1, False), (float("nan"), False), (True, False), ("0.5", False)])
def test_rate(value: object, ok: bool) -> None:
    if ok:
        assert check_rate("dropout", "rate", value) == value  # type: ignore[arg-type]  # any value at run time
    else:
        message = f"dropout: `rate` must be a number in [0, 1], got {value!r}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check_rate("dropout", "rate", value)  # type: ignore[arg-type]  # any value at run time


def test_check_option() -> None:
    assert check_option("b", "cell", "gru", ("rnn", "lstm", "gru")) == "gru"
    with pytest.raises(ValueError, match=r"^b: `cell` must be 'rnn', 'lstm' or 'gru', got 'lsmt'$"):
        check_option("b", "cell", "lsmt", ("rnn", "lstm", "gru"))
    with pytest.raises(ValueError, match=r"^b: `mode` must be 'a', got 'b'$"):
        check_option("b", "mode", "b", ("a",))


def test_min_rank() -> None:
    min_rank("lstm", "x", (3, 4), 2, "(time, features)")
    with pytest.raises(ValueError, match=r"^lstm: `x` must have at least 2 axes \(time, features\), got shape \(3,\)$"):
        min_rank("lstm", "x", (3,), 2, "(time, features)")
    with pytest.raises(ValueError, match=r"^layer_norm: `x` must have at least one axis, got shape \(\)$"):
        min_rank("layer_norm", "x", (), 1)


def test_sizes_accept_numpy_ints_and_return_python_ints() -> None:
    from zephyr._checks import check_size, positive_int, positive_int_or_none, positive_ints

    size: Any = np.int32(3)  # what numpy arithmetic gives: typed as int by its callers
    for value in (positive_int("f", "n", size), check_size("f", "n", size), positive_int_or_none("f", "n", size)):
        assert value == 3 and type(value) is int
    assert positive_ints("f", "n", size, 2) == (3, 3) and positive_ints("f", "n", (size, 1), 2) == (3, 1)
    with pytest.raises(ValueError, match=r"f: `n` must be a positive int, got True"):
        positive_int("f", "n", True)
    with pytest.raises(ValueError, match=r"f: `n` must be a positive int or 2 positive ints, got True"):
        positive_ints("f", "n", True, 2)


@pytest.mark.parametrize(
    "key", [jax.random.key(0), jax.random.PRNGKey(0), np.zeros(2, np.uint32)], ids=["typed", "raw", "numpy raw"]
)
def test_a_single_random_key_is_accepted(key: Any) -> None:
    check_random_key(key, "f")


@pytest.mark.parametrize(
    ("key", "given"),
    [
        (0, "int 0"),
        (jax.random.split(jax.random.key(0)), "of shape (2,) and dtype key<"),
        (np.zeros(2, np.int32), "ndarray of shape (2,) and dtype int32"),
        (np.zeros((2, 2), np.uint32), "ndarray of shape (2, 2) and dtype uint32"),
    ],
    ids=["int", "two typed keys", "int32 pair", "uint32 of shape (2, 2)"],
)
def test_anything_else_is_not_a_random_key(key: Any, given: str) -> None:
    with pytest.raises(TypeError, match=r"^f: `key` must be a JAX random key, .*, got .*" + re.escape(given)):
        check_random_key(key, "f")
