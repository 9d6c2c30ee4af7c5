"""Attention: ``dot_product_attention``, ``single_head_attention``, ``multi_head_attention``,
``multi_head_self_attention`` and its key/value-cache decoding step."""

from __future__ import annotations

import math
from typing import NamedTuple, TypedDict, cast as typing_cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import Bool, Float, Int, Real

from .._checks import check_random_key, check_rate, min_rank, positive_int, positive_int_or_none
from ..core._initializers import default_initializer, zeros
from ..core._types import DType, Initializer, PRNGKey
from .._flexible import flexible
from ._dropout import _keep  # pyright: ignore[reportPrivateUsage]  # the one dropout mask of the nets
from ._dtypes import cast, compute_dtype
from ._embed import rope as rope_embed
from ._linear import LinearParams, linear

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


class KVCache(TypedDict):
    """The key/value cache of :func:`multi_head_self_attention_step`: a plain dict pytree.

    ``key`` ``(*batch, max_len, num_kv_heads, key_size)`` and ``value`` ``(*batch, max_len,
    num_kv_heads, value_size)``: the projected (and, with ``rope=True``, rotated) keys and the
    values of the positions seen so far (zeros after them). ``length`` (int32, shape ``()``) is
    how many positions are filled; it is also the position of the next step (what ``rope``
    rotates by).
    """

    key: Float[Array, "*batch max_len num_kv_heads key_size"]
    value: Float[Array, "*batch max_len num_kv_heads value_size"]
    length: Int[Array, ""]


class _Sizes(NamedTuple):
    kv_heads: int
    key_size: int
    value_size: int


def _heads(
    who: str, d: int, num_heads: int, num_kv_heads: int | None, key_size: int | None = None, value_size: int | None = None
) -> _Sizes:
    """The heads' sizes, or a ValueError naming the argument that does not fit."""
    positive_int(who, "num_heads", num_heads)
    positive_int_or_none(who, "key_size", key_size)
    positive_int_or_none(who, "value_size", value_size)
    if key_size is None and d % num_heads:
        raise ValueError(
            f"{who}: `num_heads` ({num_heads}) must divide the model size (the last axis of the "
            f"query, {d}); the head size is model size // num_heads unless `key_size` is given"
        )
    positive_int_or_none(who, "num_kv_heads", num_kv_heads)
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if num_heads % kv_heads:
        raise ValueError(
            f"{who}: `num_kv_heads` ({kv_heads}) must divide `num_heads` ({num_heads}): "
            "each key/value head serves num_heads // num_kv_heads query heads"
        )
    size = d // num_heads if key_size is None else key_size
    return _Sizes(kv_heads, size, size if value_size is None else value_size)


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
        if not _broadcasts(shape, full):
            hint = (
                f"; a padding mask {shape} goes in `padding_mask`"
                if len(shape) == len(padding) and _broadcasts(shape, padding)
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
        if not _broadcasts(shape, padding):
            raise ValueError(
                f"{who}: `padding_mask` must broadcast (right-aligned) to (*batch, kv_len) = {padding}, "
                f"got shape {shape}\n{MSG_MASKS}"
            )
        expanded = jnp.broadcast_to(padding_mask, padding).reshape((*batch, 1, 1, kv_len))
        result = _and(result, jnp.broadcast_to(expanded, full))
    return result


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _causal_mask(q_len: int, kv_len: int, offset: Array | int) -> Array:
    """``(q_len, kv_len)``: query ``i`` (at absolute position ``offset + i``) sees keys ``<= it``."""
    return jax.lax.iota(jnp.int32, kv_len)[None, :] <= jax.lax.iota(jnp.int32, q_len)[:, None] + offset


def _and(a: Array | None, b: Array) -> Array:
    return b if a is None else jnp.logical_and(a, jnp.broadcast_to(b, a.shape))


class _Dropout(NamedTuple):
    key: PRNGKey
    rate: float


def _dropout(who: str, rate: float, key: PRNGKey | None, deterministic: bool) -> _Dropout | None:
    """The attention dropout to apply, or None (rate 0 or deterministic); checks ``rate`` and ``key``."""
    check_rate(who, "dropout_rate", rate)
    if rate == 0.0 or deterministic:
        return None
    if key is None:
        raise ValueError(
            f"{who}: `dropout_rate` is {rate} but no `key` was given: pass `key=` (a JAX random key) "
            "for training, or `deterministic=True` for evaluation"
        )
    check_random_key(key, who)
    return _Dropout(key, rate)


def _attend(
    q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float, dropout: _Dropout | None = None
) -> Array:
    """``jax.nn.dot_product_attention`` over any number of batch axes.

    ``q`` ``(*b, T, H, D)``, ``k`` ``(*b, S, K, D)``, ``v`` ``(*b, S, K, Dv)`` of one dtype (GQA when
    ``K < H``: query head ``h`` reads key/value head ``h // (H // K)``); ``mask`` ``None`` or boolean
    ``(*b, H, T, S)``; ``is_causal``: query ``i`` sees keys ``<= i + S - T`` (aligned at the end).
    The softmax runs in float32. With ``dropout``, the attention weights are dropped (jax's
    attention has no dropout, so the weights are computed here). Returns ``(*b, T, H, Dv)``.
    """
    batch, (q_len, kv_len) = q.shape[:-3], (q.shape[-3], k.shape[-3])
    if is_causal and (q_len != kv_len or dropout is not None):  # jax aligns its causal mask at the start
        mask = _and(mask, _causal_mask(q_len, kv_len, kv_len - q_len))
        is_causal = False
    if dropout is not None:
        return _attend_with_dropout(q, k, v, mask, scale, dropout)
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


def _attend_with_dropout(q: Array, k: Array, v: Array, mask: Array | None, scale: float, dropout: _Dropout) -> Array:
    """Attention whose weights are dropped (inverted dropout); the rest as :func:`_attend`."""
    groups = q.shape[-2] // k.shape[-2]
    k, v = jnp.repeat(k, groups, axis=-2), jnp.repeat(v, groups, axis=-2)
    qh, kh, vh = (jnp.moveaxis(a, -2, -3) for a in (q, k, v))  # (*b, H, T or S, D)
    logits = jnp.matmul(qh, jnp.swapaxes(kh, -1, -2), preferred_element_type=jnp.float32) * scale
    if mask is not None:  # as jax: a fully masked row gets equal weights (the plain mean)
        logits = jnp.where(mask, logits, float(np.finfo(np.float32).min))
    weights = _keep(dropout.key, dropout.rate, logits.shape, jax.nn.softmax(logits, axis=-1))
    return jnp.moveaxis(jnp.matmul(weights.astype(v.dtype), vh), -3, -2)


def _pad_last(a: Array, size: int) -> Array:
    """``a`` with zeros appended to its last axis up to ``size``."""
    return jax.lax.pad(a, np.zeros((), a.dtype), [(0, 0, 0)] * (a.ndim - 1) + [(0, size - a.shape[-1], 0)])


def _positions(who: str, name: str, positions: Array | None, batch: tuple[int, ...], seq: int, offset: Array | int = 0) -> Array:
    """The positions of ``seq`` steps: ``positions`` checked to broadcast to ``(*batch, seq)``, or
    ``offset + arange(seq)``."""
    if positions is None:
        return jax.lax.iota(jnp.int32, seq) + offset
    shape = tuple(getattr(positions, "shape", ()))
    dtype = getattr(positions, "dtype", None)
    if dtype is None or not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        raise TypeError(f"{who}: `{name}` must be an integer or float array, got {type(positions).__name__}")
    if not shape or not _broadcasts(shape, (*batch, seq)):
        raise ValueError(
            f"{who}: `{name}` must broadcast (right-aligned) to (*batch, seq) = {(*batch, seq)}, got shape {shape}"
        )
    return positions


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
    deterministic: bool = False,
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
        dropout_rate: dropout of the attention weights (a Python number in ``[0, 1]``).
        key: the random key of the dropout (needed when ``dropout_rate > 0`` and not ``deterministic``).
        deterministic: no dropout (evaluation).
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
    for name, array in (("q", q), ("k", k), ("v", v)):
        min_rank(who, name, array.shape, 3, "(seq, heads, head_dim)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{who}: `q` and `k` must have the same head size (last axis), got q {q.shape} and k {k.shape}"
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"{who}: `k` and `v` must agree on every axis but the last, got k {k.shape} and v {v.shape}"
        )
    if q.shape[:-3] != k.shape[:-3]:
        raise ValueError(f"{who}: `q` and `k` must have the same batch axes, got q {q.shape} and k {k.shape}")
    num_heads, kv_heads = q.shape[-2], k.shape[-2]
    if num_heads % kv_heads:
        raise ValueError(
            f"{who}: the key/value heads ({kv_heads}, axis -2 of `k`) must divide the query heads "
            f"({num_heads}, axis -2 of `q`)"
        )
    drop = _dropout(who, dropout_rate, key, deterministic)
    compute = compute_dtype(dtype, q, k, v)
    full = _full_mask(who, mask, padding_mask, tuple(q.shape[:-3]), num_heads, q.shape[-3], k.shape[-3])
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(cast(q, compute), cast(k, compute), cast(v, compute), full, is_causal, scale, drop)


class _Projections(NamedTuple):
    """How :func:`multi_head_attention` projects: sizes, bias, initializers, dtypes."""

    num_heads: int
    sizes: _Sizes
    use_bias: bool
    weights_initializer: Initializer
    out_initializer: Initializer
    bias_initializer: Initializer
    dtype: DType | None
    param_dtype: DType | None

    def heads(self, params: LinearParams, x: Array, heads: int, size: int) -> Array:
        y = linear(
            params,
            x,
            heads * size,
            self.use_bias,
            weights_initializer=self.weights_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        return y.reshape((*y.shape[:-1], heads, size))

    def qkv(self, params: AttentionParams, q: Array, k: Array, v: Array) -> tuple[Array, Array, Array]:
        s = self.sizes
        return (
            self.heads(params["query"], q, self.num_heads, s.key_size),
            self.heads(params["key"], k, s.kv_heads, s.key_size),
            self.heads(params["value"], v, s.kv_heads, s.value_size),
        )

    def out(self, params: LinearParams, heads: Array, d: int) -> Array:
        merged = heads.reshape((*heads.shape[:-2], heads.shape[-2] * heads.shape[-1]))
        return linear(
            params,
            merged,
            d,
            self.use_bias,
            weights_initializer=self.out_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )


def _rope_checked(who: str, rope: bool, key_size: int, positions: Array | None, kv_positions: Array | None = None) -> None:
    if not rope and (positions is not None or kv_positions is not None):
        raise ValueError(f"{who}: `positions` are read by the rotary embedding only: pass `rope=True` with them")
    if rope and key_size % 2:
        raise ValueError(f"{who}: `rope=True` rotates pairs of features: the key size must be even, got {key_size}")


@flexible
def multi_head_attention(
    params: AttentionParams,
    q: Float[Array, "*batch q_len d"],
    k: Float[Array, "*batch kv_len d_k"],
    v: Float[Array, "*batch kv_len d_v"],
    num_heads: int,
    mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    positions: Real[Array, "..."] | None = None,
    kv_positions: Real[Array, "..."] | None = None,
    dropout_rate: float = 0.0,
    key: PRNGKey | None = None,
    deterministic: bool = False,
    weights_initializer: Initializer = default_initializer,
    out_initializer: Initializer | None = None,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch q_len d"]:
    """Multi-head attention of queries ``q`` over keys ``k`` and values ``v`` (Vaswani et al.).

    ``q``, ``k`` and ``v`` are projected by :func:`linear` maps to ``num_heads`` query heads
    and ``num_kv_heads`` key/value heads (queries and keys of ``key_size``, values of
    ``value_size``, both ``d // num_heads`` by default, ``d`` the last axis of ``q``), attended
    per head by :func:`dot_product_attention` and projected back to ``d``. With
    ``num_kv_heads < num_heads`` this is grouped-query attention (``num_kv_heads=1``:
    multi-query attention). With ``rope=True`` the query and key heads are rotated by
    :func:`rope` at their positions before attending.

    Args:
        params: ``{"query": {"weights": (d, num_heads * key_size), "bias": ...}, "key":
            {"weights": (d_k, num_kv_heads * key_size), ...}, "value": {"weights": (d_v,
            num_kv_heads * value_size), ...}, "out": {"weights": (num_heads * value_size, d), ...}}``.
        q: ``(*batch, q_len, d)``.
        k: ``(*batch, kv_len, d_k)``.
        v: ``(*batch, kv_len, d_v)``.
        num_heads: the number of query heads; must divide ``d`` unless ``key_size`` is given.
        mask: boolean, True = attend, broadcast right-aligned to ``(*batch, num_heads, q_len,
            kv_len)`` (as ``jax.nn.dot_product_attention``): ``(q_len, kv_len)`` is one mask for
            all. Its meaning never depends on the batch size. (It was ``masks``; padding now
            goes in ``padding_mask``.)
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len``.
        padding_mask: boolean, True = a real key: broadcast right-aligned to ``(*batch, kv_len)``.
        num_kv_heads: key/value heads (default ``num_heads``); must divide ``num_heads``.
        key_size: the size of each query and key head (default ``d // num_heads``).
        value_size: the size of each value head (default ``key_size``).
        use_bias: whether the projections have a bias.
        rope: rotate queries and keys by :func:`rope` ("rotate half", GPT-NeoX and LLaMA).
        rope_base: the rotation's wavelength base.
        positions: the queries' positions, broadcast to ``(*batch, q_len)`` (default ``0, 1, ...,
            q_len - 1``); only with ``rope=True``.
        kv_positions: the keys' positions, ``(*batch, kv_len)`` (default ``0, ..., kv_len - 1``).
        dropout_rate: dropout of the attention weights.
        key: the dropout's random key (needed when ``dropout_rate > 0`` and not ``deterministic``).
        deterministic: no dropout (evaluation).
        weights_initializer: initializer of the query, key and value weights.
        out_initializer: initializer of the output projection's weights (default
            ``weights_initializer``), e.g. a scaled residual init.
        bias_initializer: initializer of the biases (default zeros).
        dtype: the computation dtype (default: the promoted dtype of the inputs and params).
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(*batch, q_len, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> q, kv = jnp.ones((2, 5, 8)), jnp.ones((2, 7, 6))
        >>> net = nets.multi_head_attention(_, _, _, _, 4, num_kv_heads=2)
        >>> params = trace(net, jax.random.key(0), q, kv, kv)
        >>> jax.tree.map(jnp.shape, params)["key"]
        {'bias': (4,), 'weights': (6, 4)}
        >>> net(params, q, kv, kv).shape
        (2, 5, 8)
    """
    who = "multi_head_attention"
    min_rank(who, "q", q.shape, 2, "(seq, features)")
    min_rank(who, "k", k.shape, 2, "(seq, features)")
    min_rank(who, "v", v.shape, 2, "(seq, features)")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"{who}: `k` and `v` must agree on every axis but the last, got k {k.shape} and v {v.shape}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"{who}: `q` and `k` must have the same batch axes, got q {q.shape} and k {k.shape}")
    d = q.shape[-1]
    sizes = _heads(who, d, num_heads, num_kv_heads, key_size, value_size)
    _rope_checked(who, rope, sizes.key_size, positions, kv_positions)
    drop = _dropout(who, dropout_rate, key, deterministic)
    batch, q_len, kv_len = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2]
    full = _full_mask(who, mask, padding_mask, batch, num_heads, q_len, kv_len)
    project = _Projections(
        num_heads,
        sizes,
        use_bias,
        weights_initializer,
        weights_initializer if out_initializer is None else out_initializer,
        bias_initializer,
        dtype,
        param_dtype,
    )
    qh, kh, vh = project.qkv(params, q, k, v)
    if rope:
        qh = rope_embed(qh, _positions(who, "positions", positions, batch, q_len), base=rope_base)
        kh = rope_embed(kh, _positions(who, "kv_positions", kv_positions, batch, kv_len), base=rope_base)
    compute = compute_dtype(dtype, qh, kh, vh)
    scale = 1.0 / math.sqrt(sizes.key_size)
    heads = _attend(cast(qh, compute), cast(kh, compute), cast(vh, compute), full, is_causal, scale, drop)
    return project.out(params["out"], heads, d)


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
    use_bias: bool = True,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch q_len d"]:
    """Attention with one head: :func:`multi_head_attention` with ``num_heads=1``, same params.

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
    return multi_head_attention(
        params,
        q,
        k,
        v,
        1,
        mask,
        is_causal,
        padding_mask=padding_mask,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
    )


@flexible
def multi_head_self_attention(
    params: AttentionParams,
    x: Float[Array, "*batch seq d"],
    num_heads: int,
    mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    positions: Real[Array, "..."] | None = None,
    dropout_rate: float = 0.0,
    key: PRNGKey | None = None,
    deterministic: bool = False,
    weights_initializer: Initializer = default_initializer,
    out_initializer: Initializer | None = None,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """Multi-head self-attention: :func:`multi_head_attention` of ``x`` over itself.

    Args:
        params: as :func:`multi_head_attention`'s (``d_k = d_v = d``).
        x: ``(*batch, seq, d)``.
        num_heads: the number of heads; must divide ``d`` unless ``key_size`` is given.
        mask: boolean, True = attend, broadcast right-aligned to ``(*batch, num_heads, seq,
            seq)``: ``(seq, seq)`` is one mask for all (``jnp.tril(...)`` equals ``is_causal=True``
            at every batch size).
        is_causal: position ``i`` attends to positions ``<= i`` only.
        padding_mask: boolean, True = a real token: broadcast right-aligned to ``(*batch, seq)``.
        num_kv_heads: key/value heads (default ``num_heads``); must divide ``num_heads``.
        key_size: the size of each query and key head (default ``d // num_heads``).
        value_size: the size of each value head (default ``key_size``).
        use_bias: whether the projections have a bias.
        rope: rotate queries and keys by :func:`rope` at ``positions``.
        rope_base: the rotation's wavelength base.
        positions: the steps' positions, broadcast to ``(*batch, seq)`` (default ``0, ..., seq - 1``);
            only with ``rope=True``.
        dropout_rate: dropout of the attention weights.
        key: the dropout's random key (needed when ``dropout_rate > 0`` and not ``deterministic``).
        deterministic: no dropout (evaluation).
        weights_initializer: initializer of the query, key and value weights.
        out_initializer: initializer of the output projection's weights (default ``weights_initializer``).
        bias_initializer: initializer of the biases (default zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

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
        num_heads,
        mask,
        is_causal,
        padding_mask=padding_mask,
        num_kv_heads=num_kv_heads,
        key_size=key_size,
        value_size=value_size,
        use_bias=use_bias,
        rope=rope,
        rope_base=rope_base,
        positions=positions,
        kv_positions=positions,
        dropout_rate=dropout_rate,
        key=key,
        deterministic=deterministic,
        weights_initializer=weights_initializer,
        out_initializer=out_initializer,
        bias_initializer=bias_initializer,
        dtype=dtype,
        param_dtype=param_dtype,
    )


def init_kv_cache(
    x: Float[Array, "*batch seq d"],
    num_heads: int,
    max_len: int,
    *,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    dtype: DType | None = None,
) -> KVCache:
    """An empty key/value cache for :func:`multi_head_self_attention_step`.

    Args:
        x: a sample input ``(*batch, seq, d)``: only its batch axes, ``d`` and dtype are read.
        num_heads: as given to the attention.
        max_len: how many positions the cache holds.
        num_kv_heads: as given to the attention (default ``num_heads``).
        key_size: as given to the attention (default ``d // num_heads``).
        value_size: as given to the attention (default ``key_size``).
        dtype: the cache's dtype (default: ``x``'s).

    Returns:
        ``{"key": zeros (*batch, max_len, num_kv_heads, key_size), "value": zeros (*batch,
        max_len, num_kv_heads, value_size), "length": 0}``: a plain dict, a pytree that ``jit``
        and ``lax.scan`` carry.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets
        >>> cache = nets.init_kv_cache(jnp.ones((2, 1, 8)), 4, 16, num_kv_heads=2)
        >>> jax.tree.map(jnp.shape, cache)
        {'key': (2, 16, 2, 2), 'length': (), 'value': (2, 16, 2, 2)}
    """
    who = "init_kv_cache"
    min_rank(who, "x", x.shape, 2, "(seq, d)")
    positive_int(who, "max_len", max_len)
    sizes = _heads(who, x.shape[-1], num_heads, num_kv_heads, key_size, value_size)
    batch = tuple(x.shape[:-2])
    cache_dtype = np.dtype(x.dtype) if dtype is None else np.dtype(dtype)
    return {
        "key": jax.lax.full((*batch, max_len, sizes.kv_heads, sizes.key_size), 0, cache_dtype),
        "value": jax.lax.full((*batch, max_len, sizes.kv_heads, sizes.value_size), 0, cache_dtype),
        "length": jax.lax.full((), 0, jnp.int32),
    }


@flexible
def multi_head_self_attention_step(
    params: AttentionParams,
    cache: KVCache,
    x: Float[Array, "*batch new_len d"],
    num_heads: int,
    mask: Bool[Array, "..."] | None = None,
    *,
    padding_mask: Bool[Array, "..."] | None = None,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    positions: Real[Array, "..."] | None = None,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch new_len d"], KVCache]:
    """Causal self-attention of new positions over a key/value cache: incremental decoding.

    Uses the params of :func:`multi_head_self_attention`. The ``new_len`` positions of ``x``
    (1 when decoding token by token; a whole prompt to pre-fill) are projected, written to
    the cache at ``cache["length"]``, and attend causally to every position written so far.
    Decoding a sequence step by step gives the output of
    ``multi_head_self_attention(params, x, num_heads, is_causal=True)`` (with the same
    ``rope``, ``key_size``, ... options). Positions past ``max_len`` are not checked under
    ``jit``: size the cache for the whole sequence.

    Args:
        params: as :func:`multi_head_self_attention`'s.
        cache: from :func:`init_kv_cache` or a previous step.
        x: ``(*batch, new_len, d)``: the new positions.
        num_heads: as given to :func:`init_kv_cache`.
        mask: optional, boolean, True = attend, over the cache's positions: broadcast
            right-aligned to ``(*batch, num_heads, new_len, max_len)``; combined with the causal mask.
        padding_mask: optional, boolean, True = a real token, over the cache's positions:
            ``(*batch, max_len)``.
        num_kv_heads: as given to :func:`init_kv_cache`.
        key_size: as given to :func:`init_kv_cache`.
        value_size: as given to :func:`init_kv_cache`.
        use_bias: whether the projections have a bias.
        rope: rotate queries and keys by :func:`rope` (the cache keeps rotated keys).
        rope_base: the rotation's wavelength base.
        positions: the new steps' positions for ``rope``, ``(*batch, new_len)`` (default
            ``cache["length"] + 0, 1, ..., new_len - 1``).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(y, new_cache)``: ``y`` ``(*batch, new_len, d)``; ``new_cache`` with the new keys and
        values and ``length + new_len``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jax.random.normal(jax.random.key(1), (2, 5, 8))
        >>> params = trace(nets.multi_head_self_attention(_, _, 4), jax.random.key(0), x)
        >>> cache = nets.init_kv_cache(x, 4, max_len=5)
        >>> steps = []
        >>> for t in range(5):
        ...     y_t, cache = nets.multi_head_self_attention_step(params, cache, x[:, t : t + 1], 4)
        ...     steps.append(y_t)
        >>> full = nets.multi_head_self_attention(params, x, 4, is_causal=True)
        >>> bool(jnp.allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5))
        True
    """
    who = "multi_head_self_attention_step"
    min_rank(who, "x", x.shape, 2, "(new_len, d)")
    d = x.shape[-1]
    sizes = _heads(who, d, num_heads, num_kv_heads, key_size, value_size)
    _rope_checked(who, rope, sizes.key_size, positions)
    batch, new_len = tuple(x.shape[:-2]), x.shape[-2]
    cached_key = _checked_cache(who, cache, batch, sizes)
    max_len = cached_key.shape[-3]
    if new_len > max_len:
        raise ValueError(f"{who}: `x` has {new_len} new positions but the cache holds {max_len}")
    length = cache["length"]
    project = _Projections(num_heads, sizes, use_bias, default_initializer, default_initializer, zeros, dtype, param_dtype)
    qh, kh, vh = project.qkv(params, x, x, x)
    if rope:
        steps = _positions(who, "positions", positions, batch, new_len, length)
        qh, kh = rope_embed(qh, steps, base=rope_base), rope_embed(kh, steps, base=rope_base)
    cache_dtype = cached_key.dtype
    index: tuple[Array | int, ...] = (*((0,) * len(batch)), length, 0, 0)
    new_key = jax.lax.dynamic_update_slice(cached_key, kh.astype(cache_dtype), index)
    new_value = jax.lax.dynamic_update_slice(cache["value"], vh.astype(cache_dtype), index)
    full = _full_mask(who, mask, padding_mask, batch, num_heads, new_len, max_len)
    full = _and(full, _causal_mask(new_len, max_len, length))
    compute = compute_dtype(dtype, qh, kh, vh)
    scale = 1.0 / math.sqrt(sizes.key_size)
    heads = _attend(cast(qh, compute), cast(new_key, compute), cast(new_value, compute), full, False, scale)
    y = project.out(params["out"], heads, d)
    new_cache: KVCache = {"key": new_key, "value": new_value, "length": length + new_len}
    return y, new_cache


def _checked_cache(who: str, cache: KVCache, batch: tuple[int, ...], sizes: _Sizes) -> Array:
    """The cache's keys, after checking the cache fits the input; a ValueError naming `cache`."""
    try:
        key, value, length = cache["key"], cache["value"], cache["length"]
    except (KeyError, TypeError):
        raise ValueError(
            f"{who}: `cache` must be a dict with 'key', 'value' and 'length' (from init_kv_cache)"
        ) from None
    for name, array, size, what in (("key", key, sizes.key_size, "head_dim"), ("value", value, sizes.value_size, "value_size")):
        shape = tuple(array.shape)
        if len(shape) != len(batch) + 3 or shape[: len(batch)] != batch or shape[-2:] != (sizes.kv_heads, size):
            dims = ", ".join(map(str, (*batch, "max_len", sizes.kv_heads, size)))
            raise ValueError(
                f"{who}: `cache['{name}']` must be (*batch, max_len, num_kv_heads, {what}) = "
                f"({dims}), got {shape}"
            )
    if value.shape[-3] != key.shape[-3]:
        raise ValueError(f"{who}: `cache['value']` must hold as many positions as cache['key'], got {value.shape} and {key.shape}")
    if tuple(length.shape) != ():
        raise ValueError(f"{who}: `cache['length']` must be a scalar, got shape {tuple(length.shape)}")
    return key
