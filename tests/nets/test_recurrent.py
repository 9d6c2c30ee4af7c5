"""rnn, lstm, gru against hand-written Python loops over time (float64 numpy, the standard equations)."""

from __future__ import annotations

from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from tests.nets._random import close as _close
from tests.nets._random import normal as _normal
from tests.nets._random import perturb as _randomize
from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, checking

B, T, F, H = 2, 5, 3, 4



def _np(params: Params, name: str) -> np.ndarray:
    return np.asarray(params[name], np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out



# The standard equations, one time step at a time, in float64 numpy:


def _rnn_loop(params: Params, x: Any, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """h_t = tanh(x_t W_x + h_{t-1} W_h + b)."""
    xs = np.asarray(x, np.float64)
    outputs: list[np.ndarray] = []
    for t in range(xs.shape[-2]):
        h = np.tanh(xs[..., t, :] @ _np(params, "w_input") + h @ _np(params, "w_hidden") + _np(params, "bias"))
        outputs.append(h)
    return np.stack(outputs, axis=-2), h


def _lstm_loop(params: Params, x: Any, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """i, f, g, o = split(x_t W_x + h W_h + b); c = σ(f) c + σ(i) tanh(g); h = σ(o) tanh(c)."""
    xs = np.asarray(x, np.float64)
    outputs: list[np.ndarray] = []
    w_x, w_h, b = _np(params, "w_input"), _np(params, "w_hidden"), _np(params, "bias")
    for t in range(xs.shape[-2]):
        z = xs[..., t, :] @ w_x + h @ w_h + b
        i, f, g, o = z[..., :H], z[..., H : 2 * H], z[..., 2 * H : 3 * H], z[..., 3 * H :]
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=-2), h, c


def _gru_loop(params: Params, x: Any, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r = σ(x W_xr + b_xr + h W_hr + b_hr); z likewise; n = tanh(x W_xn + b_xn + r (h W_hn + b_hn));
    h = (1 - z) n + z h (Cho et al. 2014 as PyTorch and Flax compute it)."""
    xs = np.asarray(x, np.float64)
    outputs: list[np.ndarray] = []
    w_x, w_h = _np(params, "w_input"), _np(params, "w_hidden")
    b_x, b_h = _np(params, "bias_input"), _np(params, "bias_hidden")
    for t in range(xs.shape[-2]):
        gx = xs[..., t, :] @ w_x + b_x
        gh = h @ w_h + b_h
        r = _sigmoid(gx[..., :H] + gh[..., :H])
        z = _sigmoid(gx[..., H : 2 * H] + gh[..., H : 2 * H])
        n = np.tanh(gx[..., 2 * H :] + r * gh[..., 2 * H :])
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs, axis=-2), h



def _setup(key: jax.Array, net: Any) -> tuple[Params, jax.Array, jax.Array]:
    x = _normal(key, 1, (B, T, F))
    params = _randomize(trace(net, key, x), jax.random.fold_in(key, 7))
    return params, x, _normal(key, 2, (B, H))


def test_rnn_matches_python_loop(key: jax.Array) -> None:
    params, x, h0 = _setup(key, nets.rnn(_, _, H))
    ys, h = _rnn_loop(params, x, np.zeros((B, H)))
    _close(nets.rnn(params, x, H), ys)
    ys, h = _rnn_loop(params, x, np.asarray(h0, np.float64))
    out, final = nets.rnn(params, x, H, initial_state=h0, return_state=True)
    _close(out, ys)
    _close(final, h)


def test_lstm_matches_python_loop(key: jax.Array) -> None:
    params, x, h0 = _setup(key, nets.lstm(_, _, H))
    c0 = _normal(key, 3, (B, H))
    ys, _h, _c = _lstm_loop(params, x, np.zeros((B, H)), np.zeros((B, H)))
    _close(nets.lstm(params, x, H), ys)
    ys, h, c = _lstm_loop(params, x, np.asarray(h0, np.float64), np.asarray(c0, np.float64))
    out, state = nets.lstm(params, x, H, initial_state=nets.LSTMState(h0, c0), return_state=True)
    _close(out, ys)
    _close(state.hidden, h)
    _close(state.cell, c)


def test_gru_matches_python_loop(key: jax.Array) -> None:
    params, x, h0 = _setup(key, nets.gru(_, _, H))
    ys, h = _gru_loop(params, x, np.zeros((B, H)))
    _close(nets.gru(params, x, H), ys)
    ys, h = _gru_loop(params, x, np.asarray(h0, np.float64))
    out, final = nets.gru(params, x, H, initial_state=h0, return_state=True)
    _close(out, ys)
    _close(final, h)


def test_initial_state_is_used(key: jax.Array) -> None:
    params, x, h0 = _setup(key, nets.gru(_, _, H))
    assert not np.allclose(np.asarray(nets.gru(params, x, H)), np.asarray(nets.gru(params, x, H, initial_state=h0)))


def test_cells_are_one_step_of_the_sequence(key: jax.Array) -> None:
    params, x, h0 = _setup(key, nets.lstm(_, _, H))
    state = nets.LSTMState(h0, jnp.tanh(h0))
    outputs: list[jax.Array] = []
    for t in range(T):
        state, y = nets.lstm_cell(params, state, x[:, t], H)
        outputs.append(y)
    _close(jnp.stack(outputs, axis=1), nets.lstm(params, x, H, initial_state=nets.LSTMState(h0, jnp.tanh(h0))))
    gru_params, x, h = _setup(key, nets.gru(_, _, H))
    rnn_params = _setup(key, nets.rnn(_, _, H))[0]
    h_gru, h_rnn = h, h
    for t in range(T):
        h_gru, _y = nets.gru_cell(gru_params, h_gru, x[:, t], H)
        h_rnn, _y = nets.rnn_cell(rnn_params, h_rnn, x[:, t], H)
    _close(h_gru, nets.gru(gru_params, x, H, initial_state=h, return_state=True)[1])
    _close(h_rnn, nets.rnn(rnn_params, x, H, initial_state=h, return_state=True)[1])


Cell = Literal["rnn", "lstm", "gru"]


def _sequence(cell: Cell, params: Params, x: jax.Array, reverse: bool = False) -> jax.Array:
    if cell == "rnn":
        return nets.rnn(params, x, H, reverse=reverse)
    if cell == "lstm":
        return nets.lstm(params, x, H, reverse=reverse)
    return nets.gru(params, x, H, reverse=reverse)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reverse_is_flip_run_flip(key: jax.Array, cell: Cell) -> None:
    x = _normal(key, 1, (B, T, F))

    def run(params: Params, x: jax.Array) -> jax.Array:
        return _sequence(cell, params, x)

    params = _randomize(trace(run, key, x), key)
    forward_on_flipped = _sequence(cell, params, jnp.flip(x, axis=-2))
    _close(_sequence(cell, params, x, reverse=True), jnp.flip(forward_on_flipped, axis=-2))


def test_return_state_is_the_final_carry(key: jax.Array) -> None:
    params, x, _h0 = _setup(key, nets.lstm(_, _, H))
    ys, state = nets.lstm(params, x, H, return_state=True)
    _close(state.hidden, ys[:, -1])
    ys, state = nets.lstm(params, x, H, reverse=True, return_state=True)
    _close(state.hidden, ys[:, 0])  # reversed: the last step taken is t = 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_concatenates_forward_and_backward(key: jax.Array, cell: Cell) -> None:
    x = _normal(key, 1, (B, T, F))
    net = nets.bidirectional(_, _, H, cell)
    params = _randomize(trace(net, key, x), key)
    expected = jnp.concatenate(
        [_sequence(cell, params["forward"], x), _sequence(cell, params["backward"], x, reverse=True)], axis=-1
    )
    _close(net(params, x), expected)


def test_lstm_forget_bias_starts_at_one_and_hidden_weights_are_orthogonal(key: jax.Array) -> None:
    x = _normal(key, 1, (B, T, F))
    params = trace(nets.lstm(_, _, H), key, x)
    bias = _np(params, "bias")
    np.testing.assert_array_equal(bias, np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
    w = _np(params, "w_hidden")
    np.testing.assert_allclose(w @ w.T, np.eye(H), atol=1e-5)


def test_dtype_and_param_dtype(key: jax.Array) -> None:
    x = _normal(key, 1, (B, T, F))
    net = nets.gru(_, _, H, param_dtype=jnp.bfloat16)
    params = trace(net, key, x)
    assert {np.dtype(a.dtype) for a in jax.tree.leaves(params)} == {np.dtype(jnp.bfloat16)}
    assert net(params, x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    assert nets.lstm(trace(nets.lstm(_, _, H), key, x), x, H, dtype=jnp.bfloat16).dtype == jnp.bfloat16


# ------------------------------------------------------------------------------ bad input


def test_bad_input(key: jax.Array) -> None:
    params, x, _h0 = _setup(key, nets.lstm(_, _, H))
    with pytest.raises((ValueError, TypeError), match=r"parameter 'x'|`x`"):  # run-time checking
        nets.lstm(params, x[0, 0], H)
    with checking(False), pytest.raises(ValueError, match=r"lstm: `x` must have at least 2 axes \(time, features\), got shape \(3,\)"):
        nets.lstm(params, x[0, 0], H)
    bad = nets.LSTMState(jax.lax.full((B, H + 1), 0.0, jnp.float32), jax.lax.full((B, H + 1), 0.0, jnp.float32))
    with checking(False), pytest.raises(ValueError, match=r"lstm: `initial_state.hidden` must have shape \(\*batch, hidden_size\) = \(2, 4\), got \(2, 5\)"):
        nets.lstm(params, x, H, initial_state=bad)
    with pytest.raises(ValueError, match=r"gru: `hidden_size` must be a positive int, got 0"):
        trace(nets.gru(_, _, 0), key, x)
    with checking(False), pytest.raises(ValueError, match=r"bidirectional: `cell` must be 'rnn', 'lstm' or 'gru', got 'lsmt'"):
        trace(nets.bidirectional(_, _, H, cast(Cell, "lsmt")), key, x)  # the error under test
    with checking(False), pytest.raises(ValueError, match=r"gru_cell: `carry` must have shape \(\*batch, hidden_size\) = \(2, 4\)"):
        trace(nets.gru_cell, key, jax.lax.full((3, H), 0.0, jnp.float32), x[:, 0], H)


# ------------------------------------------------------------------------ sequence lengths

# Four sequences in a (2, 2) batch: empty, shorter, full length, shorter.
LENGTHS = np.array([[0, 2], [T, 3]])


def _run(cell: Cell, params: Params, x: jax.Array, initial: Any, lengths: Any, reverse: bool) -> tuple[jax.Array, Any]:
    """The net with ``return_state=True``; the final state as an array (lstm: hidden and cell concatenated)."""
    if cell == "rnn":
        ys, h = nets.rnn(params, x, H, initial_state=initial, seq_lengths=lengths, reverse=reverse, return_state=True)
        return ys, h
    if cell == "gru":
        ys, h = nets.gru(params, x, H, initial_state=initial, seq_lengths=lengths, reverse=reverse, return_state=True)
        return ys, h
    state0 = None if initial is None else nets.LSTMState(initial, jnp.tanh(initial))
    ys, state = nets.lstm(params, x, H, initial_state=state0, seq_lengths=lengths, reverse=reverse, return_state=True)
    return ys, jnp.concatenate([state.hidden, state.cell], axis=-1)


def _initial_as_state(cell: Cell, h0: jax.Array) -> jax.Array:
    return jnp.concatenate([h0, jnp.tanh(h0)], axis=-1) if cell == "lstm" else h0


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_seq_lengths_match_each_sequence_run_alone(key: jax.Array, cell: Cell, reverse: bool, jit: bool) -> None:
    x = _normal(key, 1, (2, 2, T, F))
    h0 = _normal(key, 2, (2, 2, H))

    def net(params: Params, x: jax.Array) -> jax.Array:
        return _run(cell, params, x, None, None, False)[0]

    params = _randomize(trace(net, key, x), jax.random.fold_in(key, 7))

    def padded(params: Params, x: jax.Array, h0: jax.Array, lengths: jax.Array) -> tuple[jax.Array, Any]:
        return _run(cell, params, x, h0, lengths, reverse)

    run = jax.jit(padded) if jit else padded
    ys, final = run(params, x, h0, jnp.asarray(LENGTHS))
    assert ys.shape == (2, 2, T, H)
    for i, j in np.ndindex(LENGTHS.shape):
        n = int(LENGTHS[i, j])
        np.testing.assert_array_equal(np.asarray(ys[i, j, n:]), 0.0)  # padded steps output zeros
        if n == 0:  # nothing to run: the final state is the initial one
            _close(final[i, j], _initial_as_state(cell, h0[i, j]))
            continue
        alone_ys, alone_final = _run(cell, params, x[i, j, :n], h0[i, j], None, reverse)  # unpadded
        _close(ys[i, j, :n], alone_ys)
        _close(final[i, j], alone_final)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_full_seq_lengths_change_nothing(key: jax.Array, cell: Cell) -> None:
    x = _normal(key, 1, (B, T, F))

    def net(params: Params, x: jax.Array) -> jax.Array:
        return _run(cell, params, x, None, None, False)[0]

    params = _randomize(trace(net, key, x), key)
    full = jnp.full((B,), T, jnp.int32)
    for reverse in (False, True):
        ys, final = _run(cell, params, x, None, None, reverse)
        ys_full, final_full = _run(cell, params, x, None, full, reverse)
        _close(ys_full, ys)  # equal up to float rounding (XLA fuses the masked scan differently)
        _close(final_full, final)


def test_seq_lengths_unbatched_and_in_trace(key: jax.Array) -> None:
    x = _normal(key, 1, (T, F))
    net = nets.gru(_, _, H, seq_lengths=jnp.asarray(3))
    params = _randomize(trace(net, key, x), key)
    _close(net(params, x)[:3], nets.gru(params, x[:3], H))
    np.testing.assert_array_equal(np.asarray(net(params, x)[3:]), 0.0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_seq_lengths_out_of_range_under_jit_are_nan(key: jax.Array, cell: Cell) -> None:
    x = _normal(key, 1, (3, T, F))

    def net(params: Params, x: jax.Array) -> jax.Array:
        return _run(cell, params, x, None, None, False)[0]

    params = _randomize(trace(net, key, x), key)
    ys, final = jax.jit(lambda lengths: _run(cell, params, x, None, lengths, False))(jnp.array([-2, T + 3, 2]))
    assert np.isnan(np.asarray(ys[:2])).all() and np.isnan(np.asarray(final[:2])).all()  # never a plausible value
    alone_ys, alone_final = _run(cell, params, x[2, :2], None, None, False)
    _close(ys[2, :2], alone_ys)  # the sequence in range is untouched
    _close(final[2], alone_final)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_reverses_each_sequence_within_its_length(key: jax.Array, cell: Cell, jit: bool) -> None:
    x = _normal(key, 1, (4, T, F))
    lengths = np.array([0, 2, T, 3])
    params = _randomize(trace(nets.bidirectional(_, _, H, cell), key, x), key)

    def padded(params: Params, x: jax.Array, lengths: jax.Array) -> jax.Array:
        return nets.bidirectional(params, x, H, cell, seq_lengths=lengths)

    y = (jax.jit(padded) if jit else padded)(params, x, jnp.asarray(lengths))
    assert y.shape == (4, T, 2 * H)
    for b, n in enumerate(lengths.tolist()):
        np.testing.assert_array_equal(np.asarray(y[b, n:]), 0.0)
        if n:
            alone = x[b, :n]  # as Flax's flip_sequences: the backward net reads x[n-1], ..., x[0]
            backward = jnp.flip(_sequence(cell, params["backward"], jnp.flip(alone, axis=0)), axis=0)
            expected = jnp.concatenate([_sequence(cell, params["forward"], alone), backward], axis=-1)
            _close(y[b, :n], expected)


def test_bad_seq_lengths(key: jax.Array) -> None:
    params, x, _h0 = _setup(key, nets.lstm(_, _, H))
    with checking(False):
        with pytest.raises(ValueError, match=r"lstm: `seq_lengths` must have shape \(\*batch,\) = \(2,\) \(the axes of `x` before \(time, features\)\), got \(3,\)"):
            nets.lstm(params, x, H, seq_lengths=jnp.array([1, 2, 3]))
        with pytest.raises(TypeError, match=r"gru: `seq_lengths` must be an integer array of shape \(\*batch,\) = \(2,\), one length per sequence, got ArrayImpl of shape \(2,\) and dtype float32"):
            nets.gru(trace(nets.gru(_, _, H), key, x), x, H, seq_lengths=jnp.array([1.0, 2.0]))
        with pytest.raises(TypeError, match=r"rnn: `seq_lengths` must be an integer array .*, got list \[1, 2\]"):
            nets.rnn(trace(nets.rnn(_, _, H), key, x), x, H, seq_lengths=[1, 2])  # type: ignore[call-overload]  # the error under test
        with pytest.raises(ValueError, match=r"lstm: `seq_lengths` must be in \[0, 5\] \(the time axis of `x`\), got \[-1, 6\]"):
            nets.lstm(params, x, H, seq_lengths=jnp.array([6, -1]))
        with pytest.raises(ValueError, match=r"bidirectional: `seq_lengths` must be in \[0, 5\] \(the time axis of `x`\), got \[7\]"):
            nets.bidirectional(trace(nets.bidirectional(_, _, H), key, x), x, H, seq_lengths=jnp.array([7, 1]))
        with pytest.raises(ValueError, match=r"lstm: `seq_lengths` must have shape \(\*batch,\) = \(2,\)"):
            jax.jit(lambda lengths: nets.lstm(params, x, H, seq_lengths=lengths))(jnp.array([[1, 2]]))
    with pytest.raises((TypeError, ValueError), match=r"seq_lengths"):  # run-time checking names the argument too
        nets.lstm(params, x, H, seq_lengths=jnp.array([1.0, 2.0]))


# ------------------------------------------------------------------ narrow length dtypes


@pytest.mark.parametrize("jit", [False, True])
def test_uint8_seq_lengths_with_300_steps_do_not_wrap(key: jax.Array, jit: bool) -> None:
    x = _normal(key, 1, (2, 300, 2))
    params = _randomize(trace(nets.lstm(_, _, 2), key, x), key)

    def run(lengths: jax.Array) -> tuple[jax.Array, nets.LSTMState]:
        return nets.lstm(params, x, 2, seq_lengths=lengths, return_state=True)

    ys, state = (jax.jit(run) if jit else run)(jnp.array([250, 3], jnp.uint8))
    for b, n in enumerate([250, 3]):
        np.testing.assert_array_equal(np.asarray(ys[b, n:]), 0.0)  # before: steps 256.. ran again (t wrapped to 0..)
        alone_ys, alone = nets.lstm(params, x[b, :n], 2, return_state=True)
        _close(ys[b, :n], alone_ys, 1e-4)
        _close(state.hidden[b], alone.hidden, 1e-4)
        _close(state.cell[b], alone.cell, 1e-4)


@pytest.mark.parametrize("reverse", [False, True])
def test_int8_seq_lengths_with_200_steps_do_not_wrap(key: jax.Array, reverse: bool) -> None:
    x = _normal(key, 1, (2, 200, 2))
    params = _randomize(trace(nets.gru(_, _, 2), key, x), key)
    ys, final = nets.gru(params, x, 2, seq_lengths=jnp.array([127, 5], jnp.int8), reverse=reverse, return_state=True)
    for b, n in enumerate([127, 5]):
        np.testing.assert_array_equal(np.asarray(ys[b, n:]), 0.0)
        alone_ys, alone = nets.gru(params, x[b, :n], 2, reverse=reverse, return_state=True)
        _close(ys[b, :n], alone_ys, 1e-4)
        _close(final[b], alone, 1e-4)


def test_seq_lengths_out_of_range_are_named_with_checking_on_or_off(key: jax.Array) -> None:
    params, x, _h0 = _setup(key, nets.gru(_, _, H))
    for check in (True, False):
        with checking(check), pytest.raises(ValueError, match=r"^gru: `seq_lengths` must be in \[0, 5\] \(the time axis of `x`\), got \[255\]$"):
            nets.gru(params, x, H, seq_lengths=jnp.array([255, 1], jnp.uint8))


def test_seq_lengths_checkify_reports_the_bad_length(key: jax.Array) -> None:
    params, x, _h0 = _setup(key, nets.lstm(_, _, H))
    run = checkify.checkify(jax.jit(lambda lengths: nets.lstm(params, x, H, seq_lengths=lengths)))
    error, _ys = run(jnp.array([2, 9]))
    message = error.get()
    assert message is not None and message.startswith("lstm: `seq_lengths` must be in [0, 5] (the time axis of `x`), got 9")
    assert run(jnp.array([2, 5]))[0].get() is None


# ------------------------------------------------------------------------- the cell as a part


def _lstm_zeros(batch: tuple[int, ...]) -> nets.LSTMState:
    return nets.LSTMState(jnp.zeros((*batch, H)), jnp.zeros((*batch, H)))


@pytest.mark.parametrize("reverse", [False, True])
def test_recurrent_with_the_lstm_cell_is_lstm(key: jax.Array, reverse: bool) -> None:
    x = _normal(key, 1, (3, T, F))
    net = nets.recurrent(_, _, nets.lstm_cell(_, _, _, H), initial_state=_lstm_zeros((3,)))
    params = _randomize(trace(net, key, x), key)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, trace(nets.lstm(_, _, H), key, x))
    lengths = jnp.array([T, 2, 0])
    ys, state = nets.recurrent(
        params, x, nets.lstm_cell(_, _, _, H), initial_state=_lstm_zeros((3,)), seq_lengths=lengths, reverse=reverse, return_state=True
    )
    expected_ys, expected = nets.lstm(params, x, H, seq_lengths=lengths, reverse=reverse, return_state=True)
    _close(ys, expected_ys)
    assert isinstance(state, nets.LSTMState)
    _close(state.hidden, expected.hidden)
    _close(state.cell, expected.cell)


def test_recurrent_with_the_gru_and_rnn_cells(key: jax.Array) -> None:
    x = _normal(key, 1, (2, T, F))
    h0 = _normal(key, 2, (2, H))
    pairs: list[tuple[Any, Any]] = [(nets.gru_cell(_, _, _, H), nets.gru(_, _, H)), (nets.rnn_cell(_, _, _, H), nets.rnn(_, _, H))]
    for cell, sequence in pairs:
        params = _randomize(trace(sequence, key, x), key)
        ys, final = nets.recurrent(params, x, cell, initial_state=h0, return_state=True)
        expected_ys, expected = sequence(params, x, initial_state=h0, return_state=True)
        _close(ys, expected_ys)
        _close(final, expected)


def _counting_cell(params: Params, carry: tuple[jax.Array, jax.Array], x_t: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """A cell of one's own: a running sum scaled by a learned vector, and a step count."""
    total, count = carry
    scale = validate(params["scale"], (x_t.shape[-1],), jax.nn.initializers.ones)
    total = total + x_t * jnp.broadcast_to(scale, x_t.shape)
    return (total, count + 1), jnp.concatenate([total, count[..., None].astype(total.dtype)], axis=-1)


def test_recurrent_with_a_cell_of_ones_own(key: jax.Array) -> None:
    x = _normal(key, 1, (2, T, F))
    initial = (jnp.zeros((2, F)), jnp.zeros((2,), jnp.int32))
    params = trace(nets.recurrent(_, _, _counting_cell, initial_state=initial), key, x)
    assert jax.tree.map(jnp.shape, params) == {"scale": (F,)}
    ys, (total, count) = jax.jit(
        lambda x, n: nets.recurrent(params, x, _counting_cell, initial_state=initial, seq_lengths=n, return_state=True)
    )(x, jnp.array([T, 3]))
    assert ys.shape == (2, T, F + 1) and count.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(count), [T, 3])
    _close(total[1], jnp.sum(x[1, :3], axis=0))
    _close(ys[0, :, :F], jnp.cumsum(x[0], axis=0))
    np.testing.assert_array_equal(np.asarray(ys[1, 3:]), 0.0)


def test_recurrent_cell_options_reach_trace(key: jax.Array) -> None:
    x = _normal(key, 1, (2, T, F))
    inits = nets.cell_initializers(w_hidden=jax.nn.initializers.zeros, bias=jax.nn.initializers.ones)
    cell = nets.gru_cell(_, _, _, H, initializers=inits)
    params = trace(nets.recurrent(_, _, cell, initial_state=jnp.zeros((2, H))), key, x)
    np.testing.assert_array_equal(np.asarray(params["w_hidden"]), 0.0)
    np.testing.assert_array_equal(np.asarray(params["bias_input"]), 1.0)
    np.testing.assert_array_equal(np.asarray(params["bias_hidden"]), 1.0)


def test_recurrent_bad_input(key: jax.Array) -> None:
    params, x, h0 = _setup(key, nets.gru(_, _, H))
    cell = nets.gru_cell(_, _, _, H)
    with checking(False):
        with pytest.raises(TypeError, match=r"^recurrent: `cell` must be a function \(params, carry, x_t\) -> \(new_carry, y_t\), such as nets.lstm_cell\(_, _, _, hidden_size\), got str 'gru'$"):
            nets.recurrent(params, x, "gru", initial_state=h0)  # type: ignore[call-overload]  # the error under test
        with pytest.raises(ValueError, match=r"^recurrent: every array of `initial_state` must start with the batch axes of `x` \(2,\), got ArrayImpl of shape \(3, 4\) and dtype float32 at `initial_state\[1\]`$"):
            nets.recurrent(params, x, cell, initial_state=(h0, jnp.zeros((3, H))))
        with pytest.raises(ValueError, match=r"^recurrent: `initial_state` must hold at least one array"):
            nets.recurrent(params, x, cell, initial_state=())
        with pytest.raises(TypeError, match=r"^recurrent: `cell` must return a pair \(new_carry, y_t\), got an array of shape \(2, 4\) and dtype float32"):
            nets.recurrent(params, x, lambda p, h, x_t: h, initial_state=h0)
        with pytest.raises(TypeError, match=r"^recurrent: the carry `cell` returns must have the shapes of `initial_state` \[\(2, 4\)\], got \[\(2, 4\), \(2, 4\)\]"):
            nets.recurrent(params, x, lambda p, h, x_t: ((h, h), h), initial_state=h0)
        with pytest.raises(TypeError, match=r"^recurrent: the output `cell` returns must start with the batch axes of `x` \(2,\), got an array of shape \(4,\)"):
            nets.recurrent(params, x, lambda p, h, x_t: (h, h[0]), initial_state=h0)
        with pytest.raises(ValueError, match=r"^recurrent: `seq_lengths` must be in \[0, 5\] \(the time axis of `x`\), got \[6\]$"):
            nets.recurrent(params, x, cell, initial_state=h0, seq_lengths=jnp.array([6, 1]))


# ---------------------------------------------------------------------- initializer options


def test_lstm_initializer_options(key: jax.Array) -> None:
    x = _normal(key, 1, (B, T, F))
    init = jax.nn.initializers
    params = trace(
        nets.lstm(_, _, H, initializers=nets.cell_initializers(init.zeros, init.ones, init.constant(0.5))),
        key,
        x,
    )
    np.testing.assert_array_equal(_np(params, "w_input"), np.zeros((F, 4 * H)))
    np.testing.assert_array_equal(_np(params, "w_hidden"), np.ones((H, 4 * H)))
    np.testing.assert_array_equal(_np(params, "bias"), np.full(4 * H, 0.5))


@pytest.mark.parametrize("forget", [0.0, 1.0])
def test_lstm_forget_gate_bias_by_gate(key: jax.Array, forget: float) -> None:
    x = _normal(key, 1, (B, T, F))
    zeros = jax.nn.initializers.zeros
    bias = nets.gate_initializer(zeros, jax.nn.initializers.constant(forget), zeros, zeros)
    params = trace(nets.lstm(_, _, H, initializers=nets.cell_initializers(bias=bias)), key, x)
    np.testing.assert_array_equal(_np(params, "bias"), np.r_[np.zeros(H), np.full(H, forget), np.zeros(2 * H)])


def test_gru_initializer_options_set_both_biases(key: jax.Array) -> None:
    x = _normal(key, 1, (B, T, F))
    inits = nets.cell_initializers(w_input=jax.nn.initializers.zeros, bias=jax.nn.initializers.ones)
    params = trace(nets.gru(_, _, H, initializers=inits), key, x)
    np.testing.assert_array_equal(_np(params, "bias_input"), 1.0)
    np.testing.assert_array_equal(_np(params, "bias_hidden"), 1.0)
    np.testing.assert_array_equal(_np(params, "w_input"), 0.0)
    rnn_params = trace(nets.rnn(_, _, H, initializers=inits), key, x)
    np.testing.assert_array_equal(_np(rnn_params, "bias"), 1.0)
    # without a bias initializer each cell keeps its own: zeros, the LSTM's forget gate at 1
    weights_only = nets.cell_initializers(w_input=jax.nn.initializers.zeros)
    np.testing.assert_array_equal(_np(trace(nets.gru(_, _, H, initializers=weights_only), key, x), "bias_hidden"), 0.0)
    lstm_bias = _np(trace(nets.lstm(_, _, H, initializers=weights_only), key, x), "bias")
    np.testing.assert_array_equal(lstm_bias, np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])


def test_gate_initializer_gives_one_orthogonal_block_per_gate(key: jax.Array) -> None:
    x = _normal(key, 1, (B, T, F))
    per_gate = nets.gate_initializer(*[nets.recurrent_initializer] * 3)
    w = _np(trace(nets.gru(_, _, H, initializers=nets.cell_initializers(w_hidden=per_gate)), key, x), "w_hidden")
    for g in range(3):
        block = w[:, g * H : (g + 1) * H]
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-5)
    assert not np.allclose(w[:, :H], w[:, H : 2 * H])  # each gate its own key
    whole = _np(trace(nets.gru(_, _, H), key, x), "w_hidden")  # the default: orthogonal rows of (H, 3H)
    np.testing.assert_allclose(whole @ whole.T, np.eye(H), atol=1e-5)
    assert not np.allclose(whole[:, :H] @ whole[:, :H].T, np.eye(H), atol=1e-3)


def test_initializer_options_bad_input(key: jax.Array) -> None:
    x = _normal(key, 1, (B, T, F))
    with pytest.raises(TypeError, match=r"^gate_initializer: expected one initializer per gate, got \(\)$"):
        nets.gate_initializer()
    with pytest.raises(ValueError, match=r"gate_initializer: the last axis of the leaf must split into 3 equal gates, got shape \(4, 16\)"):
        trace(nets.lstm(_, _, H, initializers=nets.cell_initializers(w_hidden=nets.gate_initializer(*[nets.recurrent_initializer] * 3))), key, x)
    with pytest.raises(TypeError, match=r"^cell_initializers: `bias` must be an initializer \(key, shape, dtype\) -> Array, got float 1.0$"):
        nets.cell_initializers(bias=1.0)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the error under test
    with checking(False), pytest.raises(TypeError, match=r"^lstm: `initializers` must come from nets.cell_initializers\(...\), got function"):
        trace(nets.lstm(_, _, H, initializers=jax.nn.initializers.zeros), key, x)  # type: ignore[call-overload]  # the error under test


# ------------------------------------------------------------------ bidirectional final states


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_returns_both_final_states(key: jax.Array, cell: Cell) -> None:
    x = _normal(key, 1, (4, T, F))
    params = _randomize(trace(nets.bidirectional(_, _, H, cell), key, x), key)
    lengths = jnp.array([0, 2, T, 3])
    ys, (forward, backward) = jax.jit(
        lambda x, n: nets.bidirectional(params, x, H, cell, seq_lengths=n, return_state=True)
    )(x, lengths)
    _close(ys, nets.bidirectional(params, x, H, cell, seq_lengths=lengths))
    expected_forward = _run(cell, params["forward"], x, None, lengths, False)[1]
    expected_backward = _run(cell, params["backward"], x, None, lengths, True)[1]

    def flat(state: Any) -> jax.Array:
        return jnp.concatenate([state.hidden, state.cell], axis=-1) if cell == "lstm" else state

    assert isinstance(forward, nets.LSTMState) == (cell == "lstm")
    _close(flat(forward), expected_forward)
    _close(flat(backward), expected_backward)
    _close(flat(forward)[2, :H], ys[2, -1, :H])  # full length: forward ends at the last step
    _close(flat(backward)[1, :H], ys[1, 0, H:])  # backward ends at step 0


# ------------------------------------------------------------------- Flax's cells, same weights


def _flax_rnn(cell: Any, x: jax.Array, key: jax.Array, lengths: jax.Array) -> tuple[dict[str, Any], Any, jax.Array]:
    """Flax ``nn.RNN(cell)`` with random (not zero) biases: its params, final carry and outputs."""
    nn = pytest.importorskip("flax.linen")
    net = nn.RNN(cell, return_carry=True)
    variables = net.init(key, x)
    params = _randomize(variables["params"], jax.random.fold_in(key, 3))
    carry, ys = net.apply({"params": params}, x, seq_lengths=lengths)
    return cast(dict[str, Any], params)["cell"], carry, ys


def test_lstm_matches_flax_lstm_cell(key: jax.Array) -> None:
    nn = pytest.importorskip("flax.linen")
    x = _normal(key, 1, (3, T, F))
    lengths = jnp.array([T, 2, 4])
    p, (c, h), flax_ys = _flax_rnn(nn.LSTMCell(H), x, key, lengths)
    params = {
        "w_input": jnp.concatenate([p[g]["kernel"] for g in ("ii", "if", "ig", "io")], axis=-1),
        "w_hidden": jnp.concatenate([p[g]["kernel"] for g in ("hi", "hf", "hg", "ho")], axis=-1),
        "bias": jnp.concatenate([p[g]["bias"] for g in ("hi", "hf", "hg", "ho")], axis=-1),
    }
    ys, state = nets.lstm(params, x, H, seq_lengths=lengths, return_state=True)
    for b, n in enumerate(lengths.tolist()):
        _close(ys[b, :n], flax_ys[b, :n])  # Flax leaves the padded steps unzeroed
    _close(state.hidden, h)
    _close(state.cell, c)


def test_gru_matches_flax_gru_cell(key: jax.Array) -> None:
    nn = pytest.importorskip("flax.linen")
    x = _normal(key, 1, (3, T, F))
    lengths = jnp.array([T, 1, 3])
    p, h, flax_ys = _flax_rnn(nn.GRUCell(H), x, key, lengths)
    params = {
        "w_input": jnp.concatenate([p[g]["kernel"] for g in ("ir", "iz", "in")], axis=-1),
        "w_hidden": jnp.concatenate([p[g]["kernel"] for g in ("hr", "hz", "hn")], axis=-1),
        "bias_input": jnp.concatenate([p[g]["bias"] for g in ("ir", "iz", "in")], axis=-1),
        "bias_hidden": jnp.concatenate([jnp.zeros((2 * H,)), p["hn"]["bias"]], axis=-1),  # Flax: hr, hz have no bias
    }
    ys, final = nets.gru(params, x, H, seq_lengths=lengths, return_state=True)
    for b, n in enumerate(lengths.tolist()):
        _close(ys[b, :n], flax_ys[b, :n])
    _close(final, h)


def test_flax_lstm_init_is_matched_by_the_options(key: jax.Array) -> None:
    """Flax's LSTMCell init: lecun-normal input kernels, one orthogonal (H, H) kernel per gate,
    zero biases (forget gate too); zephyr's options give the same laws, leaf by leaf."""
    nn = pytest.importorskip("flax.linen")
    x = _normal(key, 1, (2, T, F))
    flax = nn.RNN(nn.LSTMCell(H)).init(key, x)["params"]["cell"]
    zeros = jax.nn.initializers.zeros
    ours = trace(
        nets.lstm(_, _, H, initializers=nets.cell_initializers(w_hidden=nets.gate_initializer(*[nets.recurrent_initializer] * 4), bias=zeros)),
        key,
        x,
    )
    for g, gate in enumerate(("hi", "hf", "hg", "ho")):
        theirs = np.asarray(flax[gate]["kernel"])
        mine = _np(ours, "w_hidden")[:, g * H : (g + 1) * H]
        for block in (theirs, mine):
            np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-5)
        np.testing.assert_array_equal(np.asarray(flax[gate]["bias"]), _np(ours, "bias")[g * H : (g + 1) * H])
    big = 4096  # the input kernels' spread: variance 1 / features in both
    wide_x = jnp.zeros((1, 2, big))
    flax_big = nn.RNN(nn.LSTMCell(H)).init(key, wide_x)["params"]["cell"]["ii"]["kernel"]
    ours_big = cast(jax.Array, trace(nets.lstm(_, _, H), key, wide_x)["w_input"])
    assert abs(float(jnp.std(flax_big)) * np.sqrt(big) - float(jnp.std(ours_big)) * np.sqrt(big)) < 0.1
