"""Transformers: ``transformer_block`` (pre-norm) and ``transformer`` (a stack of blocks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NotRequired, TypedDict

import jax
from jax import Array
from jaxtyping import Bool, Float

from .._checks import min_rank, positive_int, positive_int_or_none
from .._stack import stack
from ..core._types import DType
from .._flexible import flexible
from ._attention import AttentionParams, multi_head_self_attention
from ._linear import LinearParams, mlp
from ._norm import NormParams, layer_norm


class TransformerBlockParams(TypedDict):
    """Params of :func:`transformer_block`.

    ``attention_norm`` and ``mlp_norm``: the params of ``nets.layer_norm``; ``attention``: the
    params of ``multi_head_self_attention``; ``mlp``: ``{0: linear d -> mlp_dim, 1: linear mlp_dim -> d}``.
    """

    attention_norm: NormParams
    attention: AttentionParams
    mlp_norm: NormParams
    mlp: dict[int, LinearParams]


class TransformerParams(TypedDict):
    """Params of :func:`transformer`.

    ``layers``: with ``scan=True`` one :class:`TransformerBlockParams` whose every leaf has a
    leading axis of size ``num_layers`` (layer ``i`` is slice ``i``); with ``scan=False`` a
    dict ``{i: TransformerBlockParams}``. Stacking the looped layers' leaves
    (``jax.tree.map(lambda *a: jnp.stack(a), *layers.values())``) converts one into the
    other. ``final_norm``: the params of ``nets.layer_norm`` (absent with ``final_norm=False``).
    """

    layers: TransformerBlockParams | dict[int, TransformerBlockParams]
    final_norm: NotRequired[NormParams]


def _remat(
    f: Callable[[TransformerBlockParams, Array], Array], prevent_cse: bool
) -> Callable[[TransformerBlockParams, Array], Array]:
    """``jax.checkpoint(f)``: recompute ``f``'s activations in the backward pass."""
    remat: Callable[[TransformerBlockParams, Array], Array] = jax.checkpoint(f, prevent_cse=prevent_cse)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax types the result as returning Unknown
    return remat


def _pre_norm(params: NormParams, x: Array, dtype: DType | None, param_dtype: DType | None) -> Array:
    return layer_norm(params, x, -1, dtype=dtype, param_dtype=param_dtype)


@flexible
def transformer_block(
    params: TransformerBlockParams,
    x: Float[Array, "*batch seq d"],
    num_heads: int,
    *,
    mlp_dim: int | None = None,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    activation: Callable[[Array], Array] = jax.nn.gelu,
    num_kv_heads: int | None = None,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """A pre-norm transformer block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``.

    Args:
        params: :class:`TransformerBlockParams`: ``attention_norm``, ``attention``,
            ``mlp_norm``, ``mlp`` (layers ``0``: ``d -> mlp_dim``, ``1``: ``mlp_dim -> d``).
        x: ``(*batch, seq, d)``.
        num_heads: attention heads; must divide ``d``.
        mlp_dim: the MLP's hidden width (default ``4 * d``).
        mask: the attention mask, as for ``multi_head_self_attention``.
        padding_mask: True = a real token, ``(*batch, seq)``.
        is_causal: causal self-attention.
        activation: the MLP's activation (default ``jax.nn.gelu``).
        num_kv_heads: key/value heads for grouped-query attention (default ``num_heads``).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(*batch, seq, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5, 8))
        >>> params = trace(nets.transformer_block(_, _, 2, mlp_dim=16), jax.random.key(0), x)
        >>> sorted(params), params["mlp"][0]["weights"].shape
        (['attention', 'attention_norm', 'mlp', 'mlp_norm'], (8, 16))
        >>> nets.transformer_block(params, x, 2, mlp_dim=16).shape
        (2, 5, 8)
    """
    min_rank("transformer_block", "x", x.shape, 2, "(seq, d)")
    d = x.shape[-1]
    positive_int_or_none("transformer_block", "mlp_dim", mlp_dim)
    hidden = 4 * d if mlp_dim is None else mlp_dim
    h = _pre_norm(params["attention_norm"], x, dtype, param_dtype)
    h = multi_head_self_attention(
        params["attention"],
        h,
        num_heads,
        mask,
        is_causal,
        padding_mask=padding_mask,
        num_kv_heads=num_kv_heads,
        dtype=dtype,
        param_dtype=param_dtype,
    )
    x = x + h.astype(x.dtype)
    h = _pre_norm(params["mlp_norm"], x, dtype, param_dtype)
    h = mlp(params["mlp"], h, [hidden, d], activation, dtype=dtype, param_dtype=param_dtype)
    return x + h.astype(x.dtype)


@flexible
def transformer(
    params: TransformerParams,
    x: Float[Array, "*batch seq d"],
    num_layers: int,
    num_heads: int,
    *,
    scan: bool = True,
    remat: bool = False,
    mlp_dim: int | None = None,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    activation: Callable[[Array], Array] = jax.nn.gelu,
    num_kv_heads: int | None = None,
    final_norm: bool = True,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """``num_layers`` :func:`transformer_block` s, then a layer norm.

    With ``scan=True`` the layers' params are stacked (a leading axis of size ``num_layers``
    on every leaf, see ``zephyr.stack``) and the blocks run in one ``jax.lax.scan``: one
    block is traced and compiled whatever the depth. With ``scan=False`` layer ``i`` reads
    ``params["layers"][i]`` and the blocks are unrolled (as ``thread_params`` does). Both give
    the same output for the same weights. ``remat=True`` wraps each block in
    ``jax.checkpoint``: activations are recomputed in the backward pass instead of stored.

    Args:
        params: :class:`TransformerParams`: ``layers`` and ``final_norm``.
        x: ``(*batch, seq, d)``.
        num_layers: how many blocks.
        num_heads: attention heads; must divide ``d``.
        scan: stacked params and ``lax.scan`` (True) or a Python loop over ``params["layers"][i]``.
        remat: recompute each block's activations in the backward pass (``jax.checkpoint``).
        mlp_dim: the MLP's hidden width (default ``4 * d``).
        mask: the attention mask, as for ``multi_head_self_attention``.
        padding_mask: True = a real token, ``(*batch, seq)``.
        is_causal: causal self-attention.
        activation: the MLP's activation (default ``jax.nn.gelu``).
        num_kv_heads: key/value heads for grouped-query attention.
        final_norm: whether to end with a layer norm (``params["final_norm"]``).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(*batch, seq, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5, 8))
        >>> net = nets.transformer(_, _, 3, 2, mlp_dim=16)
        >>> params = trace(net, jax.random.key(0), x)
        >>> params["layers"]["attention"]["query"]["weights"].shape, net(params, x).shape
        ((3, 8, 8), (2, 5, 8))
    """
    positive_int("transformer", "num_layers", num_layers)
    min_rank("transformer", "x", x.shape, 2, "(seq, d)")

    def block(layer_params: TransformerBlockParams, h: Array) -> Array:
        return transformer_block(
            layer_params,
            h,
            num_heads,
            mlp_dim=mlp_dim,
            mask=mask,
            padding_mask=padding_mask,
            is_causal=is_causal,
            activation=activation,
            num_kv_heads=num_kv_heads,
            dtype=dtype,
            param_dtype=param_dtype,
        )

    # In a scan, jax.checkpoint need not prevent CSE (the loop already does).
    layer: Callable[[TransformerBlockParams, Array], Array] = (
        _remat(block, prevent_cse=not scan) if remat else block
    )
    y = stack(layer, num_layers, scan=scan)(params["layers"], x)
    if final_norm:
        norm = params["final_norm"]  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when final_norm
        y = _pre_norm(norm, y, dtype, param_dtype)
    return y
