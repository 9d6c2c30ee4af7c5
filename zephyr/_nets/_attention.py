"""Attention nets: ``dot_product_attention``, ``single_head_attention``, ``multi_head_attention`` and
``multi_head_self_attention``, configured by one :class:`Attention` value (``_parts.py``)."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, TypedDict, cast as typing_cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import Bool, Float, Real

from .._checks import check_random_key, check_rate, min_rank, positive_int
from ..core._types import DType, PRNGKey
from .._flexible import flexible
from ._dropout import _keep  # pyright: ignore[reportPrivateUsage]  # the one dropout mask of the nets
from ._dtypes import broadcasts, cast, compute_dtype
from ._embed import checked_positions
from ._linear import LinearParams
from ._parts import Attention, LogitsPart, attention, on_logits_parts

MSG_MASKS = """\
`mask` is boolean, True where a query may attend to a key, and is read as
jax.nn.dot_product_attention reads it: broadcast right-aligned to
(*batch, num_heads, q_len, kv_len), e.g. (q_len, kv_len) for every batch and head. Its meaning
never depends on the batch size. Padding goes in `padding_mask`, (*batch, kv_len):

    pad = jnp.arange(seq)[None, :] < lengths[:, None]       # (batch, seq): True = real token
    y = nets.multi_head_self_attention(params, x, 8, padding_mask=pad)
"""


class AttentionParams(TypedDict):
    """Params of the attention nets: four linear projections.

    ``query`` ``(d, num_heads * key_size)``, ``key`` ``(d_k, num_kv_heads * key_size)``,
    ``value`` ``(d_v, num_kv_heads * value_size)``, ``out`` ``(num_heads * value_size, d)``
    (``d`` the size of the query's last axis; by default ``key_size = value_size = d //
    num_heads``); each has a ``bias`` unless ``use_bias=False``.
    """

    query: LinearParams
    key: LinearParams
    value: LinearParams
    out: LinearParams


class _Sizes(NamedTuple):
    kv_heads: int
    key_size: int
    value_size: int


def _sizes(who: str, att: Attention, d: int) -> _Sizes:
    """The heads' sizes of ``att`` at model size ``d``, or a ValueError naming what does not fit."""
    if att.key_size is None and d % att.num_heads:
        raise ValueError(
            f"{who}: `num_heads` ({att.num_heads}) must divide the model size (the last axis of the "
            f"query, {d}); the head size is model size // num_heads unless `key_size` is given"
        )
    size = d // att.num_heads if att.key_size is None else att.key_size
    kv_heads = att.num_heads if att.num_kv_heads is None else att.num_kv_heads
    return _Sizes(kv_heads, size, size if att.value_size is None else att.value_size)


def as_attention(who: str, value: int | Attention) -> Attention:
    """``value`` as an :class:`Attention`: a number of heads is ``nets.attention(value)``."""
    return value if isinstance(value, Attention) else attention(positive_int(who, "num_heads", value))


def _boolean(who: str, name: str, mask: object) -> Array:
    dtype = getattr(mask, "dtype", None)
    if dtype is None or np.dtype(dtype) != np.bool_:
        raise TypeError(
            f"{who}: `{name}` must be a boolean array (True = attend), got "
            f"{type(mask).__name__}{'' if dtype is None else f' of dtype {dtype}'}\n{MSG_MASKS}"
        )
    return typing_cast(Array, mask)  # a boolean array, checked above


def _full_mask(
    who: str,
    mask: Array | None,
    padding_mask: Array | None,
    batch: tuple[int, ...],
    num_heads: int,
    q_len: int,
    kv_len: int,
) -> Array | None:
    """``mask`` and ``padding_mask`` combined, broadcast to ``(*batch, num_heads, q_len, kv_len)``, checked.

    ``mask`` broadcasts right-aligned to the full shape (as ``jax.nn.dot_product_attention``
    reads it); ``padding_mask`` broadcasts right-aligned to ``(*batch, kv_len)``. Neither reading
    depends on the sizes: a shape that does not broadcast is an error.
    """
    full = (*batch, num_heads, q_len, kv_len)
    padding = (*batch, kv_len)
    result: Array | None = None
    if mask is not None:
        mask = _boolean(who, "mask", mask)
        shape = tuple(mask.shape)
        if not broadcasts(shape, full):
            hint = (
                f"; a padding mask {shape} goes in `padding_mask`"
                if len(shape) == len(padding) and broadcasts(shape, padding)
                else ""
            )
            raise ValueError(
                f"{who}: `mask` must broadcast (right-aligned) to (*batch, num_heads, q_len, kv_len) "
                f"= {full}, got shape {shape}{hint}\n{MSG_MASKS}"
            )
        result = jnp.broadcast_to(mask, full)
    if padding_mask is not None:
        padding_mask = _boolean(who, "padding_mask", padding_mask)
        shape = tuple(padding_mask.shape)
        if not broadcasts(shape, padding):
            raise ValueError(
                f"{who}: `padding_mask` must broadcast (right-aligned) to (*batch, kv_len) = {padding}, "
                f"got shape {shape}\n{MSG_MASKS}"
            )
        expanded = jnp.broadcast_to(padding_mask, padding).reshape((*batch, 1, 1, kv_len))
        result = _and(result, jnp.broadcast_to(expanded, full))
    return result


def _causal_mask(q_len: int, kv_len: int, offset: Array | int) -> Array:
    """``(q_len, kv_len)``: query ``i`` (at absolute position ``offset + i``) sees keys ``<= it``."""
    return jax.lax.iota(jnp.int32, kv_len)[None, :] <= jax.lax.iota(jnp.int32, q_len)[:, None] + offset


def _and(a: Array | None, b: Array) -> Array:
    return b if a is None else jnp.logical_and(a, jnp.broadcast_to(b, a.shape))


class _Dropout(NamedTuple):
    key: PRNGKey
    rate: float


def dropout_of(who: str, rate: float, key: PRNGKey | None, evaluation: str) -> _Dropout | None:
    """The dropout to apply, or None (rate 0); checks ``rate`` and ``key``. A rate without a key
    is an error, never dropout silently left out: ``evaluation`` says what to pass instead."""
    check_rate(who, "dropout_rate", rate)
    if rate == 0.0:
        return None
    if key is None:
        raise ValueError(
            f"{who}: dropout is on (a rate of {rate}) but no `key` was given: pass `key=` (a JAX random key) "
            f"for training, or {evaluation} for evaluation"
        )
    check_random_key(key, who)
    return _Dropout(key, rate)


def _attend(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    is_causal: bool,
    scale: float,
    dropout: _Dropout | None = None,
    parts: tuple[LogitsPart, ...] = (),
    offset: Array | int | None = None,
) -> Array:
    """``jax.nn.dot_product_attention`` over any number of batch axes, with logit parts.

    ``q`` ``(*b, T, H, D)``, ``k`` ``(*b, S, K, D)``, ``v`` ``(*b, S, K, Dv)`` of one dtype (GQA when
    ``K < H``: query head ``h`` reads key/value head ``h // (H // K)``); ``mask`` ``None`` or boolean
    ``(*b, H, T, S)``. Query ``i`` is slot ``offset + i`` (default ``S - T``: aligned at the end),
    key ``j`` slot ``j``; ``is_causal``: query slot ``i`` sees key slots ``<= i``. ``parts`` act on
    the scaled float32 logits; with them or with ``dropout`` the weights are computed here (jax's
    attention has neither hook). The softmax runs in float32. Returns ``(*b, T, H, Dv)``.
    """
    batch, (q_len, kv_len) = q.shape[:-3], (q.shape[-3], k.shape[-3])
    start = kv_len - q_len if offset is None else offset
    if is_causal and (q_len != kv_len or dropout is not None or parts or offset is not None):
        mask = _and(mask, _causal_mask(q_len, kv_len, start))  # jax aligns its causal mask at the start
        is_causal = False
    if dropout is not None or parts:
        return _attend_weights(q, k, v, mask, scale, dropout, parts, start)
    # jax wants values of the keys' head size: zeros pad the smaller one (no change to the
    # logits, nor to the output columns kept).
    head_dim, value_dim = q.shape[-1], v.shape[-1]
    if value_dim != head_dim:
        size = max(head_dim, value_dim)
        q, k, v = (_pad_last(a, size) for a in (q, k, v))
    flat = math.prod(batch)
    if mask is not None:
        mask = jnp.broadcast_to(mask, (*batch, q.shape[-2], q_len, kv_len)).reshape((flat, q.shape[-2], q_len, kv_len))
    # jax computes bf16/f16 logits in float32 with `jnp.promote_types`, which the strict
    # promotion mode (jax_numpy_dtype_promotion="strict") refuses: allow it for this call only.
    with jax.numpy_dtype_promotion("standard"):
        y = jax.nn.dot_product_attention(
            q.reshape((flat, *q.shape[-3:])),
            k.reshape((flat, *k.shape[-3:])),
            v.reshape((flat, *v.shape[-3:])),
            mask=mask,
            scale=scale,
            is_causal=is_causal,
        )
    y = y.reshape((*batch, *y.shape[1:]))
    return y if value_dim == head_dim else y[..., :value_dim]


def _attend_weights(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    scale: float,
    dropout: _Dropout | None,
    parts: tuple[LogitsPart, ...],
    start: Array | int,
) -> Array:
    """Attention with the weights written out: logit parts, then the mask, softmax, dropout."""
    groups = q.shape[-2] // k.shape[-2]
    k, v = jnp.repeat(k, groups, axis=-2), jnp.repeat(v, groups, axis=-2)
    qh, kh, vh = (jnp.moveaxis(a, -2, -3) for a in (q, k, v))  # (*b, H, T or S, D)
    logits = jnp.matmul(qh, jnp.swapaxes(kh, -1, -2), preferred_element_type=jnp.float32) * scale
    q_index = jax.lax.iota(jnp.int32, q.shape[-3]) + start
    k_index = jax.lax.iota(jnp.int32, k.shape[-3])
    for part in parts:
        logits = part(logits, q_index, k_index)
    if mask is not None:  # as jax: a fully masked row gets equal weights (the plain mean)
        logits = jnp.where(mask, logits, float(np.finfo(np.float32).min))
    weights = jax.nn.softmax(logits, axis=-1)
    if dropout is not None:
        weights = _keep(dropout.key, dropout.rate, logits.shape, weights)
    return jnp.moveaxis(jnp.matmul(weights.astype(v.dtype), vh), -3, -2)


def _check_qkv(who: str, q: Array, k: Array, v: Array, rank: int, axes: str) -> None:
    """``q``, ``k``, ``v`` of at least ``rank`` axes (the last ``axes``), ``k`` and ``v`` agreeing
    on all but the last, ``q`` and ``k`` on the batch axes (all but the last ``rank``)."""
    for name, array in (("q", q), ("k", k), ("v", v)):
        min_rank(who, name, array.shape, rank, axes)
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"{who}: `k` and `v` must agree on every axis but the last, got k {k.shape} and v {v.shape}")
    if q.shape[:-rank] != k.shape[:-rank]:
        raise ValueError(f"{who}: `q` and `k` must have the same batch axes, got q {q.shape} and k {k.shape}")


def _pad_last(a: Array, size: int) -> Array:
    """``a`` with zeros appended to its last axis up to ``size``."""
    return jax.lax.pad(a, np.zeros((), a.dtype), [(0, 0, 0)] * (a.ndim - 1) + [(0, size - a.shape[-1], 0)])


def _positions(who: str, name: str, positions: Array | None, batch: tuple[int, ...], seq: int, offset: Array | int = 0) -> Array:
    """The positions of ``seq`` steps: ``positions`` checked, or ``offset + arange(seq)``."""
    if positions is None:
        return jax.lax.iota(jnp.int32, seq) + offset
    return checked_positions(who, name, positions, batch, seq)


@flexible
def dot_product_attention(
    q: Float[Array, "*batch q_len num_heads head_dim"],
    k: Float[Array, "*batch kv_len num_kv_heads head_dim"],
    v: Float[Array, "*batch kv_len num_kv_heads head_dim_v"],
    mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    key: PRNGKey | None = None,
    dtype: DType | None = None,
) -> Float[Array, "*batch q_len num_heads head_dim_v"]:
    """Scaled dot-product attention of already split heads (no params): ``softmax(q k^T / sqrt(D)) v``.

    ``jax.nn.dot_product_attention``, over any number of batch axes (none included), with
    padding masks, a causal mask aligned at the end and a value head size of its own.
    Grouped-query attention when ``k`` and ``v`` have fewer heads than ``q``: query head ``h``
    reads key/value head ``h // (num_heads // num_kv_heads)``. The softmax runs in float32. A
    query whose every key is masked out gets the plain mean of the values.

    Args:
        q: ``(*batch, q_len, num_heads, head_dim)``.
        k: ``(*batch, kv_len, num_kv_heads, head_dim)``; ``num_kv_heads`` divides ``num_heads``.
        v: ``(*batch, kv_len, num_kv_heads, head_dim_v)``.
        mask: boolean, True = attend, broadcast right-aligned to ``(*batch, num_heads, q_len,
            kv_len)`` as ``jax.nn.dot_product_attention`` reads it: ``(q_len, kv_len)`` is one
            mask for every batch and head, ``(batch, 1, q_len, kv_len)`` one per example. (It was
            ``masks``, which read a rank ``len(batch) + 1`` mask as padding: padding now goes in
            ``padding_mask``.)
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len`` (aligned at the end,
            as in decoding); combined with the masks.
        padding_mask: boolean, True = a real key: broadcast right-aligned to ``(*batch, kv_len)``.
        scale: the logits' scale (default ``1 / sqrt(head_dim)``).
        dropout_rate: dropout of the attention weights (a Python number in ``[0, 1]``; 0, the
            default, for evaluation).
        key: the random key of the dropout (needed when ``dropout_rate > 0``).
        dtype: the computation dtype (default: the promoted dtype of ``q``, ``k``, ``v``).

    Returns:
        ``(*batch, q_len, num_heads, head_dim_v)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> q, kv = jnp.ones((2, 5, 4, 8)), jnp.ones((2, 7, 2, 8))
        >>> nets.dot_product_attention(q, kv, kv, is_causal=True).shape
        (2, 5, 4, 8)
    """
    who = "dot_product_attention"
    _check_qkv(who, q, k, v, 3, "(seq, heads, head_dim)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{who}: `q` and `k` must have the same head size (last axis), got q {q.shape} and k {k.shape}"
        )
    num_heads, kv_heads = q.shape[-2], k.shape[-2]
    if num_heads % kv_heads:
        raise ValueError(
            f"{who}: the key/value heads ({kv_heads}, axis -2 of `k`) must divide the query heads "
            f"({num_heads}, axis -2 of `q`)"
        )
    drop = dropout_of(who, dropout_rate, key, "`dropout_rate=0.0`")
    compute = compute_dtype(dtype, q, k, v)
    full = _full_mask(who, mask, padding_mask, tuple(q.shape[:-3]), num_heads, q.shape[-3], k.shape[-3])
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(cast(q, compute), cast(k, compute), cast(v, compute), full, is_causal, scale, drop)


def _project(att: Attention, params: AttentionParams, name: Literal["query", "key", "value"], x: Array, heads: int, size: int) -> Array:
    """``x`` mapped by the linear ``params[name]`` to ``heads`` heads of ``size``:
    ``(*batch, seq, heads, size)``. Params of other sizes name the projection and the sizes
    (with checking off, the linear alone knows only its own ``params['weights']``)."""
    try:
        y = att.projections(params[name], x, heads * size)
    except ValueError as error:
        raise ValueError(f"attention: `params['{name}']` projects to {heads} heads of size {size}: {error}") from None
    return y.reshape((*y.shape[:-1], heads, size))


def _merge(att: Attention, params: LinearParams, heads: Array, d: int) -> Array:
    """The heads ``(*batch, seq, heads, size)`` merged and mapped back to ``d``."""
    return att.projections(params, heads.reshape((*heads.shape[:-2], heads.shape[-2] * heads.shape[-1])), d, out=True)


def _qkv(
    att: Attention, sizes: _Sizes, params: AttentionParams, q: Array, k: Array, v: Array, q_pos: Array, k_pos: Array
) -> tuple[Array, Array, Array]:
    """The query, key and value heads, ``on_qk`` applied at the positions."""
    qh = _project(att, params, "query", q, att.num_heads, sizes.key_size)
    kh = _project(att, params, "key", k, sizes.kv_heads, sizes.key_size)
    vh = _project(att, params, "value", v, sizes.kv_heads, sizes.value_size)
    if att.on_qk is not None:
        qh, kh = att.on_qk(qh, kh, q_pos, k_pos)
    return qh, kh, vh


def _heads_attended(
    att: Attention,
    sizes: _Sizes,
    heads: tuple[Array, Array, Array],
    mask: Array | None,
    is_causal: bool,
    drop: _Dropout | None = None,
    offset: Array | int | None = None,
) -> Array:
    compute = compute_dtype(att.projections.dtype, *heads)
    qh, kh, vh = (cast(h, compute) for h in heads)
    scale = 1.0 / math.sqrt(sizes.key_size) if att.scale is None else att.scale
    return _attend(qh, kh, vh, mask, is_causal or att.causal, scale, drop, on_logits_parts(att.on_logits), offset)


def _no_positions_without_on_qk(who: str, att: Attention, *positions: Array | None) -> None:
    if att.on_qk is None and any(p is not None for p in positions):
        raise ValueError(
            f"{who}: `positions` are read by the attention's `on_qk` part only: give it one, e.g. "
            "nets.attention(num_heads, on_qk=nets.rotary(10000.0))"
        )


@flexible
def multi_head_attention(
    params: AttentionParams,
    q: Float[Array, "*batch q_len d"],
    k: Float[Array, "*batch kv_len d_k"],
    v: Float[Array, "*batch kv_len d_v"],
    attention: int | Attention,
    mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
    kv_positions: Real[Array, "..."] | None = None,
    key: PRNGKey | None = None,
) -> Float[Array, "*batch q_len d"]:
    """Multi-head attention of queries ``q`` over keys ``k`` and values ``v`` (Vaswani et al.).

    ``q``, ``k`` and ``v`` are projected by :func:`linear` maps to ``num_heads`` query heads
    and ``num_kv_heads`` key/value heads (grouped-query attention when fewer), the attention's
    ``on_qk`` part (e.g. :func:`rotary`) acts on the query and key heads at their positions,
    the heads are attended by scaled dot products (``on_logits`` parts such as
    :func:`soft_cap` or :func:`sliding_window` act on the logits) and projected back to ``d``.
    Everything but the data comes from one :func:`attention` value.

    Args:
        params: ``{"query": {"weights": (d, num_heads * key_size), "bias": ...}, "key":
            {"weights": (d_k, num_kv_heads * key_size), ...}, "value": {"weights": (d_v,
            num_kv_heads * value_size), ...}, "out": {"weights": (num_heads * value_size, d), ...}}``.
        q: ``(*batch, q_len, d)``.
        k: ``(*batch, kv_len, d_k)``.
        v: ``(*batch, kv_len, d_v)``.
        attention: a value of :func:`attention`, or a number of heads (``nets.attention(n)``).
        mask: boolean, True = attend, broadcast right-aligned to ``(*batch, num_heads, q_len,
            kv_len)`` (as ``jax.nn.dot_product_attention``): ``(q_len, kv_len)`` is one mask for all.
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len`` (also when the
            attention value is ``causal``).
        padding_mask: boolean, True = a real key: broadcast right-aligned to ``(*batch, kv_len)``.
        positions: the queries' positions for ``on_qk``, broadcast to ``(*batch, q_len)``
            (default ``0, 1, ..., q_len - 1``).
        kv_positions: the keys' positions, ``(*batch, kv_len)`` (default ``0, ..., kv_len - 1``).
        key: the random key of the attention dropout (when its rate is above 0; evaluate with
            the value of :func:`without_dropout`).

    Returns:
        ``(*batch, q_len, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> q, kv = jnp.ones((2, 5, 8)), jnp.ones((2, 7, 6))
        >>> net = nets.multi_head_attention(_, _, _, _, nets.attention(4, num_kv_heads=2))
        >>> params = trace(net, jax.random.key(0), q, kv, kv)
        >>> jax.tree.map(jnp.shape, params)["key"]
        {'bias': (4,), 'weights': (6, 4)}
        >>> net(params, q, kv, kv).shape
        (2, 5, 8)
    """
    who = "multi_head_attention"
    att = as_attention(who, attention)
    _check_qkv(who, q, k, v, 2, "(seq, features)")
    d = q.shape[-1]
    sizes = _sizes(who, att, d)
    _no_positions_without_on_qk(who, att, positions, kv_positions)
    drop = dropout_of(who, att.dropout_rate, key, "`nets.without_dropout(attention)`")
    batch, q_len, kv_len = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2]
    full = _full_mask(who, mask, padding_mask, batch, att.num_heads, q_len, kv_len)
    q_pos = _positions(who, "positions", positions, batch, q_len)
    k_pos = _positions(who, "kv_positions", kv_positions, batch, kv_len)
    heads = _heads_attended(att, sizes, _qkv(att, sizes, params, q, k, v, q_pos, k_pos), full, is_causal, drop)
    return _merge(att, params["out"], heads, d)


@flexible
def single_head_attention(
    params: AttentionParams,
    q: Float[Array, "*batch q_len d"],
    k: Float[Array, "*batch kv_len d_k"],
    v: Float[Array, "*batch kv_len d_v"],
    mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
) -> Float[Array, "*batch q_len d"]:
    """Attention with one head: :func:`multi_head_attention` with ``nets.attention(1)``, same params.

    Args:
        params: as :func:`multi_head_attention`'s, with ``key_size = value_size = d``.
        q: ``(*batch, q_len, d)``.
        k: ``(*batch, kv_len, d_k)``.
        v: ``(*batch, kv_len, d_v)``.
        mask: boolean, True = attend: broadcast right-aligned to ``(*batch, 1, q_len, kv_len)``.
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len``.
        padding_mask: boolean, True = a real key: ``(*batch, kv_len)``.

    Returns:
        ``(*batch, q_len, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> q = jnp.ones((3, 4))
        >>> params = trace(nets.single_head_attention, jax.random.key(0), q, q, q)
        >>> sorted(params), nets.single_head_attention(params, q, q, q).shape
        (['key', 'out', 'query', 'value'], (3, 4))
    """
    return multi_head_attention(params, q, k, v, 1, mask, is_causal, padding_mask=padding_mask)


@flexible
def multi_head_self_attention(
    params: AttentionParams,
    x: Float[Array, "*batch seq d"],
    attention: int | Attention,
    mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
    key: PRNGKey | None = None,
) -> Float[Array, "*batch seq d"]:
    """Multi-head self-attention: :func:`multi_head_attention` of ``x`` over itself.

    Args:
        params: as :func:`multi_head_attention`'s (``d_k = d_v = d``).
        x: ``(*batch, seq, d)``.
        attention: a value of :func:`attention`, or a number of heads (must divide ``d``).
        mask: boolean, True = attend, broadcast right-aligned to ``(*batch, num_heads, seq,
            seq)``: ``(seq, seq)`` is one mask for all (``jnp.tril(...)`` equals ``is_causal=True``).
        is_causal: position ``i`` attends to positions ``<= i`` only.
        padding_mask: boolean, True = a real token: broadcast right-aligned to ``(*batch, seq)``.
        positions: the steps' positions for ``on_qk``, ``(*batch, seq)`` (default ``0, ..., seq - 1``).
        key: the random key of the attention dropout (when its rate is above 0).

    Returns:
        ``(*batch, seq, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 64, 256))
        >>> params = trace(nets.multi_head_self_attention(_, _, 64), jax.random.key(0), x)
        >>> params["query"]["weights"].shape, nets.multi_head_self_attention(params, x, 64).shape
        ((256, 256), (2, 64, 256))
    """
    min_rank("multi_head_self_attention", "x", x.shape, 2, "(seq, d)")
    return multi_head_attention(
        params,
        x,
        x,
        x,
        attention,
        mask,
        is_causal,
        padding_mask=padding_mask,
        positions=positions,
        kv_positions=positions,
        key=key,
    )


def attention_step(
    who: str,
    params: AttentionParams,
    att: Attention,
    cached: tuple[Array, Array],
    length: Array,
    x: Array,
    mask: Array | None,
    padding_mask: Array | None,
    positions: Array | None,
) -> tuple[Array, tuple[Array, Array]]:
    """Causal self-attention of new positions ``x`` over a cache's keys and values.

    ``cached``: keys ``(*batch, max_len, num_kv_heads, key_size)`` and values; ``length`` the
    slot of ``x``'s first position. Returns ``(y, (keys, values))`` with ``x``'s written.
    """
    d, batch, new_len = x.shape[-1], tuple(x.shape[:-2]), x.shape[-2]
    sizes = _sizes(who, att, d)
    _no_positions_without_on_qk(who, att, positions)
    cached_key, cached_value = cached
    expected = (*batch, cached_key.shape[-3], sizes.kv_heads)
    for name, array, size in (("key", cached_key, sizes.key_size), ("value", cached_value, sizes.value_size)):
        if tuple(array.shape) != (*expected, size):
            raise ValueError(
                f"{who}: the cache's {name}s {tuple(array.shape)} do not fit `x` {tuple(x.shape)}: "
                f"expected {(*expected, size)} (make the cache with a sample of the input's batch and width)"
            )
    max_len = cached_key.shape[-3]
    steps = _positions(who, "positions", positions, batch, new_len, length)
    qh, kh, vh = _qkv(att, sizes, params, x, x, x, steps, steps)
    index: tuple[Array | int, ...] = (*((0,) * len(batch)), length, 0, 0)
    new_key = jax.lax.dynamic_update_slice(cached_key, kh.astype(cached_key.dtype), index)
    new_value = jax.lax.dynamic_update_slice(cached_value, vh.astype(cached_value.dtype), index)
    full = _full_mask(who, mask, padding_mask, batch, att.num_heads, new_len, max_len)
    heads = _heads_attended(att, sizes, (qh, new_key, new_value), full, True, offset=length)
    return _merge(att, params["out"], heads, d), (new_key, new_value)
