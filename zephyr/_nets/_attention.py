"""Attention: ``dot_product_attention``, ``single_head_attention``, ``multi_head_attention``,
``multi_head_self_attention`` and its key/value-cache decoding step."""

from __future__ import annotations

import math
from typing import TypedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import Bool, Float, Int

from .._checks import min_rank, positive_int, positive_int_or_none
from ..core._types import DType
from .._flexible import flexible
from ._dtypes import cast, compute_dtype
from ._linear import LinearParams, linear

MSG_MASKS = """\
`masks` is boolean, True where a query may attend to a key. Either a padding mask of rank
len(batch) + 1 that broadcasts to (*batch, kv_len), or a full mask that broadcasts to
(*batch, num_heads, q_len, kv_len), e.g. (q_len, kv_len); a mask that fits both is a
padding mask:

    pad = jnp.arange(seq)[None, :] < lengths[:, None]       # (batch, seq): True = real token
    y = nets.multi_head_self_attention(params, x, 8, pad)
"""


class AttentionParams(TypedDict):
    """Params of the attention nets: four linear projections.

    ``query`` ``(d, d)``, ``key`` ``(d_k, num_kv_heads * head_dim)``, ``value``
    ``(d_v, num_kv_heads * head_dim)``, ``out`` ``(d, d)``, with ``head_dim = d // num_heads``
    (``d`` the size of the query's last axis); each has a ``bias`` unless ``use_bias=False``.
    """

    query: LinearParams
    key: LinearParams
    value: LinearParams
    out: LinearParams


class KVCache(TypedDict):
    """The key/value cache of :func:`multi_head_self_attention_step`: a plain dict pytree.

    ``key`` and ``value`` are ``(*batch, max_len, num_kv_heads, head_dim)``: the projected keys
    and values of the positions seen so far (zeros after them). ``length`` (int32, shape
    ``()``) is how many positions are filled.
    """

    key: Float[Array, "*batch max_len num_kv_heads head_dim"]
    value: Float[Array, "*batch max_len num_kv_heads head_dim"]
    length: Int[Array, ""]


def _heads(who: str, d: int, num_heads: int, num_kv_heads: int | None) -> tuple[int, int]:
    """``(head_dim, num_kv_heads)``, or a ValueError naming the argument that does not fit."""
    positive_int(who, "num_heads", num_heads)
    if d % num_heads:
        raise ValueError(
            f"{who}: `num_heads` ({num_heads}) must divide the model size (the last axis of the "
            f"query, {d}); the head size is model size // num_heads"
        )
    positive_int_or_none(who, "num_kv_heads", num_kv_heads)
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if num_heads % kv_heads:
        raise ValueError(
            f"{who}: `num_kv_heads` ({kv_heads}) must divide `num_heads` ({num_heads}): "
            "each key/value head serves num_heads // num_kv_heads query heads"
        )
    return d // num_heads, kv_heads


def _full_mask(
    who: str,
    masks: Array | None,
    batch: tuple[int, ...],
    num_heads: int,
    q_len: int,
    kv_len: int,
) -> Array | None:
    """``masks`` broadcast to ``(*batch, num_heads, q_len, kv_len)``, checked."""
    if masks is None:
        return None
    dtype = getattr(masks, "dtype", None)
    if dtype is None or np.dtype(dtype) != np.bool_:
        raise TypeError(
            f"{who}: `masks` must be a boolean array (True = attend), got "
            f"{type(masks).__name__}{'' if dtype is None else f' of dtype {dtype}'}\n{MSG_MASKS}"
        )
    full = (*batch, num_heads, q_len, kv_len)
    padding = (*batch, kv_len)
    shape = tuple(masks.shape)
    if len(shape) == len(batch) + 1 and _broadcasts(shape, padding):
        expanded = jnp.broadcast_to(masks, padding).reshape((*batch, 1, 1, kv_len))
        return jnp.broadcast_to(expanded, full)
    if _broadcasts(shape, full):
        return jnp.broadcast_to(masks, full)
    raise ValueError(
        f"{who}: `masks` must broadcast to (*batch, num_heads, q_len, kv_len) = {full} or be a "
        f"padding mask (*batch, kv_len) = {padding}, got shape {shape}\n{MSG_MASKS}"
    )


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


def _attend(q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float) -> Array:
    """``jax.nn.dot_product_attention`` over any number of batch axes.

    ``q`` ``(*b, T, H, D)``, ``k`` ``(*b, S, K, D)``, ``v`` ``(*b, S, K, Dv)`` of one dtype (GQA when
    ``K < H``: query head ``h`` reads key/value head ``h // (H // K)``); ``mask`` ``None`` or boolean
    ``(*b, H, T, S)``; ``is_causal``: query ``i`` sees keys ``<= i + S - T`` (aligned at the end).
    The softmax runs in float32. Returns ``(*b, T, H, Dv)``.
    """
    batch, (q_len, kv_len) = q.shape[:-3], (q.shape[-3], k.shape[-3])
    if is_causal and q_len != kv_len:  # jax aligns its causal mask at the start
        mask = _and(mask, _causal_mask(q_len, kv_len, kv_len - q_len))
        is_causal = False
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


def _pad_last(a: Array, size: int) -> Array:
    """``a`` with zeros appended to its last axis up to ``size``."""
    return jax.lax.pad(a, np.zeros((), a.dtype), [(0, 0, 0)] * (a.ndim - 1) + [(0, size - a.shape[-1], 0)])


@flexible
def dot_product_attention(
    q: Float[Array, "*batch q_len num_heads head_dim"],
    k: Float[Array, "*batch kv_len num_kv_heads head_dim"],
    v: Float[Array, "*batch kv_len num_kv_heads head_dim_v"],
    masks: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    scale: float | None = None,
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
        masks: boolean, True = attend: a padding mask ``(*batch, kv_len)`` (rank
            ``len(batch) + 1``), or a mask broadcastable to ``(*batch, num_heads, q_len, kv_len)``
            such as ``(q_len, kv_len)``; a mask that fits both is a padding mask.
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len`` (aligned at the end,
            as in decoding); combined with ``masks``.
        scale: the logits' scale (default ``1 / sqrt(head_dim)``).
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
    compute = compute_dtype(dtype, q, k, v)
    mask = _full_mask(who, masks, tuple(q.shape[:-3]), num_heads, q.shape[-3], k.shape[-3])
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(cast(q, compute), cast(k, compute), cast(v, compute), mask, is_causal, scale)


def _project_heads(
    params: LinearParams, x: Array, heads: int, head_dim: int, use_bias: bool, dtype: DType | None, param_dtype: DType | None
) -> Array:
    y = linear(params, x, heads * head_dim, use_bias, dtype=dtype, param_dtype=param_dtype)
    return y.reshape((*y.shape[:-1], heads, head_dim))


@flexible
def multi_head_attention(
    params: AttentionParams,
    q: Float[Array, "*batch q_len d"],
    k: Float[Array, "*batch kv_len d_k"],
    v: Float[Array, "*batch kv_len d_v"],
    num_heads: int,
    masks: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    num_kv_heads: int | None = None,
    use_bias: bool = True,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch q_len d"]:
    """Multi-head attention of queries ``q`` over keys ``k`` and values ``v`` (Vaswani et al.).

    ``q``, ``k`` and ``v`` are projected by :func:`linear` maps to ``num_heads`` query heads
    and ``num_kv_heads`` key/value heads of size ``head_dim = d // num_heads`` (``d`` is the
    last axis of ``q``), attended per head by :func:`dot_product_attention` and projected
    back to ``d``. With ``num_kv_heads < num_heads`` this is grouped-query attention
    (``num_kv_heads=1``: multi-query attention).

    Args:
        params: ``{"query": {"weights": (d, d), "bias": (d,)}, "key": {"weights": (d_k,
            num_kv_heads * head_dim), ...}, "value": {...}, "out": {"weights": (d, d), ...}}``.
        q: ``(*batch, q_len, d)``.
        k: ``(*batch, kv_len, d_k)``.
        v: ``(*batch, kv_len, d_v)``.
        num_heads: the number of query heads; must divide ``d``.
        masks: boolean, True = attend: a padding mask ``(*batch, kv_len)`` (rank
            ``len(batch) + 1``), or a mask broadcastable to ``(*batch, num_heads, q_len, kv_len)``
            such as ``(q_len, kv_len)``; a mask that fits both is a padding mask.
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len``.
        num_kv_heads: key/value heads (default ``num_heads``); must divide ``num_heads``.
        use_bias: whether the projections have a bias.
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
    head_dim, kv_heads = _heads(who, d, num_heads, num_kv_heads)
    batch, q_len, kv_len = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2]
    mask = _full_mask(who, masks, batch, num_heads, q_len, kv_len)
    qh = _project_heads(params["query"], q, num_heads, head_dim, use_bias, dtype, param_dtype)
    kh = _project_heads(params["key"], k, kv_heads, head_dim, use_bias, dtype, param_dtype)
    vh = _project_heads(params["value"], v, kv_heads, head_dim, use_bias, dtype, param_dtype)
    compute = compute_dtype(dtype, qh, kh, vh)
    heads = _attend(cast(qh, compute), cast(kh, compute), cast(vh, compute), mask, is_causal, 1.0 / math.sqrt(head_dim))
    merged = heads.reshape((*batch, q_len, num_heads * head_dim))
    return linear(params["out"], merged, d, use_bias, dtype=dtype, param_dtype=param_dtype)


@flexible
def single_head_attention(
    params: AttentionParams,
    q: Float[Array, "*batch q_len d"],
    k: Float[Array, "*batch kv_len d_k"],
    v: Float[Array, "*batch kv_len d_v"],
    masks: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    use_bias: bool = True,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch q_len d"]:
    """Attention with one head: :func:`multi_head_attention` with ``num_heads=1``, same params.

    Args:
        params: as :func:`multi_head_attention`'s, with ``head_dim = d``.
        q: ``(*batch, q_len, d)``.
        k: ``(*batch, kv_len, d_k)``.
        v: ``(*batch, kv_len, d_v)``.
        masks: boolean, True = attend: broadcastable to ``(*batch, 1, q_len, kv_len)``, or a
            padding mask ``(*batch, kv_len)``.
        is_causal: query ``i`` attends to keys ``j <= i + kv_len - q_len``.

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
        params, q, k, v, 1, masks, is_causal, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype
    )


@flexible
def multi_head_self_attention(
    params: AttentionParams,
    x: Float[Array, "*batch seq d"],
    num_heads: int,
    masks: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    *,
    num_kv_heads: int | None = None,
    use_bias: bool = True,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """Multi-head self-attention: :func:`multi_head_attention` of ``x`` over itself.

    Args:
        params: as :func:`multi_head_attention`'s (``d_k = d_v = d``).
        x: ``(*batch, seq, d)``.
        num_heads: the number of heads; must divide ``d`` (head size ``d // num_heads``).
        masks: boolean, True = attend: broadcastable to ``(*batch, num_heads, seq, seq)``, or a
            padding mask ``(*batch, seq)``.
        is_causal: position ``i`` attends to positions ``<= i`` only.
        num_kv_heads: key/value heads (default ``num_heads``); must divide ``num_heads``.
        use_bias: whether the projections have a bias.
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
        masks,
        is_causal,
        num_kv_heads=num_kv_heads,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
    )


def init_kv_cache(
    x: Float[Array, "*batch seq d"],
    num_heads: int,
    max_len: int,
    *,
    num_kv_heads: int | None = None,
    dtype: DType | None = None,
) -> KVCache:
    """An empty key/value cache for :func:`multi_head_self_attention_step`.

    Args:
        x: a sample input ``(*batch, seq, d)``: only its batch axes, ``d`` and dtype are read.
        num_heads: as given to the attention; must divide ``d``.
        max_len: how many positions the cache holds.
        num_kv_heads: as given to the attention (default ``num_heads``).
        dtype: the cache's dtype (default: ``x``'s).

    Returns:
        ``{"key": zeros (*batch, max_len, num_kv_heads, d // num_heads), "value": same,
        "length": 0}``: a plain dict, a pytree that ``jit`` and ``lax.scan`` carry.

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
    head_dim, kv_heads = _heads(who, x.shape[-1], num_heads, num_kv_heads)
    shape = (*x.shape[:-2], max_len, kv_heads, head_dim)
    cache_dtype = np.dtype(x.dtype) if dtype is None else np.dtype(dtype)
    return {
        "key": jax.lax.full(shape, 0, cache_dtype),
        "value": jax.lax.full(shape, 0, cache_dtype),
        "length": jax.lax.full((), 0, jnp.int32),
    }


@flexible
def multi_head_self_attention_step(
    params: AttentionParams,
    cache: KVCache,
    x: Float[Array, "*batch new_len d"],
    num_heads: int,
    masks: Bool[Array, "..."] | None = None,
    *,
    num_kv_heads: int | None = None,
    use_bias: bool = True,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch new_len d"], KVCache]:
    """Causal self-attention of new positions over a key/value cache: incremental decoding.

    Uses the params of :func:`multi_head_self_attention`. The ``new_len`` positions of ``x``
    (1 when decoding token by token; a whole prompt to pre-fill) are projected, written to
    the cache at ``cache["length"]``, and attend causally to every position written so far.
    Decoding a sequence step by step gives the output of
    ``multi_head_self_attention(params, x, num_heads, is_causal=True)``. Positions past
    ``max_len`` are not checked under ``jit``: size the cache for the whole sequence.

    Args:
        params: as :func:`multi_head_self_attention`'s.
        cache: from :func:`init_kv_cache` or a previous step.
        x: ``(*batch, new_len, d)``: the new positions.
        num_heads: as given to :func:`init_kv_cache`.
        masks: optional, boolean, True = attend, over the cache's positions: broadcastable to
            ``(*batch, num_heads, new_len, max_len)``, or a padding mask ``(*batch, max_len)``;
            combined with the causal mask.
        num_kv_heads: as given to :func:`init_kv_cache`.

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
    head_dim, kv_heads = _heads(who, d, num_heads, num_kv_heads)
    batch, new_len = tuple(x.shape[:-2]), x.shape[-2]
    cached_key = _checked_cache(who, cache, batch, kv_heads, head_dim)
    max_len = cached_key.shape[-3]
    if new_len > max_len:
        raise ValueError(f"{who}: `x` has {new_len} new positions but the cache holds {max_len}")
    length = cache["length"]
    qh = _project_heads(params["query"], x, num_heads, head_dim, use_bias, dtype, param_dtype)
    kh = _project_heads(params["key"], x, kv_heads, head_dim, use_bias, dtype, param_dtype)
    vh = _project_heads(params["value"], x, kv_heads, head_dim, use_bias, dtype, param_dtype)
    cache_dtype = cached_key.dtype
    index: tuple[Array | int, ...] = (*((0,) * len(batch)), length, 0, 0)
    new_key = jax.lax.dynamic_update_slice(cached_key, kh.astype(cache_dtype), index)
    new_value = jax.lax.dynamic_update_slice(cache["value"], vh.astype(cache_dtype), index)
    mask = _full_mask(who, masks, batch, num_heads, new_len, max_len)
    mask = _and(mask, _causal_mask(new_len, max_len, length))
    compute = compute_dtype(dtype, qh, kh, vh)
    heads = _attend(cast(qh, compute), cast(new_key, compute), cast(new_value, compute), mask, False, 1.0 / math.sqrt(head_dim))
    merged = heads.reshape((*batch, new_len, num_heads * head_dim))
    y = linear(params["out"], merged, d, use_bias, dtype=dtype, param_dtype=param_dtype)
    new_cache: KVCache = {"key": new_key, "value": new_value, "length": length + new_len}
    return y, new_cache


def _checked_cache(who: str, cache: KVCache, batch: tuple[int, ...], kv_heads: int, head_dim: int) -> Array:
    """The cache's keys, after checking the cache fits the input; a ValueError naming `cache`."""
    try:
        key, value, length = cache["key"], cache["value"], cache["length"]
    except (KeyError, TypeError):
        raise ValueError(
            f"{who}: `cache` must be a dict with 'key', 'value' and 'length' (from init_kv_cache)"
        ) from None
    shape = tuple(key.shape)
    if len(shape) != len(batch) + 3 or shape[: len(batch)] != batch or shape[-2:] != (kv_heads, head_dim):
        raise ValueError(
            f"{who}: `cache['key']` must be (*batch, max_len, num_kv_heads, head_dim) = "
            f"({', '.join(map(str, batch + ('max_len',) + (kv_heads, head_dim)))}), got {shape}"
        )
    if tuple(value.shape) != shape:
        raise ValueError(f"{who}: `cache['value']` must have the shape of cache['key'] {shape}, got {tuple(value.shape)}")
    if tuple(length.shape) != ():
        raise ValueError(f"{who}: `cache['length']` must be a scalar, got shape {tuple(length.shape)}")
    return key
