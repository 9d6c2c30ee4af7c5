"""Embeddings: ``token_embed``, learned ``positional_embed``, ``sinusoidal_embed`` and ``rope``."""

from __future__ import annotations

from typing import Annotated, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import Float, Integer, Real

from .._checks import describe_value, min_rank, positive_int
from .._flexible import flexible
from ..core._api import validate
from ..core._types import DType, Initializer
from ._dtypes import at_least_float32, broadcasts, compute_dtype
from ._ranges import check_range, in_range, wide

embed_initializer: Initializer = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
"""Flax's default for embedding tables: normal with variance ``1 / embed_dim``."""

positional_initializer: Initializer = jax.nn.initializers.truncated_normal(0.02)
"""The usual learned-position initializer (BERT, GPT-2): truncated normal, stddev 0.02."""


class TokenEmbedParams(TypedDict):
    """Params of :func:`token_embed`: one row per token."""

    embeddings: Annotated[Float[Array, "vocab_size embed_dim"], embed_initializer]


class PositionalEmbedParams(TypedDict):
    """Params of :func:`positional_embed`: one row per position."""

    embeddings: Annotated[Float[Array, "max_len d"], positional_initializer]


def checked_positions(
    who: str, name: str, positions: Array, batch: tuple[int, ...], seq: int, integer: bool = False
) -> Array:
    """``positions`` checked: integers (or floats unless ``integer``) that broadcast right-aligned
    to ``(*batch, seq)``: the positions of rope, learned positions and attention."""
    dtype = getattr(positions, "dtype", None)
    kinds = (jnp.integer,) if integer else (jnp.integer, jnp.floating)
    if dtype is None or not any(jnp.issubdtype(dtype, kind) for kind in kinds):
        expected = "integers" if integer else "an integer or float array"
        raise TypeError(f"{who}: `{name}` must be {expected}, got {describe_value(positions)}")
    shape = tuple(positions.shape)
    if not shape or not broadcasts(shape, (*batch, seq)):
        raise ValueError(
            f"{who}: `{name}` must broadcast (right-aligned) to (*batch, seq) = {(*batch, seq)}, got shape {shape}"
        )
    return positions


def _rows(table: Array, index: Array, valid: Array) -> Array:
    """``table[index]``, a row of NaN where ``valid`` is False (one gather: an invalid index is
    moved past the end, where ``jnp.take``'s ``"fill"`` mode gives NaN)."""
    past_end = jnp.where(valid, wide(index), table.shape[0])
    return jnp.take(table, past_end, axis=0, mode="fill", fill_value=jnp.nan)


@flexible
def token_embed(
    params: TokenEmbedParams,
    token_ids: Integer[Array, "*batch"],
    vocab_size: int,
    embed_dim: int,
    *,
    embeddings_initializer: Initializer = embed_initializer,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch embed_dim"]:
    """Look up one learned row per token id.

    Ids must be in ``[0, vocab_size)`` (a negative id never counts from the end). Concrete
    ids outside raise a ``ValueError``, checking on or off; under ``jit``, ``grad`` or
    ``vmap`` an id outside gives a row of NaN, so a bad id shows in the loss instead of
    silently reading another row, and ``jax.experimental.checkify.checkify`` reports it.

    Args:
        params: ``{"embeddings": (vocab_size, embed_dim)}``.
        token_ids: integer ids, any shape.
        vocab_size: the number of rows.
        embed_dim: the size of each row.
        embeddings_initializer: initializer of the table (default: normal, variance ``1 / embed_dim``).
        dtype: the output dtype (default: the table's dtype).
        param_dtype: the storage dtype of the table (default float32).

    Returns:
        ``(*token_ids.shape, embed_dim)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> ids = jnp.array([[1, 2, 3]])
        >>> params = trace(nets.token_embed(_, _, 10, 4), jax.random.key(0), ids)
        >>> params["embeddings"].shape, nets.token_embed(params, ids, 10, 4).shape
        ((10, 4), (1, 3, 4))
    """
    who = "token_embed"
    positive_int(who, "vocab_size", vocab_size)
    positive_int(who, "embed_dim", embed_dim)
    if not jnp.issubdtype(token_ids.dtype, jnp.integer):
        raise TypeError(f"{who}: `token_ids` must be integers, got dtype {token_ids.dtype}")
    embeddings = validate(params["embeddings"], (vocab_size, embed_dim), embeddings_initializer, dtype=param_dtype)
    check_range(who, "token_ids", token_ids, 0, vocab_size)
    valid = in_range(who, "token_ids", token_ids, 0, vocab_size)
    compute = compute_dtype(dtype, embeddings)
    return _rows(embeddings.astype(compute), token_ids, valid)


@flexible
def positional_embed(
    params: PositionalEmbedParams,
    x: Float[Array, "*batch seq d"],
    max_len: int,
    *,
    positions: Integer[Array, "*pbatch seq"] | None = None,
    offset: int | Integer[Array, ""] = 0,
    embeddings_initializer: Initializer = positional_initializer,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """Add a learned embedding of each position along the time axis (``-2``).

    Step ``t`` of ``x`` is at position ``offset + t`` (decoding with a cache: ``offset`` is the
    number of steps already decoded), or at ``positions[..., t]`` when ``positions`` is given.
    Every position must be in ``[0, max_len)`` (a negative one never counts from the end): an
    int ``offset`` is checked always, concrete positions or offsets raise a ``ValueError``
    checking on or off, and under ``jit``, ``grad`` or ``vmap`` a step at a position outside
    gives NaN (as ``token_embed``), which ``jax.experimental.checkify.checkify`` reports.

    Args:
        params: ``{"embeddings": (max_len, d)}``; position ``p`` adds row ``p``.
        x: ``(*batch, seq, d)`` with ``seq <= max_len``.
        max_len: the number of positions learned.
        positions: integer positions broadcast right-aligned to ``(*batch, seq)`` (default
            ``offset + 0, 1, ..., seq - 1``).
        offset: the position of the first step (an int or an int32 scalar array); not with ``positions``.
        embeddings_initializer: initializer of the table (default: truncated normal, 0.02).
        dtype: the computation dtype (default: the promotion of ``x`` and the table).
        param_dtype: the storage dtype of the table (default float32).

    Returns:
        ``x + embeddings[positions]``, shape ``(*batch, seq, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.zeros((2, 5, 8))
        >>> params = trace(nets.positional_embed(_, _, 16), jax.random.key(0), x)
        >>> params["embeddings"].shape, nets.positional_embed(params, x, 16).shape
        ((16, 8), (2, 5, 8))
        >>> step = nets.positional_embed(params, x[:, :1], 16, offset=3)  # decoding step 3
        >>> bool(jnp.allclose(step[:, 0], params["embeddings"][3][None]))
        True
    """
    positive_int("positional_embed", "max_len", max_len)
    min_rank("positional_embed", "x", x.shape, 2, "(seq, d)")
    seq, d = x.shape[-2], x.shape[-1]
    if seq > max_len:
        raise ValueError(
            f"positional_embed: `x` has {seq} positions (axis -2 of shape {x.shape}), more than `max_len` {max_len}"
        )
    table = validate(params["embeddings"], (max_len, d), embeddings_initializer, dtype=param_dtype)
    index, valid = _positions_index(x, max_len, positions, offset)
    compute = compute_dtype(dtype, x, table)
    rows = _rows(table.astype(compute), index, valid)
    return x.astype(compute) + jnp.broadcast_to(rows, x.shape)


def _positions_index(x: Array, max_len: int, positions: Array | None, offset: int | Array) -> tuple[Array, Array]:
    """The row of each step of ``x`` for :func:`positional_embed`, checked, and whether each is in range."""
    who, batch, seq = "positional_embed", tuple(x.shape[:-2]), x.shape[-2]
    offset_dtype = getattr(offset, "dtype", None)
    if isinstance(offset, bool) or not (
        isinstance(offset, int) or (offset_dtype is not None and jnp.issubdtype(offset_dtype, jnp.integer) and not getattr(offset, "shape", ()))
    ):
        raise TypeError(f"{who}: `offset` must be an int or an integer scalar array, got {offset!r}")
    if positions is None:
        # An offset is valid when every step's position offset + t is: its range is [0, max_len - seq].
        note = f" (the steps' positions `offset` + 0 to {seq - 1} within [0, `max_len`) = [0, {max_len}))"
        check_range(who, "offset", offset, 0, max_len - seq, closed=True, note=note)
        start = offset if isinstance(offset, jax.Array) else jax.lax.full((), offset, jnp.int32)
        in_range(who, "offset", start, 0, max_len - seq, closed=True, note=note)  # for checkify
        index = jax.lax.iota(jnp.int32, seq) + wide(start)
        return index, (index >= 0) & (index < max_len)  # under jit, only the steps past the table are NaN
    if not isinstance(offset, int) or offset != 0:
        raise ValueError(f"{who}: give `positions` or `offset`, not both")
    checked_positions(who, "positions", positions, batch, seq, integer=True)
    check_range(who, "positions", positions, 0, max_len, note=" = [0, `max_len`)")
    return positions, in_range(who, "positions", positions, 0, max_len, note=" = [0, `max_len`)")


def _even_last(who: str, x: Array, what: str) -> None:
    if x.shape[-1] % 2:
        raise ValueError(f"{who}: the last axis of `x` ({what}) must be even, got shape {x.shape}")


@flexible
def sinusoidal_embed(
    x: Float[Array, "*batch seq d"],
    *,
    base: float = 10000.0,
) -> Float[Array, "*batch seq d"]:
    """Add the fixed sinusoidal position table of "Attention Is All You Need" (no params).

    For position ``t`` (along axis ``-2``) and ``i < d / 2``: ``table[t, 2i] = sin(t / base**(2i/d))``
    and ``table[t, 2i + 1] = cos(t / base**(2i/d))`` (even and odd features interleaved).
    Returns ``x + table``; for the table alone, pass zeros.

    Args:
        x: ``(*batch, seq, d)``, ``d`` even.
        base: the wavelength base.

    Returns:
        ``(*batch, seq, d)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> table = nets.sinusoidal_embed(jnp.zeros((3, 4)))
        >>> [round(v, 3) for v in table[1].tolist()]
        [0.841, 0.54, 0.01, 1.0]
    """
    min_rank("sinusoidal_embed", "x", x.shape, 2, "(seq, d)")
    _even_last("sinusoidal_embed", x, "d")
    seq, d = x.shape[-2], x.shape[-1]
    angle_dtype = at_least_float32(np.dtype(x.dtype))
    positions = np.arange(seq, dtype=np.float64)[:, None]
    frequencies = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angles = positions * frequencies[None, :]
    table = np.stack([np.sin(angles), np.cos(angles)], axis=-1)  # pyright: ignore[reportUnknownMemberType]  # numpy 2.5's stack overloads
    table = table.reshape(seq, d).astype(angle_dtype)
    y = x.astype(angle_dtype) + jnp.broadcast_to(table, x.shape)
    return y.astype(x.dtype)


@flexible
def rope(
    x: Float[Array, "*batch seq heads head_dim"],
    positions: Real[Array, "*pbatch seq"] | None = None,
    *,
    base: float = 10000.0,
) -> Float[Array, "*batch seq heads head_dim"]:
    """Rotary position embedding (RoPE) of queries or keys, on the last axis.

    ``x`` is ``(..., seq, heads, head_dim)``, the layout of ``jax.nn.dot_product_attention``
    (for a single head, add the axis: ``x[..., None, :]``). The rotation uses the
    "rotate half" convention (GPT-NeoX, LLaMA): with ``h = head_dim / 2``, feature ``i < h``
    is paired with feature ``i + h`` and the pair at position ``p`` is rotated by the angle
    ``p * base**(-2i / head_dim)``::

        y[..., i]     = x[..., i] * cos - x[..., i + h] * sin
        y[..., i + h] = x[..., i + h] * cos + x[..., i] * sin

    Args:
        x: ``(*batch, seq, heads, head_dim)``, ``head_dim`` even.
        positions: the position of each step, ``(seq,)`` or ``(*batch, seq)`` (broadcast
            against ``x``'s batch axes); default ``0, 1, ..., seq - 1``. Offsets for decoding
            with a cache go here.
        base: the wavelength base.

    Returns:
        ``(*batch, seq, heads, head_dim)``, the dtype of ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> q = jnp.ones((2, 5, 4, 8))  # (batch, seq, heads, head_dim)
        >>> nets.rope(q).shape
        (2, 5, 4, 8)
        >>> bool(jnp.allclose(nets.rope(q)[:, 0], q[:, 0]))  # position 0 is not rotated
        True
    """
    min_rank("rope", "x", x.shape, 3, "(seq, heads, head_dim)")
    _even_last("rope", x, "head_dim")
    seq, head_dim = x.shape[-3], x.shape[-1]
    half = head_dim // 2
    angle_dtype = at_least_float32(np.dtype(x.dtype))
    if positions is None:
        pos = jnp.broadcast_to(np.arange(seq).astype(angle_dtype), (seq,))
    else:
        pos = checked_positions("rope", "positions", positions, tuple(x.shape[:-3]), seq).astype(angle_dtype)
    inverse_frequency = (base ** (-np.arange(0, half, dtype=np.float64) * 2 / head_dim)).astype(angle_dtype)
    angles = pos[..., None] * jnp.broadcast_to(inverse_frequency, pos.shape + (half,))
    angles = jnp.broadcast_to(angles[..., None, :], x.shape[:-1] + (half,))
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    xs = x.astype(angle_dtype)
    x1, x2 = xs[..., :half], xs[..., half:]
    y = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return y.astype(x.dtype)
