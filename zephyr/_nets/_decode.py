"""Cached decoding: ``init_cache`` makes a key/value cache for an attention, a block or a stack
of blocks and keeps that value; ``step`` reads it back, so the step is the forward it was made for."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, core
from jaxtyping import Bool, Float, Real

from .._checks import describe_value, min_rank, positive_int
from ..core._types import DType, Params, ParamsTree
from ._attention import AttentionParams, _sizes, attention_step  # pyright: ignore[reportPrivateUsage]  # the sizes of one attention value
from ._block import Block, TransformerBlockParams
from ._parts import Attention
from ._transformer import TransformerParams, pattern_of

KV = tuple[Array, Array]

MSG_PAST_THE_END = """\
Under `jax.jit` the length is not known while tracing: there the outputs of a step past the
cache's end are NaN (jax.experimental.checkify with float_checks reports them). Size the cache
for the prompt and every sampled token: nets.init_cache(x, max_len=prompt_len + new_tokens, ...)."""


@dataclass(frozen=True, eq=False)  # equal by identity: it holds arrays
class Cache:
    """The key/value cache of :func:`step`, a pytree (``jit`` and ``lax.scan`` carry it).

    Data: ``keys`` and ``values``, one array per block of the pattern (one for an attention or
    a block): ``(*batch, max_len, num_kv_heads, key_size)``, with a leading axis of the
    ``num_layers // len(pattern)`` layers of that slot for a stack; ``length`` (int32, shape
    ``()``): the filled slots, the slot of the next step. Static: ``model`` (the attention, the
    block or the pattern it was made for), ``num_layers`` (None: not a stack), ``final_norm``
    and ``scan`` (the stack's layout), which :func:`step` follows.
    """

    keys: tuple[Array, ...]
    values: tuple[Array, ...]
    length: Array
    model: Attention | Block | tuple[Block, ...] = dataclasses.field(metadata={"static": True})
    num_layers: int | None = dataclasses.field(default=None, metadata={"static": True})
    final_norm: bool = dataclasses.field(default=True, metadata={"static": True})
    scan: bool = dataclasses.field(default=True, metadata={"static": True})

    @property
    def max_len(self) -> int:
        """How many positions the cache holds."""
        return int(self.keys[0].shape[-3])


jax.tree_util.register_dataclass(
    Cache, data_fields=["keys", "values", "length"], meta_fields=["model", "num_layers", "final_norm", "scan"]
)


def _attentions(model: Attention | Block | tuple[Block, ...]) -> tuple[Attention, ...]:
    if isinstance(model, Attention):
        return (model,)
    return (model.attention,) if isinstance(model, Block) else tuple(b.attention for b in model)


def init_cache(
    x: Float[Array, "*batch seq d"],
    max_len: int,
    model: Attention | Block | Sequence[Block],
    num_layers: int | None = None,
    *,
    final_norm: bool = True,
    scan: bool = True,
    dtype: DType | None = None,
) -> Cache:
    """An empty cache for :func:`step` that remembers what it decodes.

    With ``num_layers=None`` the cache is for one attention (the params of
    ``multi_head_self_attention``) or one block (of ``transformer_block``); with ``num_layers``
    it is for ``transformer(params, x, num_layers, model, final_norm=..., scan=...)``. Every
    attention must be ``causal`` (decoding sees the past only).

    Args:
        x: a sample input ``(*batch, seq, d)``: only its batch axes, ``d`` and dtype are read.
        max_len: how many positions the cache holds (prompt and new tokens).
        model: a value of :func:`attention` or :func:`block`, or a pattern of blocks.
        num_layers: the stack's depth (None: one attention or block).
        final_norm: as given to ``transformer``.
        scan: as given to ``transformer`` (the layout of ``params["layers"]``).
        dtype: the cache's dtype (default: ``x``'s).

    Returns:
        A :class:`Cache` of zeros and ``length`` 0.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets
        >>> block = nets.block(nets.attention(4, num_kv_heads=2, causal=True))
        >>> cache = nets.init_cache(jnp.ones((2, 1, 8)), 16, block, 3)
        >>> cache.keys[0].shape, cache.max_len, int(cache.length)
        ((3, 2, 16, 2, 2), 16, 0)
    """
    who = "init_cache"
    min_rank(who, "x", x.shape, 2, "(seq, d)")
    positive_int(who, "max_len", max_len)
    static: Attention | Block | tuple[Block, ...]
    if num_layers is None:
        if not isinstance(model, (Attention, Block)):
            raise TypeError(
                f"{who}: without `num_layers`, `model` must be a nets.attention(...) or nets.block(...) value, "
                f"got {describe_value(model)}"
            )
        static = model
    else:
        static = pattern_of(who, model, num_layers)
    for att in _attentions(static):
        if not att.causal:
            raise ValueError(
                f"{who}: decoding attends to the past only: the attention must be causal, got "
                f"{att}; make it with nets.attention(..., causal=True)"
            )
    batch, d = tuple(x.shape[:-2]), x.shape[-1]
    cache_dtype = np.dtype(x.dtype) if dtype is None else np.dtype(dtype)
    layers = () if num_layers is None else (num_layers // len(_attentions(static)),)
    sizes = [_sizes(who, att, d) for att in _attentions(static)]
    keys = tuple(jax.lax.full((*layers, *batch, max_len, s.kv_heads, s.key_size), 0, cache_dtype) for s in sizes)
    values = tuple(jax.lax.full((*layers, *batch, max_len, s.kv_heads, s.value_size), 0, cache_dtype) for s in sizes)
    return Cache(keys, values, jax.lax.full((), 0, jnp.int32), static, num_layers, final_norm, scan)


_MARKS = {"attention": "query", "block": "attention", "stack": "layers"}
"""The top-level key that the params of each kind of cached model have and the others lack."""


def _check_params_fit(who: str, params: ParamsTree, kind: str) -> None:
    """Params of another kind than the cache's model (a stack's params with a block's cache, say)
    are a named error, not a KeyError from inside the step. Only plain dicts: during trace the
    params declare their keys as the step reads them."""
    keys: list[object] = list(params) if isinstance(params, dict) else []
    if isinstance(params, dict) and _MARKS[kind] not in keys:
        what = [f"the params of a {k}" for k, mark in _MARKS.items() if mark in keys] or [f"{describe_value(params)} (keys {keys})"]
        raise ValueError(
            f"{who}: the cache was made for a{'n' * (kind == 'attention')} {kind}, but `params` are {what[0]}: make the cache "
            "from the value the params were traced with (nets.init_cache(x, max_len, model), with `num_layers` for a stack)"
        )


def _checked_length(who: str, cache: Cache, new_len: int) -> Array:
    length: object = cache.length  # checked: a user may have built or edited the cache
    if not isinstance(length, jax.Array) or not jnp.issubdtype(length.dtype, jnp.integer):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise TypeError(
            f"{who}: `cache.length` must be an integer array of shape () (from init_cache), got {describe_value(length)}"
        )
    if length.shape != ():
        raise ValueError(f"{who}: `cache.length` must be a scalar, got shape {length.shape}")
    if not isinstance(length, core.Tracer):
        value = int(length)
        if value < 0:
            raise ValueError(f"{who}: `cache.length` must be >= 0, got {value}")
        if value + new_len > cache.max_len:
            raise ValueError(
                f"{who}: decoding past the cache's end: max_len {cache.max_len}, length {value} + "
                f"{new_len} new positions = {value + new_len}\n{MSG_PAST_THE_END}"
            )
    return jnp.asarray(length, jnp.int32)  # pyright: ignore[reportUnknownMemberType]  # jax 0.12 types `device` partially


def step(
    params: Params,
    cache: Cache,
    x: Float[Array, "*batch new_len d"],
    *,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
) -> tuple[Float[Array, "*batch new_len d"], Cache]:
    """The causal forward of new positions over a cache: what the cache was made for (an
    attention, a block or a stack), with the keys and values of the positions before.

    The ``new_len`` positions of ``x`` (a prompt to pre-fill, then one token at a time, in a
    ``lax.scan`` if you like) are written at slot ``cache.length`` and attend to every slot
    so far. Pre-filling and stepping give the causal full forward of the same value.

    Args:
        params: the params of the attention, block or transformer the cache was made for.
        cache: from :func:`init_cache` or a previous step.
        x: ``(*batch, new_len, d)``.
        mask: over the cache's slots, broadcast right-aligned to ``(*batch, num_heads, new_len,
            max_len)``; combined with the causal mask.
        padding_mask: True = a real token, over the cache's slots ``(*batch, max_len)`` (left
            padding: False on the pads, and ``positions`` counted from the first real token).
        positions: the new steps' positions for ``on_qk`` (default ``length + 0, 1, ...``).

    Returns:
        ``(y, new_cache)``, ``y`` ``(*batch, new_len, d)``; past ``max_len`` a ValueError
        (eagerly) or NaN (under ``jit``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> block = nets.block(nets.attention(2, causal=True, on_qk=nets.rotary()))
        >>> x = jax.random.normal(jax.random.key(1), (2, 5, 8))
        >>> params = trace(nets.transformer(_, _, 2, block), jax.random.key(0), x)
        >>> cache = nets.init_cache(x, 5, block, 2)
        >>> y0, cache = nets.step(params, cache, x[:, :3])
        >>> y1, cache = nets.step(params, cache, x[:, 3:])
        >>> full = nets.transformer(params, x, 2, block)
        >>> bool(jnp.allclose(jnp.concatenate([y0, y1], axis=1), full, atol=1e-5))
        True
    """
    who = "step"
    if not isinstance(cache, Cache):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise TypeError(f"{who}: `cache` must come from nets.init_cache(...), got {describe_value(cache)}")
    min_rank(who, "x", x.shape, 2, "(new_len, d)")
    new_len = x.shape[-2]
    length = _checked_length(who, cache, new_len)
    model = cache.model
    _check_params_fit(who, params, "attention" if isinstance(model, Attention) else "block" if isinstance(model, Block) else "stack")

    def cached_layer(b: Block, p: TransformerBlockParams, h: Array, k: Array, v: Array) -> tuple[Array, KV]:
        written: list[KV] = []

        def attend(attention_params: AttentionParams, a: Array) -> Array:
            y, kv = attention_step(who, attention_params, b.attention, (k, v), length, a, mask, padding_mask, positions)
            written.append(kv)
            return y

        return b.apply(p, h, attend, None), written[0]

    kvs: list[KV]
    if isinstance(model, Attention):
        one = (cache.keys[0], cache.values[0])
        y, kv = attention_step(who, cast(AttentionParams, params), model, one, length, x, mask, padding_mask, positions)
        kvs = [kv]
    elif isinstance(model, Block):
        y, kv = cached_layer(model, cast(TransformerBlockParams, params), x, cache.keys[0], cache.values[0])
        kvs = [kv]
    else:
        y, kvs = _stack_step(cast(TransformerParams, params), cache, x, model, cached_layer)
    # Past the end (only possible under jit, where the length is not known): NaN, made by a
    # division 0 / 0 so that checkify's float_checks names it; y * 1 / 1 == y otherwise.
    inside = jnp.less_equal(length + new_len, cache.max_len).astype(y.dtype)
    keys, values = tuple(k for k, _v in kvs), tuple(v for _k, v in kvs)
    return y * inside / inside, dataclasses.replace(cache, keys=keys, values=values, length=length + new_len)


def _stack_step(
    params: TransformerParams,
    cache: Cache,
    x: Array,
    pattern: tuple[Block, ...],
    cached_layer: Callable[[Block, TransformerBlockParams, Array, Array, Array], tuple[Array, KV]],
) -> tuple[Array, list[KV]]:
    """A step of a stack: groups of ``len(pattern)`` layers, scanned or looped as the params are."""
    p, groups = len(pattern), cast(int, cache.num_layers) // len(pattern)
    if cache.scan:
        slots = cast(dict[int, TransformerBlockParams], params["layers"] if p > 1 else {0: params["layers"]})

        def group(h: Array, xs: tuple[Any, tuple[Array, ...], tuple[Array, ...]]) -> tuple[Array, tuple[KV, ...]]:
            written: list[KV] = []
            for j, b in enumerate(pattern):
                h, kv = cached_layer(b, xs[0][j], h, xs[1][j], xs[2][j])
                written.append(kv)
            return h, tuple(written)

        y, stacked = jax.lax.scan(group, x, (slots, cache.keys, cache.values))
        kvs = list(stacked)
    else:
        looped = cast(dict[int, TransformerBlockParams], params["layers"])
        per_layer: list[list[KV]] = [[(k[g], v[g]) for g in range(groups)] for k, v in zip(cache.keys, cache.values)]
        y = x
        for i in range(groups * p):
            k, v = per_layer[i % p][i // p]
            y, per_layer[i % p][i // p] = cached_layer(pattern[i % p], looped[i], y, k, v)
        kvs = [(jnp.stack([k for k, _v in slot]), jnp.stack([v for _k, v in slot])) for slot in per_layer]
    if cache.final_norm:
        y = pattern[0].norm(params["final_norm"], y)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when final_norm
    return y, kvs
