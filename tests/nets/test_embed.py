"""token_embed, positional_embed, sinusoidal_embed and rope against hand-written formulas."""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from zephyr import nets, trace
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking


def test_token_embed_is_a_row_lookup(key: jax.Array) -> None:
    ids = jnp.array([[0, 3, 9], [9, 9, 1]])
    params = trace(nets.token_embed(_, _, 10, 4), key, ids)
    assert jax.tree.map(jnp.shape, params) == {"embeddings": (10, 4)}
    y = nets.token_embed(params, ids, 10, 4)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(params["embeddings"])[np.asarray(ids)])
    # Flax's default table: variance 1 / embed_dim.
    big: Any = trace(nets.token_embed(_, _, 4000, 16), key, ids)["embeddings"]
    assert abs(float(jnp.std(big)) - 0.25) < 0.01


@pytest.mark.parametrize("check", [True, False])
def test_token_embed_out_of_range_ids_raise_eagerly(key: jax.Array, check: bool) -> None:
    params = trace(nets.token_embed(_, _, 10, 4), key, jnp.array([0]))
    with checking(check), pytest.raises(ValueError, match=r"^token_embed: `token_ids` must be in \[0, 10\), got \[-1, 10\]$"):
        nets.token_embed(params, jnp.array([1, 10, -1]), 10, 4)


def test_token_embed_negative_id_under_jit_is_nan_not_the_last_row(key: jax.Array) -> None:
    params = trace(nets.token_embed(_, _, 10, 4), key, jnp.array([0]))
    y = np.asarray(jax.jit(lambda i: nets.token_embed(params, i, 10, 4))(jnp.array([1, -1, -10])))
    np.testing.assert_array_equal(y[0], np.asarray(params["embeddings"])[1])
    assert np.isnan(y[1:]).all()  # before: rows 9 and 0


def test_token_embed_id_past_the_table_under_jit_is_nan(key: jax.Array) -> None:
    params = trace(nets.token_embed(_, _, 10, 4), key, jnp.array([0]))
    y = np.asarray(jax.jit(lambda i: nets.token_embed(params, i, 10, 4))(jnp.array([[9, 10], [0, 2**20]])))
    table = np.asarray(params["embeddings"])
    np.testing.assert_array_equal(y[0, 0], table[9])
    np.testing.assert_array_equal(y[1, 0], table[0])
    assert np.isnan(y[0, 1]).all() and np.isnan(y[1, 1]).all()


def test_token_embed_checkify_reports_the_bad_id(key: jax.Array) -> None:
    params = trace(nets.token_embed(_, _, 10, 4), key, jnp.array([0]))
    run = checkify.checkify(jax.jit(lambda i: nets.token_embed(params, i, 10, 4)))
    error, _y = run(jnp.array([3, 12, 4]))
    message = error.get()
    assert message is not None and message.startswith("token_embed: `token_ids` must be in [0, 10), got 12")
    error, y = run(jnp.array([3, 9]))
    assert error.get() is None and not np.isnan(np.asarray(y)).any()


def test_token_embed_under_vmap_and_grad(key: jax.Array) -> None:
    params = trace(nets.token_embed(_, _, 10, 4), key, jnp.array([0]))
    y = jax.vmap(lambda i: nets.token_embed(params, i, 10, 4))(jnp.array([[1], [11]]))
    assert not np.isnan(np.asarray(y[0])).any() and np.isnan(np.asarray(y[1])).all()
    grads = jax.grad(lambda p: nets.token_embed(p, jnp.array([2, 2, 5]), 10, 4).sum())(params)
    np.testing.assert_array_equal(np.asarray(grads["embeddings"])[:, 0], [0, 0, 2, 0, 0, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int8, jnp.int16])
def test_token_embed_narrow_id_dtypes(key: jax.Array, dtype: Any) -> None:
    params = trace(nets.token_embed(_, _, 300, 2), key, jnp.array([0]))
    ids = jnp.array([0, 100, 127], dtype)
    y = jax.jit(lambda i: nets.token_embed(params, i, 300, 2))(ids)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(params["embeddings"])[[0, 100, 127]])


@pytest.mark.parametrize("check", [True, False])
def test_token_embed_empty_vocabulary_is_named(key: jax.Array, check: bool) -> None:
    with checking(check):
        with pytest.raises(ValueError, match=r"^token_embed: `vocab_size` must be a positive int, got 0"):
            trace(nets.token_embed(_, _, 0, 4), key, jnp.array([0]))
        with pytest.raises(ValueError, match=r"^token_embed: `vocab_size` must be a positive int, got 0"):
            nets.token_embed({"embeddings": jnp.zeros((0, 4))}, jnp.array([0]), 0, 4)
        with pytest.raises(ValueError, match=r"^token_embed: `embed_dim` must be a positive int, got -1"):
            trace(nets.token_embed(_, _, 3, -1), key, jnp.array([0]))


def test_positional_embed_adds_rows(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 5, 8))
    params: Any = trace(nets.positional_embed(_, _, 7), key, x)
    assert jax.tree.map(jnp.shape, params) == {"embeddings": (7, 8)}
    y = nets.positional_embed(params, x, 7)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x) + np.asarray(params["embeddings"])[:5][None], rtol=1e-6)
    assert float(jnp.std(params["embeddings"])) < 0.05


def _sinusoid_reference(seq: int, d: int, base: float = 10000.0) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
    table = np.zeros((seq, d))
    for t in range(seq):
        for i in range(d // 2):
            angle = t / base ** (2 * i / d)
            table[t, 2 * i] = math.sin(angle)
            table[t, 2 * i + 1] = math.cos(angle)
    return table


def test_sinusoidal_embed_matches_the_paper(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 6, 10))
    y = nets.sinusoidal_embed(x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x) + _sinusoid_reference(6, 10), rtol=1e-5, atol=1e-5)
    assert trace(lambda p, x: nets.sinusoidal_embed(x), key, x) == {}
    assert nets.sinusoidal_embed(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def _rope_reference(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Element by element: pair i with i + d/2, rotate by position * base**(-2i/d)."""
    y = np.empty_like(x, dtype=np.float64)
    *batch, seq, heads, d = x.shape
    h = d // 2
    for index in np.ndindex(*batch, seq, heads):
        t = index[len(batch)]
        pos = positions[index[: len(batch) + 1]] if positions.ndim > 1 else positions[t]
        for i in range(h):
            angle = pos * base ** (-2 * i / d)
            c, s = math.cos(angle), math.sin(angle)
            y[index + (i,)] = x[index + (i,)] * c - x[index + (i + h,)] * s
            y[index + (i + h,)] = x[index + (i + h,)] * c + x[index + (i,)] * s
    return y


def test_rope_matches_formula(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 5, 3, 6))
    np.testing.assert_allclose(np.asarray(nets.rope(x)), _rope_reference(np.asarray(x, np.float64), np.arange(5.0)), rtol=1e-5, atol=1e-5)
    positions = jnp.array([[3, 4, 5, 6, 7], [0, 2, 4, 6, 8]])
    y = nets.rope(x, positions, base=100.0)
    np.testing.assert_allclose(np.asarray(y), _rope_reference(np.asarray(x, np.float64), np.asarray(positions), 100.0), rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_on_relative_position(key: jax.Array) -> None:
    q = jax.random.normal(key, (1, 1, 8))
    k = jax.random.normal(jax.random.fold_in(key, 1), (1, 1, 8))

    def score(m: int, n: int) -> float:
        rq = nets.rope(q, jnp.array([m]))
        rk = nets.rope(k, jnp.array([n]))
        return float(jnp.sum(rq * rk))

    assert score(7, 3) == pytest.approx(score(4, 0), rel=1e-4)
    assert score(10, 10) == pytest.approx(float(jnp.sum(q * k)), rel=1e-4)


def test_bad_inputs(key: jax.Array) -> None:
    params = trace(nets.positional_embed(_, _, 4), key, jnp.ones((4, 8)))
    with pytest.raises(ValueError, match=r"positional_embed: `x` has 5 positions \(axis -2 of shape \(2, 5, 8\)\), more than `max_len` 4"):
        nets.positional_embed(params, jnp.ones((2, 5, 8)), 4)
    with pytest.raises(ValueError, match=r"`params\['embeddings'\]`: expected shape \(4, 6\).*got \(4, 8\)"):
        nets.positional_embed(params, jnp.ones((2, 4, 6)), 4)
    with pytest.raises(ValueError, match=r"sinusoidal_embed: the last axis of `x` \(d\) must be even, got shape \(3, 5\)"):
        nets.sinusoidal_embed(jnp.ones((3, 5)))
    with pytest.raises(ValueError, match=r"rope: the last axis of `x` \(head_dim\) must be even, got shape \(3, 2, 5\)"):
        nets.rope(jnp.ones((3, 2, 5)))
    with pytest.raises(ValueError, match=r"rope: `positions` must broadcast \(right-aligned\) to \(\*batch, seq\) = \(2, 4\), got shape \(3, 4\)"):
        nets.rope(jnp.ones((2, 4, 1, 2)), jnp.zeros((3, 4), jnp.int32))
    with pytest.raises(TypeError, match=r"rope"):  # checking on: the annotations see the wrong seq
        nets.rope(jnp.ones((2, 4, 1, 2)), jnp.zeros((3,), jnp.int32))
    with checking(False):
        with pytest.raises(ValueError, match=r"rope: `positions` must broadcast \(right-aligned\) to \(\*batch, seq\) = \(2, 4\), got shape \(3,\)"):
            nets.rope(jnp.ones((2, 4, 1, 2)), jnp.zeros((3,), jnp.int32))
        with pytest.raises(ValueError, match=r"rope: `x` must have at least 3 axes \(seq, heads, head_dim\), got shape \(4, 2\)"):
            nets.rope(jnp.ones((4, 2)))
        with pytest.raises(TypeError, match=r"token_embed: `token_ids` must be integers, got dtype float32"):
            nets.token_embed({"embeddings": jnp.ones((3, 2))}, jnp.ones((2,)), 3, 2)


def test_positional_embed_offset_and_positions(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 4))
    params = trace(nets.positional_embed(_, _, 10), key, x)
    table = np.asarray(params["embeddings"])
    xs = np.asarray(x)
    np.testing.assert_allclose(nets.positional_embed(params, x, 10, offset=4), xs + table[4:7], rtol=1e-6)
    traced_offset = jax.lax.full((), 5, jnp.int32)  # a scalar array, as a cache's length
    np.testing.assert_allclose(nets.positional_embed(params, x, 10, offset=traced_offset), xs + table[5:8], rtol=1e-6)
    positions = np.array([[0, 2, 9], [1, 1, 3]])
    expected = xs + table[positions]
    ours = nets.positional_embed(params, x, 10, positions=jnp.broadcast_to(positions, positions.shape))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    # decoding step by step with the offset equals the full sequence
    steps = [nets.positional_embed(params, x[:, t : t + 1], 10, offset=t) for t in range(3)]
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), nets.positional_embed(params, x, 10), rtol=1e-6)


def test_positional_embed_positions_checked(key: jax.Array) -> None:
    x = jnp.zeros((2, 3, 4))
    params = trace(nets.positional_embed(_, _, 10), key, x)
    with pytest.raises(ValueError, match=r"positional_embed: `offset` must be in \[0, 7\] \(the steps' positions `offset` \+ 0 to 2 within \[0, `max_len`\) = \[0, 10\)\), got 8"):
        nets.positional_embed(params, x, 10, offset=8)
    with pytest.raises(TypeError, match=r"parameter 'positions'"):  # run-time checking names the dims
        nets.positional_embed(params, x, 10, positions=jax.lax.iota(jnp.int32, 4))
    with checking(False), pytest.raises(ValueError, match=r"`positions` must broadcast \(right-aligned\) to \(\*batch, seq\) = \(2, 3\), got shape \(4,\)"):
        nets.positional_embed(params, x, 10, positions=jax.lax.iota(jnp.int32, 4))
    with pytest.raises(ValueError, match=r"give `positions` or `offset`, not both"):
        nets.positional_embed(params, x, 10, positions=jax.lax.iota(jnp.int32, 3), offset=1)
    with checking(False), pytest.raises(TypeError, match=r"`positions` must be integers"):
        nets.positional_embed(params, x, 10, positions=jnp.zeros((3,)))


OFFSET_MESSAGE = r"^positional_embed: `offset` must be in \[0, 2\] \(the steps' positions `offset` \+ 0 to 5 within \[0, `max_len`\) = \[0, 8\)\), got {}"


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("offset", [-1, 5, 3])
def test_positional_embed_offset_out_of_range_raises_eagerly(key: jax.Array, check: bool, offset: int) -> None:
    x = jnp.zeros((1, 6, 4))
    params = trace(nets.positional_embed(_, _, 8), key, x)
    with checking(check):
        with pytest.raises(ValueError, match=OFFSET_MESSAGE.format(offset)):
            nets.positional_embed(params, x, 8, offset=offset)
        with pytest.raises(ValueError, match=OFFSET_MESSAGE.format(offset)):  # a concrete scalar array too
            nets.positional_embed(params, x, 8, offset=jnp.asarray(offset))
        with pytest.raises(ValueError, match=OFFSET_MESSAGE.format(offset)):  # an int offset is checked under jit
            jax.jit(lambda x: nets.positional_embed(params, x, 8, offset=offset))(x)


@pytest.mark.parametrize("check", [True, False])
def test_positional_embed_negative_position_raises_eagerly(key: jax.Array, check: bool) -> None:
    x = jnp.zeros((2, 3, 4))
    params = trace(nets.positional_embed(_, _, 8), key, x)
    with checking(check), pytest.raises(ValueError, match=r"^positional_embed: `positions` must be in \[0, 8\) = \[0, `max_len`\), got \[-1, 8\]$"):
        nets.positional_embed(params, x, 8, positions=jnp.array([[0, 1, -1], [8, 2, 3]]))


def test_positional_embed_traced_offset_past_the_table_is_nan(key: jax.Array) -> None:
    x = jax.random.normal(key, (1, 6, 4))
    params = trace(nets.positional_embed(_, _, 8), key, x)
    table, xs = np.asarray(params["embeddings"]), np.asarray(x)
    run = jax.jit(lambda offset: nets.positional_embed(params, x, 8, offset=offset))
    y = np.asarray(run(jnp.asarray(5)))  # positions 5..10: the first three are rows 5, 6, 7
    np.testing.assert_allclose(y[0, :3], xs[0, :3] + table[5:8], rtol=1e-6)
    assert np.isnan(y[0, 3:]).all()
    y = np.asarray(run(jnp.asarray(-1)))  # positions -1..4: step 0 is NaN, not the last row
    assert np.isnan(y[0, 0]).all()
    np.testing.assert_allclose(y[0, 1:], xs[0, 1:] + table[:5], rtol=1e-6)


def test_positional_embed_traced_negative_position_is_nan(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 4))
    params = trace(nets.positional_embed(_, _, 8), key, x)
    positions = jnp.array([[0, 1, -1], [7, 8, 2]], jnp.int8)
    y = np.asarray(jax.jit(lambda p: nets.positional_embed(params, x, 8, positions=p))(positions))
    table, xs = np.asarray(params["embeddings"]), np.asarray(x)
    np.testing.assert_allclose(y[0, :2], xs[0, :2] + table[:2], rtol=1e-6)
    np.testing.assert_allclose(y[1, 0], xs[1, 0] + table[7], rtol=1e-6)
    np.testing.assert_allclose(y[1, 2], xs[1, 2] + table[2], rtol=1e-6)
    assert np.isnan(y[0, 2]).all() and np.isnan(y[1, 1]).all()


def test_positional_embed_checkify_reports_offset_and_positions(key: jax.Array) -> None:
    x = jnp.zeros((1, 6, 4))
    params = trace(nets.positional_embed(_, _, 8), key, x)
    by_offset = checkify.checkify(jax.jit(lambda offset: nets.positional_embed(params, x, 8, offset=offset)))
    message = by_offset(jnp.asarray(5))[0].get()
    assert message is not None and re.match(OFFSET_MESSAGE.format(5), message)
    assert by_offset(jnp.asarray(2))[0].get() is None
    by_positions = checkify.checkify(jax.jit(lambda p: nets.positional_embed(params, x, 8, positions=p)))
    message = by_positions(jnp.array([0, 1, 2, -3, 4, 5]))[0].get()
    assert message is not None and message.startswith("positional_embed: `positions` must be in [0, 8) = [0, `max_len`), got -3")


def test_positional_embed_max_len_is_named(key: jax.Array) -> None:
    with pytest.raises(ValueError, match=r"^positional_embed: `max_len` must be a positive int, got 0"):
        trace(nets.positional_embed(_, _, 0), key, jnp.zeros((0, 4)))


def test_positional_embed_narrow_positions_do_not_wrap(key: jax.Array) -> None:
    x = jnp.zeros((3, 2))
    params = trace(nets.positional_embed(_, _, 300), key, x)
    positions = jnp.array([255, 0, 299], jnp.uint16)
    y = jax.jit(lambda p: nets.positional_embed(params, x, 300, positions=p))(positions)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(params["embeddings"])[[255, 0, 299]])
