"""Registry cases for the recurrent nets."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp

from tests.nets.registry import NetCase
from zephyr import nets, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params

CarryAndX = tuple[jax.Array, jax.Array]


def _x(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    return lambda key: jax.random.normal(key, shape)


def _carry_and_x(batch: tuple[int, ...], hidden: int, features: int) -> Callable[[jax.Array], CarryAndX]:
    def make(key: jax.Array) -> CarryAndX:
        kh, kx = jax.random.split(key)
        return jax.random.normal(kh, (*batch, hidden)), jax.random.normal(kx, (*batch, features))

    return make


def _rnn_cell(params: Params, x: CarryAndX) -> jax.Array:
    return nets.rnn_cell(params, x[0], x[1], 4)[1]


def _gru_cell(params: Params, x: CarryAndX) -> jax.Array:
    return nets.gru_cell(params, x[0], x[1], 4)[1]


def _lstm_cell(params: Params, x: CarryAndX) -> jax.Array:
    h, x_t = x
    state, y = nets.lstm_cell(params, nets.LSTMState(h, jnp.tanh(h)), x_t, 4)
    return jnp.concatenate([y, state.cell], axis=-1)


def _lstm_with_state(params: Params, x: jax.Array) -> jax.Array:
    ys, state = nets.lstm(params, x, 4, reverse=True, return_state=True)
    return ys + jnp.broadcast_to(jnp.expand_dims(state.cell, -2), ys.shape)


LengthsAndX = tuple[jax.Array, jax.Array]


def _lengths_and_x(shape: tuple[int, ...]) -> Callable[[jax.Array], LengthsAndX]:
    """``x`` and one length per sequence, 0 to ``time`` (a vmap sweep stacks both)."""

    def make(key: jax.Array) -> LengthsAndX:
        lengths = jax.random.randint(jax.random.fold_in(key, 1), shape[:-2], 0, shape[-2] + 1)
        return lengths, jax.random.normal(key, shape)

    return make


def _lstm_seq_lengths(params: Params, inputs: LengthsAndX) -> jax.Array:
    lengths, x = inputs
    ys, state = nets.lstm(params, x, 4, seq_lengths=lengths, reverse=True, return_state=True)
    return ys + jnp.broadcast_to(jnp.expand_dims(state.cell, -2), ys.shape)


def _gru_seq_lengths(params: Params, inputs: LengthsAndX) -> jax.Array:
    return nets.gru(params, inputs[1], 4, seq_lengths=inputs[0])


def _bidirectional_seq_lengths(params: Params, inputs: LengthsAndX) -> jax.Array:
    return nets.bidirectional(params, inputs[1], 4, "rnn", seq_lengths=inputs[0])


def _recurrent_lstm_cell(params: Params, inputs: LengthsAndX) -> jax.Array:
    lengths, x = inputs
    zeros = jnp.zeros((*x.shape[:-2], 4), x.dtype)
    cell = nets.lstm_cell(_, _, _, 4, initializers=nets.cell_initializers(bias=jax.nn.initializers.zeros))
    ys, state = nets.recurrent(params, x, cell, initial_state=nets.LSTMState(zeros, zeros), seq_lengths=lengths, return_state=True)
    return ys + jnp.broadcast_to(jnp.expand_dims(cast(nets.LSTMState, state).cell.astype(ys.dtype), -2), ys.shape)  # the carry keeps x's dtype


def _sum_cell(params: Params, carry: jax.Array, x_t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A cell of one's own: a leaky running sum with a learned per-feature decay."""
    decay = validate(params["decay"], (x_t.shape[-1],), jax.nn.initializers.constant(0.5))
    new = carry * jax.nn.sigmoid(jnp.broadcast_to(decay, carry.shape)).astype(carry.dtype) + x_t
    return new, jnp.tanh(new)


def _recurrent_own_cell(params: Params, x: jax.Array) -> jax.Array:
    return nets.recurrent(params, x, _sum_cell, initial_state=jnp.zeros(x.shape[:-2] + x.shape[-1:], x.dtype), reverse=True)


def _lstm_flax_init(params: Params, x: jax.Array) -> jax.Array:
    per_gate = nets.gate_initializer(*[nets.recurrent_initializer] * 4)
    return nets.lstm(params, x, 4, initializers=nets.cell_initializers(w_hidden=per_gate, bias=jax.nn.initializers.zeros))


def _uint8_lengths(params: Params, inputs: LengthsAndX) -> jax.Array:
    ys, state = nets.lstm(params, inputs[1], 4, seq_lengths=inputs[0].astype(jnp.uint8), return_state=True)
    return ys + jnp.broadcast_to(jnp.expand_dims(state.hidden, -2), ys.shape)


def _bidirectional_state(params: Params, inputs: LengthsAndX) -> jax.Array:
    ys, (forward, backward) = nets.bidirectional(params, inputs[1], 4, seq_lengths=inputs[0], return_state=True)
    finals = jnp.concatenate([cast(nets.LSTMState, forward).cell, cast(nets.LSTMState, backward).cell], axis=-1)
    return ys + jnp.broadcast_to(jnp.expand_dims(finals, -2), ys.shape)


CASES = [
    NetCase("rnn_cell", _rnn_cell, _carry_and_x((2,), 4, 3)),
    NetCase("lstm_cell", _lstm_cell, _carry_and_x((2,), 4, 3)),
    NetCase("gru_cell", _gru_cell, _carry_and_x((2,), 4, 3)),
    NetCase("rnn", nets.rnn(_, _, 4), _x((2, 5, 3))),
    NetCase("lstm", nets.lstm(_, _, 4), _x((2, 5, 3))),
    NetCase("lstm_unbatched", nets.lstm(_, _, 4), _x((5, 3))),
    NetCase("lstm_reverse_state", _lstm_with_state, _x((2, 5, 3))),
    NetCase("gru", nets.gru(_, _, 4), _x((2, 3, 5, 3))),
    NetCase("bidirectional_lstm", nets.bidirectional(_, _, 4), _x((2, 5, 3))),
    NetCase("bidirectional_gru", nets.bidirectional(_, _, 4, "gru"), _x((2, 5, 3))),
    NetCase("bidirectional_rnn", nets.bidirectional(_, _, 4, "rnn"), _x((2, 5, 3))),
    NetCase("lstm_seq_lengths", _lstm_seq_lengths, _lengths_and_x((3, 5, 3))),
    NetCase("gru_seq_lengths", _gru_seq_lengths, _lengths_and_x((2, 3, 5, 3))),
    NetCase("bidirectional_seq_lengths", _bidirectional_seq_lengths, _lengths_and_x((3, 5, 3))),
    NetCase("recurrent_lstm_cell", _recurrent_lstm_cell, _lengths_and_x((3, 5, 3))),
    NetCase("recurrent_own_cell", _recurrent_own_cell, _x((2, 5, 3))),
    NetCase("lstm_flax_init", _lstm_flax_init, _x((2, 5, 3))),
    NetCase("lstm_uint8_lengths", _uint8_lengths, _lengths_and_x((3, 5, 3))),
    NetCase("bidirectional_state", _bidirectional_state, _lengths_and_x((3, 5, 3))),
]
