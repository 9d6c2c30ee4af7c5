"""Transformers from a block value: ``transformer_block`` (one block) and ``transformer`` (a stack
of blocks, uniform or a repeating pattern such as local/global layers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NotRequired, TypedDict, cast

import jax
from jax import Array
from jaxtyping import Bool, Float, Real

from .._checks import describe_value, min_rank, positive_int
from .._stack import stack
from ..core._types import PRNGKey
from .._flexible import flexible
from ._attention import AttentionParams, dropout_of, multi_head_self_attention
from ._block import Block, TransformerBlockParams, as_block
from ._parts import Attention
from ._norm import NormParams, RMSNormParams


class TransformerParams(TypedDict):
    """Params of :func:`transformer`.

    ``layers``: with ``scan=True`` and one block, one :class:`TransformerBlockParams` whose
    every leaf has a leading axis of size ``num_layers``; with a pattern of ``p`` blocks,
    ``{j: block j's params stacked over the num_layers // p groups}`` (layer ``i`` is slot
    ``i % p``, slice ``i // p``); with ``scan=False``, ``{i: TransformerBlockParams}``.
    ``final_norm``: the params of the first block's norm (absent with ``final_norm=False``).
    """

    layers: TransformerBlockParams | dict[int, TransformerBlockParams]
    final_norm: NotRequired[NormParams | RMSNormParams]


Layer = Callable[[Block, TransformerBlockParams, Array, "PRNGKey | None"], Array]


def dropout_key(who: str, blocks: Sequence[Block], key: PRNGKey | None) -> PRNGKey | None:
    """The key of the blocks' dropouts, None when every rate is 0; a ValueError when one is not
    and no key is given (dropout is never left out silently: evaluation uses the blocks without)."""
    rate = max(r for b in blocks for r in (b.residual_dropout, b.attention.dropout_rate))
    drop = dropout_of(who, rate, key, "the block of `nets.without_dropout(block)`")
    return None if drop is None else drop.key


def forward(
    b: Block,
    params: TransformerBlockParams,
    x: Array,
    mask: Array | None,
    padding_mask: Array | None,
    positions: Array | None,
    key: PRNGKey | None,
) -> Array:
    """The block ``b`` on ``x`` with the full self-attention."""
    attention_key = None if key is None else jax.random.fold_in(key, 1)

    def attend(p: AttentionParams, h: Array) -> Array:
        return multi_head_self_attention(
            p,
            h,
            b.attention,
            mask,
            padding_mask=padding_mask,
            positions=positions,
            key=attention_key,
        )

    return b.apply(params, x, attend, key)


@flexible
def transformer_block(
    params: TransformerBlockParams,
    x: Float[Array, "*batch seq d"],
    block: int | Block,
    *,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
    key: PRNGKey | None = None,
) -> Float[Array, "*batch seq d"]:
    """A transformer block made of parts; ``nets.block(num_heads)`` by default: pre-norm,
    ``x + attention(norm(x))``, then ``x + mlp(norm(x))`` (GELU MLP of ``4 * d``, layer norms).

    Args:
        params: :class:`TransformerBlockParams`: ``attention_norm``, ``attention``,
            ``mlp_norm``, ``mlp`` (names as the block's arrangement reads them).
        x: ``(*batch, seq, d)``.
        block: a value of :func:`block`, or a number of heads (``nets.block(num_heads)``).
        mask: the attention mask, as for ``multi_head_self_attention``.
        padding_mask: True = a real token, broadcast right-aligned to ``(*batch, seq)``.
        positions: the steps' positions for the attention's ``on_qk`` (default ``0, ..., seq - 1``).
        key: the random key of the dropouts (when a rate is above 0; evaluate with the block of
            :func:`without_dropout`).

    Returns:
        ``(*batch, seq, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5, 8))
        >>> block = nets.block(2, nets.feed_forward(16))
        >>> params = trace(nets.transformer_block(_, _, block), jax.random.key(0), x)
        >>> sorted(params), params["mlp"][0]["weights"].shape
        (['attention', 'attention_norm', 'mlp', 'mlp_norm'], (8, 16))
        >>> nets.transformer_block(params, x, block).shape
        (2, 5, 8)
    """
    who = "transformer_block"
    min_rank(who, "x", x.shape, 2, "(seq, d)")
    b = as_block(who, block)
    return forward(b, params, x, mask, padding_mask, positions, dropout_key(who, (b,), key))


def pattern_of(who: str, block: int | Attention | Block | Sequence[Block], num_layers: int) -> tuple[Block, ...]:
    """The blocks of a stack's repeating pattern, checked against ``num_layers``."""
    positive_int(who, "num_layers", num_layers)
    if isinstance(block, (int, Block)):
        return (as_block(who, block),)
    blocks = tuple(block) if isinstance(block, Sequence) else ()  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
    if not blocks or not all(isinstance(b, Block) for b in blocks):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise TypeError(
            f"{who}: `block` must be a number of heads, a nets.block(...) value or a sequence of them, "
            f"got {describe_value(block)}"
        )
    if num_layers % len(blocks):
        raise ValueError(
            f"{who}: a pattern of {len(blocks)} blocks repeats a whole number of times: `num_layers` "
            f"({num_layers}) must be a multiple of {len(blocks)}"
        )
    return blocks


def _checkpoint(f: Callable[..., Array], prevent_cse: bool) -> Callable[..., Array]:
    remat: Callable[..., Array] = jax.checkpoint(f, prevent_cse=prevent_cse)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax types the result as returning Unknown
    return remat


def run_layers(
    pattern: tuple[Block, ...],
    num_layers: int,
    layers: TransformerBlockParams | dict[int, TransformerBlockParams],
    x: Array,
    key: PRNGKey | None,
    layer: Layer,
    scan: bool = True,
    remat: bool = False,
) -> Array:
    """``num_layers`` layers (``pattern`` repeated): groups of ``len(pattern)`` blocks in ``stack``."""
    p = len(pattern)
    if p > 1 and not scan:  # one layer after another, params["layers"][i]
        looped = cast(dict[int, TransformerBlockParams], layers)
        for i in range(num_layers):
            step = _checkpoint(layer, True) if remat else layer
            x = step(pattern[i % p], looped[i], x, None if key is None else jax.random.fold_in(key, i))
        return x

    def group(params: TransformerBlockParams, h: Array, group_key: PRNGKey | None = None) -> Array:
        for j, b in enumerate(pattern):
            slot = params if p == 1 else cast(dict[int, TransformerBlockParams], params)[j]
            h = layer(b, slot, h, None if group_key is None else jax.random.fold_in(group_key, j))
        return h

    if key is None:
        plain = _checkpoint(group, not scan) if remat else group
        return stack(plain, num_layers // p, scan=scan)(layers, x)

    def keyed(params: TransformerBlockParams, group_key: PRNGKey, h: Array) -> Array:
        return group(params, h, group_key)

    with_key = _checkpoint(keyed, not scan) if remat else keyed
    return stack(with_key, num_layers // p, with_key=True, scan=scan)(layers, key, x)


@flexible
def transformer(
    params: TransformerParams,
    x: Float[Array, "*batch seq d"],
    num_layers: int,
    block: int | Block | Sequence[Block],
    *,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
    key: PRNGKey | None = None,
    final_norm: bool = True,
    scan: bool = True,
    remat: bool = False,
) -> Float[Array, "*batch seq d"]:
    """``num_layers`` blocks, then the block's norm.

    ``block`` is one :func:`block` value for every layer, or a pattern of blocks that repeats
    (``(local, global)``: layer ``i`` is ``pattern[i % p]``). With ``scan=True`` each slot's
    params are stacked and the groups of ``p`` layers run in one ``jax.lax.scan``; with
    ``scan=False`` layer ``i`` reads ``params["layers"][i]``. ``remat=True`` recomputes each
    group's activations in the backward pass (``jax.checkpoint``). With dropout each layer gets
    its own key. ``nets.init_cache`` and ``nets.step`` decode with the same block value.

    Args:
        params: :class:`TransformerParams`: ``layers`` and ``final_norm``.
        x: ``(*batch, seq, d)``.
        num_layers: how many blocks (a multiple of the pattern's length).
        block: a :func:`block` value, a sequence of them (a pattern), or a number of heads.
        mask: the attention mask, as for ``multi_head_self_attention``.
        padding_mask: True = a real token, broadcast right-aligned to ``(*batch, seq)``.
        positions: the steps' positions for ``on_qk``, ``(*batch, seq)`` (default ``0, ..., seq - 1``).
        key: the random key of the dropouts (evaluate with :func:`without_dropout`'s blocks).
        final_norm: end with the (first) block's norm, ``params["final_norm"]``.
        scan: stacked params and ``lax.scan`` (True) or a loop over ``params["layers"][i]``.
        remat: recompute the activations in the backward pass (``jax.checkpoint``).

    Returns:
        ``(*batch, seq, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5, 8))
        >>> net = nets.transformer(_, _, 3, nets.block(2, nets.feed_forward(16)))
        >>> params = trace(net, jax.random.key(0), x)
        >>> params["layers"]["attention"]["query"]["weights"].shape, net(params, x).shape
        ((3, 8, 8), (2, 5, 8))
    """
    who = "transformer"
    pattern = pattern_of(who, block, num_layers)
    min_rank(who, "x", x.shape, 2, "(seq, d)")
    layer_key = dropout_key(who, pattern, key)

    def layer(b: Block, p: TransformerBlockParams, h: Array, k: PRNGKey | None) -> Array:
        return forward(b, p, h, mask, padding_mask, positions, k)

    y = run_layers(pattern, num_layers, params["layers"], x, layer_key, layer, scan, remat)
    if final_norm:
        y = pattern[0].norm(params["final_norm"], y)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when final_norm
    return y


