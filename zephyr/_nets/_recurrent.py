"""Recurrent nets: ``rnn``, ``lstm``, ``gru`` cells, ``recurrent`` (any cell over a sequence in one
``lax.scan``), the sequence versions of the three cells built on the same loop, and
``bidirectional``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, TypedDict, cast, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.nn.initializers import zeros
from jaxtyping import Float, Integer

from .._checks import check_option, describe_value, min_rank, positive_int
from .._flexible import flexible
from ..core._api import validate
from ..core._initializers import default_initializer
from ..core._types import DType, Initializer, Params, PRNGKey, Shape
from ._dtypes import add_trailing, compute_dtype
from ._ranges import in_range, wide

_orthogonal = jax.nn.initializers.orthogonal()



def recurrent_initializer(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """Orthogonal rows (``jax.nn.initializers.orthogonal``): the usual init of hidden-to-hidden weights.

    Computed in float32 (the QR decomposition has no bfloat16 kernel), then cast to ``dtype``.

    >>> import jax, jax.numpy as jnp
    >>> w = recurrent_initializer(jax.random.key(0), (3, 6))
    >>> bool(jnp.allclose(w @ w.T, jnp.eye(3), atol=1e-5))
    True
    """
    return _orthogonal(key, shape, jnp.float32).astype(dtype)


def lstm_bias_initializer(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
    """Zeros, but ones for the forget gate (the second quarter): the LSTM keeps its memory at first.

    >>> import jax
    >>> lstm_bias_initializer(jax.random.key(0), (8,)).tolist()
    [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    del key
    hidden = shape[-1] // 4
    gate = jax.lax.iota(jnp.int32, shape[-1]) // hidden
    return jnp.where(gate == 1, jax.lax.full(shape, 1, dtype), jax.lax.full(shape, 0, dtype))


def gate_initializer(*initializers: Initializer) -> Initializer:
    """An initializer for a leaf whose last axis holds ``len(initializers)`` gates side by side:
    gate ``i`` (slice ``i`` of the last axis cut in equal parts) comes from ``initializers[i]``,
    each with its own key.

    For the LSTM (gates input, forget, cell, output) and the GRU (reset, update, candidate) it
    sets a per-gate bias (a forget-gate bias of 0 or 1) or a per-gate recurrent kernel, as
    Flax's ``LSTMCell`` and ``GRUCell`` initialize one ``(hidden, hidden)`` orthogonal kernel
    per gate.

    Example:
        >>> import jax
        >>> from jax.nn.initializers import constant, zeros
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> bias = nets.gate_initializer(zeros, constant(2.0), zeros, zeros)
        >>> bias(jax.random.key(0), (8,)).tolist()  # the forget gate (2nd quarter) at 2
        [0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]
        >>> x = jax.numpy.ones((5, 3))  # as Flax's LSTMCell: orthogonal per gate, zero biases
        >>> per_gate = nets.gate_initializer(*[nets.recurrent_initializer] * 4)
        >>> flax_like = nets.lstm(_, _, 4, initializers=nets.cell_initializers(w_hidden=per_gate, bias=zeros))
        >>> params = trace(flax_like, jax.random.key(0), x)
        >>> float(abs(params["bias"]).max())
        0.0
    """
    if not initializers or not all(callable(f) for f in initializers):
        raise TypeError(f"gate_initializer: expected one initializer per gate, got {initializers!r}")
    gates = len(initializers)

    def initialize(key: PRNGKey, shape: Shape, dtype: DType = jnp.float32) -> Array:
        width = shape[-1] if shape else 0
        if not shape or width % gates:
            raise ValueError(
                f"gate_initializer: the last axis of the leaf must split into {gates} equal gates, got shape {tuple(shape)}"
            )
        part = (*shape[:-1], width // gates)
        keys = jax.random.split(key, gates)
        return jnp.concatenate([f(keys[i], part, dtype) for i, f in enumerate(initializers)], axis=-1)

    return initialize


@dataclass(frozen=True)
class CellInitializers:
    """The initializers of a recurrent cell's leaves: see :func:`cell_initializers`."""

    w_input: Initializer = default_initializer
    w_hidden: Initializer = recurrent_initializer
    bias: Initializer | None = None  # None: the cell's own (zeros; an LSTM's forget gate at 1)


def cell_initializers(
    w_input: Initializer = default_initializer,
    w_hidden: Initializer = recurrent_initializer,
    bias: Initializer | None = None,
) -> CellInitializers:
    """How the leaves of a recurrent cell are initialized: one value for ``rnn``, ``lstm``,
    ``gru`` and their cells (``initializers=``), as :func:`projections` is for attention.

    Args:
        w_input: initializer of ``w_input`` (default: truncated normal, variance ``1 / features``).
        w_hidden: initializer of ``w_hidden`` (default: :func:`recurrent_initializer`, orthogonal
            rows; ``gate_initializer(*[recurrent_initializer] * gates)`` gives one orthogonal
            block per gate, as Flax).
        bias: initializer of the biases (``bias``; the GRU's ``bias_input`` and ``bias_hidden``);
            default None, the cell's own: zeros, and for the LSTM :func:`lstm_bias_initializer`
            (the forget gate at 1; Flax's ``LSTMCell`` uses zeros). :func:`gate_initializer`
            sets it gate by gate.

    Returns:
        A :class:`CellInitializers` value (frozen, hashable).

    Example:
        >>> import jax
        >>> from zephyr import nets
        >>> flax_lstm = nets.cell_initializers(
        ...     w_hidden=nets.gate_initializer(*[nets.recurrent_initializer] * 4), bias=jax.nn.initializers.zeros
        ... )
        >>> flax_lstm.bias is jax.nn.initializers.zeros
        True
    """
    for name, f in (("w_input", w_input), ("w_hidden", w_hidden), ("bias", bias)):
        if not (callable(f) or (name == "bias" and f is None)):
            raise TypeError(f"cell_initializers: `{name}` must be an initializer (key, shape, dtype) -> Array, got {describe_value(f)}")
    return CellInitializers(w_input, w_hidden, bias)


class RNNParams(TypedDict):
    """Params of :func:`rnn_cell` and :func:`rnn`."""

    w_input: Float[Array, "features hidden_size"]
    w_hidden: Annotated[Float[Array, "hidden_size hidden_size"], recurrent_initializer]
    bias: Float[Array, " hidden_size"]


class LSTMParams(TypedDict):
    """Params of :func:`lstm_cell` and :func:`lstm`; gates in the order input, forget, cell, output."""

    w_input: Float[Array, "features 4*hidden_size"]
    w_hidden: Annotated[Float[Array, "hidden_size 4*hidden_size"], recurrent_initializer]
    bias: Annotated[Float[Array, " 4*hidden_size"], lstm_bias_initializer]


class GRUParams(TypedDict):
    """Params of :func:`gru_cell` and :func:`gru`; gates in the order reset, update, candidate."""

    w_input: Float[Array, "features 3*hidden_size"]
    w_hidden: Annotated[Float[Array, "hidden_size 3*hidden_size"], recurrent_initializer]
    bias_input: Float[Array, " 3*hidden_size"]
    bias_hidden: Float[Array, " 3*hidden_size"]


class LSTMState(NamedTuple):
    """The carry of an LSTM: ``hidden`` (the output ``h``) and ``cell`` (``c``), each ``(*batch, hidden_size)``."""

    hidden: Float[Array, "*batch hidden_size"]
    cell: Float[Array, "*batch hidden_size"]


class BidirectionalParams(TypedDict):
    """Params of :func:`bidirectional`: ``forward`` and ``backward``, each the params of the chosen net."""

    forward: RNNParams | LSTMParams | GRUParams
    backward: RNNParams | LSTMParams | GRUParams


# ----------------------------------------------------------------------------------- helpers


class _Weights(NamedTuple):
    """A built-in cell's leaves in the computation dtype: ``biases`` is ``(bias,)``, or the GRU's
    ``(bias_input, bias_hidden)``; ``activation`` is the RNN's."""

    w_input: Array
    w_hidden: Array
    biases: tuple[Array, ...]
    compute: np.dtype[Any]
    activation: Callable[[Array], Array]


def _project_input(weights: _Weights, x: Array) -> Array:
    """``x @ w_input + bias_input``, for one step or a whole sequence at once."""
    return add_trailing(jnp.matmul(x.astype(weights.compute), weights.w_input), weights.biases[0])


def _hidden(weights: _Weights, h: Array) -> Array:
    y = jnp.matmul(h, weights.w_hidden)
    return add_trailing(y, weights.biases[1]) if len(weights.biases) > 1 else y


def _rnn_update(weights: _Weights, h: Array, px: Array) -> Array:
    return weights.activation(px + _hidden(weights, h)).astype(weights.compute)


def _lstm_update(weights: _Weights, carry: LSTMState, px: Array) -> LSTMState:
    gates = px + _hidden(weights, carry.hidden)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * carry.cell + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return LSTMState(h.astype(weights.compute), c.astype(weights.compute))


def _gru_update(weights: _Weights, h: Array, px: Array) -> Array:
    hidden = _hidden(weights, h)
    xr, xz, xn = jnp.split(px, 3, axis=-1)
    hr, hz, hn = jnp.split(hidden, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return ((1.0 - z) * n + z * h).astype(weights.compute)


class _Kind(NamedTuple):
    """What sets a built-in cell apart: its gates side by side in the weights, its bias leaves and
    their default initializer, its update ``(weights, carry, x_t @ w_input + bias) -> carry``."""

    gates: int
    biases: tuple[str, ...]
    default_bias: Initializer
    update: Callable[[_Weights, Any, Array], Any]
    lstm: bool = False  # the carry is an LSTMState


_RNN = _Kind(1, ("bias",), zeros, _rnn_update)
_LSTM = _Kind(4, ("bias",), lstm_bias_initializer, _lstm_update, lstm=True)
_GRU = _Kind(3, ("bias_input", "bias_hidden"), zeros, _gru_update)


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2  # pyright: ignore[reportUnknownArgumentType]  # any tuple


class _Cell(NamedTuple):
    """A built-in cell as one public net runs it (``who``, for messages): its kind and the
    hyperparameters that ``rnn_cell`` ... ``bidirectional`` pass on."""

    who: str
    kind: _Kind
    hidden_size: int
    initializers: CellInitializers
    dtype: DType | None
    param_dtype: DType | None
    activation: Callable[[Array], Array] = jnp.tanh

    def prepare(
        self, params: RNNParams | LSTMParams | GRUParams, x: Array, carry_name: str, carry: Any, batch: tuple[int, ...]
    ) -> tuple[_Weights, Any]:
        """The leaves for inputs ``x`` ``(*batch, [time,] features)``, declared and checked, and
        the carry ``carry_name`` checked against ``(*batch, hidden_size)``, both in the compute dtype."""
        who, kind, hidden_size, initializers = self.who, self.kind, self.hidden_size, self.initializers
        if not isinstance(initializers, CellInitializers):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
            raise TypeError(f"{who}: `initializers` must come from nets.cell_initializers(...), got {describe_value(initializers)}")
        bias = kind.default_bias if initializers.bias is None else initializers.bias
        leaves = cast(dict[str, Array], params)  # the kind's leaf names
        width = kind.gates * hidden_size
        w_input = validate(leaves["w_input"], (x.shape[-1], width), initializers.w_input, dtype=self.param_dtype)
        w_hidden = validate(leaves["w_hidden"], (hidden_size, width), initializers.w_hidden, dtype=self.param_dtype)
        biases = [validate(leaves[name], (width,), bias, dtype=self.param_dtype) for name in kind.biases]
        compute = compute_dtype(self.dtype, x, w_input)
        as_compute = tuple(b.astype(compute) for b in biases)
        weights = _Weights(w_input.astype(compute), w_hidden.astype(compute), as_compute, compute, self.activation)
        return weights, _carry(who, carry_name, carry, (*batch, hidden_size), compute, kind.lstm)


def _carry(who: str, name: str, value: Any, shape: tuple[int, ...], compute: np.dtype[Any], lstm: bool) -> Any:
    """A cell's carry checked against ``shape`` ``(*batch, hidden_size)`` (each half of an
    ``LSTMState`` with ``lstm``) and cast to ``compute``; None: zeros."""
    if value is None:
        zero = jax.lax.full(shape, 0, compute)
        return LSTMState(zero, zero) if lstm else zero
    if lstm:
        if not _is_pair(value):
            raise TypeError(f"{who}: `{name}` must be an LSTMState(hidden, cell), got {type(value).__name__}")
        halves = (_carry(who, f"{name}.{field}", v, shape, compute, False) for field, v in zip(LSTMState._fields, value))
        return LSTMState(*halves)
    if tuple(value.shape) != shape:
        raise ValueError(f"{who}: `{name}` must have shape (*batch, hidden_size) = {shape}, got {tuple(value.shape)}")
    return value.astype(compute)


def _output(carry: Any) -> Array:
    """What a built-in cell outputs: ``h`` (an LSTM's ``carry.hidden``)."""
    return carry.hidden if isinstance(carry, LSTMState) else carry


def _cell(cell: _Cell, params: RNNParams | LSTMParams | GRUParams, carry: Any, x_t: Array) -> tuple[Any, Array]:
    """One step of a built-in cell: ``(new_carry, h)``."""
    positive_int(cell.who, "hidden_size", cell.hidden_size)
    min_rank(cell.who, "x_t", x_t.shape, 1, "(features,)")
    weights, state = cell.prepare(params, x_t, "carry", carry, tuple(x_t.shape[:-1]))
    new = cell.kind.update(weights, state, _project_input(weights, x_t))
    return new, _output(new)


class _Lengths(NamedTuple):
    """``seq_lengths`` checked: the lengths and, per sequence, whether its length is in ``[0, time]``."""

    lengths: Array
    ok: Array


def _expand(mask: Array, like: Array) -> Array:
    """``mask`` ``(*batch,)`` with trailing unit axes to broadcast against ``like`` ``(*batch, ...)``."""
    return jax.lax.expand_dims(mask, tuple(range(mask.ndim, like.ndim)))


def _scan(
    step: Callable[[Any, Array], tuple[Any, Array]],
    initial: Any,
    xs: Array,
    reverse: bool,
    lengths: _Lengths | None = None,
) -> tuple[Any, Array]:
    """Run ``step(carry, x_t) -> (new_carry, y_t)`` over axis -2 of ``xs`` ``(*batch, time, f)``.

    Every leaf of the carry and ``y_t`` is ``(*batch, ...)``; the outputs are ``y_t`` stacked on
    a time axis after the batch axes. With ``lengths`` (``(*batch,)`` ints), a step ``t >=
    lengths`` is padding: it leaves the carry unchanged and outputs zeros. Forward, the carry
    after the last step is then the carry after step ``lengths - 1``; reversed, the padded
    steps come first and pass the initial carry on to step ``lengths - 1``, so each sequence
    runs backward within its length. The time index is compared in a wide dtype (uint8
    lengths and 300 steps do not wrap). A sequence whose length is outside ``[0, time]`` (only
    possible under a transformation) has NaN outputs and a NaN final carry (its float leaves).
    """
    time, batch_rank = xs.shape[-2], xs.ndim - 2
    steps = jnp.moveaxis(xs, -2, 0)
    if lengths is None:
        final, ys = jax.lax.scan(step, initial, steps, reverse=reverse)
        return final, jnp.moveaxis(ys, 0, batch_rank)

    # valid[t, *b] = t < lengths[*b], compared in int32 (or int64) whatever the lengths' dtype.
    t = jax.lax.iota(jnp.int32, time).reshape((time,) + (1,) * lengths.lengths.ndim)
    valid = t < jnp.expand_dims(wide(lengths.lengths), 0)

    def masked_step(carry: Any, inputs: tuple[Array, Array]) -> tuple[Any, Array]:
        x_t, keep = inputs
        new, y = step(carry, x_t)
        def keep_or_old(n: Array, c: Array) -> Array:
            return jnp.where(_expand(keep, n), n, c)

        kept = jax.tree.map(keep_or_old, new, carry)
        return kept, jnp.where(_expand(keep, y), y, jax.lax.full((), 0, y.dtype))

    final, ys = jax.lax.scan(masked_step, initial, (steps, valid), reverse=reverse)
    ys = jnp.moveaxis(ys, 0, batch_rank)
    def poison(a: Array) -> Array:  # float leaves only: an integer carry has no NaN
        if not jnp.issubdtype(a.dtype, jnp.inexact):
            return a
        return jnp.where(_expand(lengths.ok, a), a, jax.lax.full((), jnp.nan, a.dtype))

    return jax.tree.map(poison, final), poison(ys)


def _seq_lengths(who: str, seq_lengths: Array | None, x: Array) -> _Lengths | None:
    """``seq_lengths`` checked against ``x`` ``(*batch, time, features)``: ``(*batch,)`` ints in ``[0, time]``.

    Concrete lengths outside the range raise a ValueError; traced ones make their sequence NaN
    (see ``_ranges``).
    """
    if seq_lengths is None:
        return None
    batch, time = tuple(x.shape[:-2]), x.shape[-2]
    dtype = getattr(seq_lengths, "dtype", None)
    shape = getattr(seq_lengths, "shape", None)
    if dtype is None or shape is None or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"{who}: `seq_lengths` must be an integer array of shape (*batch,) = {batch}, one length per "
            f"sequence, got {describe_value(seq_lengths)}"
        )
    if tuple(shape) != batch:
        raise ValueError(
            f"{who}: `seq_lengths` must have shape (*batch,) = {batch} (the axes of `x` before "
            f"(time, features)), got {tuple(shape)}"
        )
    note = " (the time axis of `x`)"
    return _Lengths(seq_lengths, in_range(who, "seq_lengths", seq_lengths, 0, time, closed=True, note=note))


# -------------------------------------------------------------------------------------- cells


@flexible
def rnn_cell(
    params: RNNParams,
    carry: Float[Array, "*batch hidden_size"],
    x_t: Float[Array, "*batch features"],
    hidden_size: int,
    *,
    activation: Callable[[Array], Array] = jnp.tanh,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch hidden_size"], Float[Array, "*batch hidden_size"]]:
    """One step of an Elman RNN: ``h = activation(x_t @ w_input + h @ w_hidden + bias)``.

    Args:
        params: ``{"w_input": (features, hidden_size), "w_hidden": (hidden_size, hidden_size),
            "bias": (hidden_size,)}``.
        carry: ``h``, ``(*batch, hidden_size)``.
        x_t: ``(*batch, features)``.
        hidden_size: the size of ``h``.
        activation: default ``tanh``.
        initializers: the initializers of the leaves, :func:`cell_initializers` (default:
            ``w_input`` truncated normal, ``w_hidden`` orthogonal, ``bias`` zeros).

    Returns:
        ``(new_carry, h)``, the same array twice, ``(*batch, hidden_size)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> h, x_t = jnp.zeros((2, 4)), jnp.ones((2, 3))
        >>> params = trace(nets.rnn_cell, jax.random.key(0), h, x_t, 4)
        >>> new_h, y = nets.rnn_cell(params, h, x_t, 4)
        >>> y.shape
        (2, 4)
    """
    return _cell(_Cell("rnn_cell", _RNN, hidden_size, initializers, dtype, param_dtype, activation), params, carry, x_t)


@flexible
def lstm_cell(
    params: LSTMParams,
    carry: LSTMState,
    x_t: Float[Array, "*batch features"],
    hidden_size: int,
    *,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[LSTMState, Float[Array, "*batch hidden_size"]]:
    """One step of an LSTM (Hochreiter & Schmidhuber; gates as in PyTorch's ``nn.LSTMCell``).

    With ``[i, f, g, o] = split(x_t @ w_input + h @ w_hidden + bias, 4)``:
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h' = sigmoid(o) * tanh(c')``.

    Args:
        params: ``{"w_input": (features, 4 * hidden_size), "w_hidden": (hidden_size, 4 *
            hidden_size), "bias": (4 * hidden_size,)}`` (forget-gate bias initialized to 1).
        carry: ``LSTMState(hidden, cell)``, each ``(*batch, hidden_size)``.
        x_t: ``(*batch, features)``.
        hidden_size: the size of ``h`` and ``c``.
        initializers: the initializers of the leaves, :func:`cell_initializers` (default:
            ``w_input`` truncated normal, ``w_hidden`` orthogonal, ``bias`` with the forget gate at 1).

    Returns:
        ``(LSTMState(h', c'), h')``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> state = nets.LSTMState(jnp.zeros((2, 4)), jnp.zeros((2, 4)))
        >>> x_t = jnp.ones((2, 3))
        >>> params = trace(nets.lstm_cell, jax.random.key(0), state, x_t, 4)
        >>> params["w_hidden"].shape
        (4, 16)
        >>> new_state, h = nets.lstm_cell(params, state, x_t, 4)
        >>> h.shape, new_state.cell.shape
        ((2, 4), (2, 4))
    """
    return _cell(_Cell("lstm_cell", _LSTM, hidden_size, initializers, dtype, param_dtype), params, carry, x_t)


@flexible
def gru_cell(
    params: GRUParams,
    carry: Float[Array, "*batch hidden_size"],
    x_t: Float[Array, "*batch features"],
    hidden_size: int,
    *,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch hidden_size"], Float[Array, "*batch hidden_size"]]:
    """One step of a GRU (Cho et al.; gates as in PyTorch's ``nn.GRUCell`` and Flax's ``GRUCell``).

    With ``[xr, xz, xn] = split(x_t @ w_input + bias_input, 3)`` and ``[hr, hz, hn] = split(h @
    w_hidden + bias_hidden, 3)``: ``r = sigmoid(xr + hr)``, ``z = sigmoid(xz + hz)``,
    ``n = tanh(xn + r * hn)``, ``h' = (1 - z) * n + z * h``.

    Args:
        params: ``{"w_input": (features, 3 * hidden_size), "w_hidden": (hidden_size, 3 *
            hidden_size), "bias_input": (3 * hidden_size,), "bias_hidden": (3 * hidden_size,)}``.
        carry: ``h``, ``(*batch, hidden_size)``.
        x_t: ``(*batch, features)``.
        hidden_size: the size of ``h``.
        initializers: the initializers of the leaves, :func:`cell_initializers` (default:
            ``w_input`` truncated normal, ``w_hidden`` orthogonal, ``bias`` zeros).

    Returns:
        ``(new_carry, h')``, the same array twice.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> h, x_t = jnp.zeros((2, 4)), jnp.ones((2, 3))
        >>> params = trace(nets.gru_cell, jax.random.key(0), h, x_t, 4)
        >>> nets.gru_cell(params, h, x_t, 4)[1].shape
        (2, 4)
    """
    return _cell(_Cell("gru_cell", _GRU, hidden_size, initializers, dtype, param_dtype), params, carry, x_t)


# ---------------------------------------------------------------------------------- sequences


def _sequence(
    cell: _Cell,
    params: RNNParams | LSTMParams | GRUParams,
    x: Array,
    initial_state: Any,
    seq_lengths: Array | None,
    reverse: bool,
    return_state: bool,
) -> Array | tuple[Array, Any]:
    """A built-in cell over a sequence in one ``lax.scan``, the input projection of every step
    computed at once before it: the body of ``rnn``, ``lstm``, ``gru`` and ``bidirectional``."""
    positive_int(cell.who, "hidden_size", cell.hidden_size)
    min_rank(cell.who, "x", x.shape, 2, "(time, features)")
    lengths = _seq_lengths(cell.who, seq_lengths, x)
    weights, state = cell.prepare(params, x, "initial_state", initial_state, tuple(x.shape[:-2]))

    def step(carry: Any, px: Array) -> tuple[Any, Array]:
        new = cell.kind.update(weights, carry, px)
        return new, _output(new)

    final, ys = _scan(step, state, _project_input(weights, x), reverse, lengths)
    return (ys, final) if return_state else ys


def _described(value: object) -> str:
    """``value`` in a message from inside the scan, where arrays are tracers: by shape and dtype."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"an array of shape {tuple(shape)} and dtype {dtype}"
    return describe_value(value)


def _leaf_shapes(tree: Any) -> list[tuple[int, ...]]:
    return [tuple(getattr(leaf, "shape", ())) for leaf in jax.tree.leaves(tree)]


@overload
def recurrent(
    params: Params,
    x: Float[Array, "*batch time features"],
    cell: Callable[[Params, Any, Array], tuple[Any, Array]],
    *,
    initial_state: Array | tuple[Any, ...] | dict[Any, Any],
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[False] = False,
) -> Float[Array, "*batch time out"]: ...
@overload
def recurrent(
    params: Params,
    x: Float[Array, "*batch time features"],
    cell: Callable[[Params, Any, Array], tuple[Any, Array]],
    *,
    initial_state: Array | tuple[Any, ...] | dict[Any, Any],
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[True],
) -> tuple[Float[Array, "*batch time out"], Array | tuple[Any, ...] | dict[Any, Any]]: ...
@flexible
def recurrent(
    params: Params,
    x: Float[Array, "*batch time features"],
    cell: Callable[[Params, Any, Array], tuple[Any, Array]],
    *,
    initial_state: Array | tuple[Any, ...] | dict[Any, Any],
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: bool = False,
) -> Float[Array, "*batch time out"] | tuple[Float[Array, "*batch time out"], Array | tuple[Any, ...] | dict[Any, Any]]:
    """Any recurrent cell over a sequence, in one ``jax.lax.scan``: the cell is a part.

    ``cell(params, carry, x_t) -> (new_carry, y_t)`` runs at each step with the same
    ``params`` (Flax's ``nn.RNN(cell)``, Haiku's ``dynamic_unroll(core, ...)``): a built-in cell
    with its hyperparameters bound (``nets.lstm_cell(_, _, _, 64)``, with any
    ``initializers=nets.cell_initializers(...)``) or a function of your own. :func:`rnn`, :func:`lstm` and :func:`gru` are this loop
    with their cell, the input projection of every step computed at once before the scan.

    Args:
        params: the cell's params (``trace`` declares them by running the cell in the loop).
        x: ``(*batch, time, features)``.
        cell: ``(params, carry, x_t) -> (new_carry, y_t)``; ``x_t`` is ``(*batch, features)``,
            every leaf of the carry and ``y_t`` starts with the batch axes.
        initial_state: the carry before the first step: an array, an :class:`LSTMState`, or a
            tuple or dict (nested as you like) of ``(*batch, ...)`` arrays. The carry keeps its
            structure, shapes and dtypes.
        seq_lengths: ``(*batch,)`` ints in ``[0, time]``, as :func:`lstm`'s: a padded step
            keeps the carry and outputs zeros.
        reverse: run from the last step to the first (outputs stay in time order).
        return_state: also return the final carry.

    Returns:
        ``y_t`` stacked on a time axis after the batch axes, ``(*batch, time, ...)``; with
        ``return_state``, ``(outputs, final_carry)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 7, 3))
        >>> zeros = nets.LSTMState(jnp.zeros((2, 4)), jnp.zeros((2, 4)))
        >>> net = nets.recurrent(_, _, nets.lstm_cell(_, _, _, 4), initial_state=zeros)
        >>> params = trace(net, jax.random.key(0), x)
        >>> sorted(params), net(params, x).shape
        (['bias', 'w_hidden', 'w_input'], (2, 7, 4))
        >>> bool(jnp.allclose(net(params, x), nets.lstm(params, x, 4), atol=1e-6))  # the same net
        True
    """
    who = "recurrent"
    if not callable(cell):
        raise TypeError(
            f"{who}: `cell` must be a function (params, carry, x_t) -> (new_carry, y_t), such as "
            f"nets.lstm_cell(_, _, _, hidden_size), got {describe_value(cell)}"
        )
    min_rank(who, "x", x.shape, 2, "(time, features)")
    lengths = _seq_lengths(who, seq_lengths, x)
    batch = tuple(x.shape[:-2])
    leaves_with_paths: list[tuple[Any, Any]] = jax.tree_util.tree_leaves_with_path(initial_state)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax's KeyPath is untyped
    if not leaves_with_paths:
        raise ValueError(f"{who}: `initial_state` must hold at least one array (the carry), got {initial_state!r}")
    for path, leaf in leaves_with_paths:
        shape = getattr(leaf, "shape", None)
        if shape is None or tuple(shape[: len(batch)]) != batch:
            raise ValueError(
                f"{who}: every array of `initial_state` must start with the batch axes of `x` {batch}, got "
                f"{describe_value(leaf)} at `initial_state{jax.tree_util.keystr(path)}`"  # pyright: ignore[reportUnknownMemberType]  # as above
            )
    structure: Any = jax.tree.structure(initial_state)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # PyTreeDef is untyped
    initial: Any = jax.tree.map(jax.numpy.asarray, initial_state)  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]  # asarray's device type is untyped
    shapes = _leaf_shapes(initial)

    def step(carry: Any, x_t: Array) -> tuple[Any, Array]:
        out = cell(params, carry, x_t)
        if not _is_pair(out):
            raise TypeError(f"{who}: `cell` must return a pair (new_carry, y_t), got {_described(out)}")
        new, y = out
        if _leaf_shapes(new) != shapes:
            raise TypeError(
                f"{who}: the carry `cell` returns must have the shapes of `initial_state` {shapes}, got {_leaf_shapes(new)}"
            )
        y_shape = tuple(getattr(y, "shape", ()))
        if y_shape[: len(batch)] != batch:
            raise TypeError(
                f"{who}: the output `cell` returns must start with the batch axes of `x` {batch}, got {_described(y)}"
            )
        kept = [n.astype(c.dtype) for n, c in zip(jax.tree.leaves(new), jax.tree.leaves(carry))]
        rebuilt: Any = jax.tree.unflatten(structure, kept)  # pyright: ignore[reportUnknownMemberType]  # as above
        return rebuilt, y

    final, ys = _scan(step, initial, x, reverse, lengths)
    return (ys, final) if return_state else ys


@overload
def rnn(
    params: RNNParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: Float[Array, "*batch hidden_size"] | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[False] = False,
    activation: Callable[[Array], Array] = jnp.tanh,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time hidden_size"]: ...
@overload
def rnn(
    params: RNNParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: Float[Array, "*batch hidden_size"] | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[True],
    activation: Callable[[Array], Array] = jnp.tanh,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch time hidden_size"], Float[Array, "*batch hidden_size"]]: ...
@flexible
def rnn(
    params: RNNParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: Float[Array, "*batch hidden_size"] | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: bool = False,
    activation: Callable[[Array], Array] = jnp.tanh,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time hidden_size"] | tuple[Float[Array, "*batch time hidden_size"], Float[Array, "*batch hidden_size"]]:
    """An Elman RNN over a sequence (:func:`rnn_cell` at each step, in one ``jax.lax.scan``).

    The input projection of every step is computed at once, before the scan.

    Args:
        params: as :func:`rnn_cell`'s.
        x: ``(*batch, time, features)``.
        hidden_size: the size of ``h``.
        initial_state: ``h`` before the first step, ``(*batch, hidden_size)`` (default zeros).
        seq_lengths: ``(*batch,)`` ints in ``[0, time]``: the length of each sequence of a
            batch padded at the end (default: every sequence is ``time`` long). A padded step
            ``t >= seq_lengths`` leaves the carry unchanged and outputs zeros (Flax's ``nn.RNN``
            leaves those outputs unzeroed), so the final state is each sequence's own last step
            (with ``reverse``, step 0; with length 0, the initial state). The range is checked
            when the lengths are concrete; under ``jit`` a length below 0 acts as 0 and one
            above ``time`` as ``time``. A prefix mask ``(*batch, time)`` converts as
            ``mask.sum(-1)``.
        reverse: run from the last step to the first (outputs stay in time order); with
            ``seq_lengths``, from each sequence's own last step.
        return_state: also return the final carry.
        activation: default ``tanh``.
        initializers: the initializers of the leaves, :func:`cell_initializers` (default:
            ``w_input`` truncated normal, ``w_hidden`` orthogonal, ``bias`` zeros).

    Returns:
        ``(*batch, time, hidden_size)``; with ``return_state``, ``(outputs, final_h)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 7, 3))
        >>> params = trace(nets.rnn(_, _, 4), jax.random.key(0), x)
        >>> nets.rnn(params, x, 4).shape
        (2, 7, 4)
    """
    cell = _Cell("rnn", _RNN, hidden_size, initializers, dtype, param_dtype, activation)
    return _sequence(cell, params, x, initial_state, seq_lengths, reverse, return_state)


@overload
def lstm(
    params: LSTMParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: LSTMState | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[False] = False,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time hidden_size"]: ...
@overload
def lstm(
    params: LSTMParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: LSTMState | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[True],
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch time hidden_size"], LSTMState]: ...
@flexible
def lstm(
    params: LSTMParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: LSTMState | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: bool = False,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time hidden_size"] | tuple[Float[Array, "*batch time hidden_size"], LSTMState]:
    """An LSTM over a sequence (:func:`lstm_cell` at each step, in one ``jax.lax.scan``).

    Args:
        params: as :func:`lstm_cell`'s.
        x: ``(*batch, time, features)``.
        hidden_size: the size of ``h`` and ``c``.
        initial_state: ``LSTMState(hidden, cell)`` before the first step (default zeros).
        seq_lengths: ``(*batch,)`` ints in ``[0, time]``: the length of each sequence of a
            batch padded at the end (default: every sequence is ``time`` long). A padded step
            ``t >= seq_lengths`` leaves the carry unchanged and outputs zeros (Flax's ``nn.RNN``
            leaves those outputs unzeroed), so the final state is each sequence's own last step
            (with ``reverse``, step 0; with length 0, the initial state). The range is checked
            when the lengths are concrete; under ``jit`` a length below 0 acts as 0 and one
            above ``time`` as ``time``. A prefix mask ``(*batch, time)`` converts as
            ``mask.sum(-1)``.
        reverse: run from the last step to the first (outputs stay in time order); with
            ``seq_lengths``, from each sequence's own last step.
        return_state: also return the final ``LSTMState``.
        initializers: the initializers of the leaves, :func:`cell_initializers` (default:
            ``w_input`` truncated normal, ``w_hidden`` orthogonal, ``bias`` with the forget gate at 1).

    Returns:
        the hidden states ``(*batch, time, hidden_size)``; with ``return_state``,
        ``(outputs, final_state)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 7, 3))
        >>> params = trace(nets.lstm(_, _, 4), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (16,), 'w_hidden': (4, 16), 'w_input': (3, 16)}
        >>> ys, state = nets.lstm(params, x, 4, return_state=True)
        >>> ys.shape, state.cell.shape
        ((2, 7, 4), (2, 4))
        >>> ys = nets.lstm(params, x, 4, seq_lengths=jnp.array([7, 3]))  # the second padded after 3 steps
        >>> bool((ys[1, 3:] == 0).all())
        True
    """
    cell = _Cell("lstm", _LSTM, hidden_size, initializers, dtype, param_dtype)
    return _sequence(cell, params, x, initial_state, seq_lengths, reverse, return_state)


@overload
def gru(
    params: GRUParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: Float[Array, "*batch hidden_size"] | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[False] = False,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time hidden_size"]: ...
@overload
def gru(
    params: GRUParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: Float[Array, "*batch hidden_size"] | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: Literal[True],
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch time hidden_size"], Float[Array, "*batch hidden_size"]]: ...
@flexible
def gru(
    params: GRUParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    *,
    initial_state: Float[Array, "*batch hidden_size"] | None = None,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    reverse: bool = False,
    return_state: bool = False,
    initializers: CellInitializers = CellInitializers(),
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time hidden_size"] | tuple[Float[Array, "*batch time hidden_size"], Float[Array, "*batch hidden_size"]]:
    """A GRU over a sequence (:func:`gru_cell` at each step, in one ``jax.lax.scan``).

    Args:
        params: as :func:`gru_cell`'s.
        x: ``(*batch, time, features)``.
        hidden_size: the size of ``h``.
        initial_state: ``h`` before the first step, ``(*batch, hidden_size)`` (default zeros).
        seq_lengths: ``(*batch,)`` ints in ``[0, time]``: the length of each sequence of a
            batch padded at the end (default: every sequence is ``time`` long). A padded step
            ``t >= seq_lengths`` leaves the carry unchanged and outputs zeros (Flax's ``nn.RNN``
            leaves those outputs unzeroed), so the final state is each sequence's own last step
            (with ``reverse``, step 0; with length 0, the initial state). The range is checked
            when the lengths are concrete; under ``jit`` a length below 0 acts as 0 and one
            above ``time`` as ``time``. A prefix mask ``(*batch, time)`` converts as
            ``mask.sum(-1)``.
        reverse: run from the last step to the first (outputs stay in time order); with
            ``seq_lengths``, from each sequence's own last step.
        return_state: also return the final ``h``.
        initializers: the initializers of the leaves, :func:`cell_initializers` (default:
            ``w_input`` truncated normal, ``w_hidden`` orthogonal, ``bias`` zeros).

    Returns:
        ``(*batch, time, hidden_size)``; with ``return_state``, ``(outputs, final_h)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((7, 3))
        >>> params = trace(nets.gru(_, _, 4), jax.random.key(0), x)
        >>> nets.gru(params, x, 4, reverse=True).shape
        (7, 4)
    """
    cell = _Cell("gru", _GRU, hidden_size, initializers, dtype, param_dtype)
    return _sequence(cell, params, x, initial_state, seq_lengths, reverse, return_state)


@overload
def bidirectional(
    params: BidirectionalParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    cell: Literal["rnn", "lstm", "gru"] = "lstm",
    *,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    return_state: Literal[False] = False,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time two_hidden"]: ...
@overload
def bidirectional(
    params: BidirectionalParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    cell: Literal["rnn", "lstm", "gru"] = "lstm",
    *,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    return_state: Literal[True],
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch time two_hidden"], tuple[Array | LSTMState, Array | LSTMState]]: ...
@flexible
def bidirectional(
    params: BidirectionalParams,
    x: Float[Array, "*batch time features"],
    hidden_size: int,
    cell: Literal["rnn", "lstm", "gru"] = "lstm",
    *,
    seq_lengths: Integer[Array, "*batch"] | None = None,
    return_state: bool = False,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch time two_hidden"] | tuple[Float[Array, "*batch time two_hidden"], tuple[Array | LSTMState, Array | LSTMState]]:
    """A bidirectional recurrent net: ``concatenate([net(x), net(x, reverse=True)], axis=-1)``.

    Args:
        params: ``{"forward": p, "backward": p}``, ``p`` the params of :func:`rnn`,
            :func:`lstm` or :func:`gru` (as ``cell`` says); ``backward`` runs with
            ``reverse=True``.
        x: ``(*batch, time, features)``.
        hidden_size: the hidden size of each direction.
        cell: which net runs in each direction.
        seq_lengths: ``(*batch,)`` ints in ``[0, time]``, the length of each sequence of a
            batch padded at the end (as the nets' ``seq_lengths``): the backward net runs each
            sequence from its own last step (as Flax's ``nn.Bidirectional`` with
            ``seq_lengths``, whose ``flip_sequences`` reverses each sequence within its
            length), and both halves are zeros on the padded steps.
        return_state: also return the final states of both directions, ``(forward, backward)``
            (each an ``LSTMState`` for ``"lstm"``, else ``h``): the forward one after each
            sequence's last step, the backward one after its step 0 (Flax's
            ``nn.Bidirectional(..., return_carry=True)``).

    Returns:
        ``(*batch, time, 2 * hidden_size)`` (``two_hidden``): at each step, the forward output then the
        backward output; with ``return_state``, ``(outputs, (forward_state, backward_state))``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 7, 3))
        >>> params = trace(nets.bidirectional(_, _, 4, "gru"), jax.random.key(0), x)
        >>> sorted(params), nets.bidirectional(params, x, 4, "gru").shape
        (['backward', 'forward'], (2, 7, 8))
        >>> ys, (forward, backward) = nets.bidirectional(params, x, 4, "gru", return_state=True)
        >>> forward.shape, bool(jnp.allclose(backward, ys[:, 0, 4:]))
        ((2, 4), True)
    """
    who = "bidirectional"
    kind = {"rnn": _RNN, "lstm": _LSTM, "gru": _GRU}[check_option(who, "cell", cell, ("rnn", "lstm", "gru"))]
    net = _Cell(who, kind, hidden_size, CellInitializers(), dtype, param_dtype)
    runs = [
        cast(tuple[Array, Array | LSTMState], _sequence(net, p, x, None, seq_lengths, reverse, True))  # a pair
        for p, reverse in ((params["forward"], False), (params["backward"], True))
    ]
    ys = jnp.concatenate([y for y, _final in runs], axis=-1)
    return (ys, (runs[0][1], runs[1][1])) if return_state else ys
