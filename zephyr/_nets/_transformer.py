"""Transformers: ``transformer_block`` (pre-norm, post-norm or parallel), ``transformer`` (a
stack of blocks) and their cached decoding steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, NotRequired, TypedDict, cast

import jax
import jax.numpy as jnp
from jax import Array
from jaxtyping import Bool, Float, Real

from .._checks import check_option, check_random_key, check_rate, min_rank, positive_int, positive_int_or_none
from .._stack import stack
from ..core._initializers import default_initializer, zeros
from ..core._types import DType, Initializer, PRNGKey
from .._flexible import flexible
from ._attention import AttentionParams, KVCache, init_kv_cache, multi_head_self_attention, multi_head_self_attention_step
from ._dropout import _keep  # pyright: ignore[reportPrivateUsage]  # the one dropout mask of the nets
from ._linear import LinearParams, linear, mlp
from ._norm import NormParams, RMSNormParams, layer_norm, rms_norm

Norm = Literal["layer", "rms"]
Placement = Literal["pre", "post", "parallel"]


class GatedMLPParams(TypedDict):
    """Params of the gated MLP (``gated=True``): ``down(activation(gate(x)) * up(x))``."""

    gate: LinearParams
    up: LinearParams
    down: LinearParams


class TransformerBlockParams(TypedDict):
    """Params of :func:`transformer_block`.

    ``attention_norm`` and ``mlp_norm``: the params of ``nets.layer_norm`` (or ``nets.rms_norm``
    with ``norm="rms"``; a parallel block has no ``mlp_norm``); ``attention``: the params of
    ``multi_head_self_attention``; ``mlp``: ``{0: linear d -> mlp_dim, 1: linear mlp_dim -> d}``,
    or with ``gated=True`` ``{"gate": d -> mlp_dim, "up": d -> mlp_dim, "down": mlp_dim -> d}``.
    """

    attention_norm: NormParams | RMSNormParams
    attention: AttentionParams
    mlp_norm: NotRequired[NormParams | RMSNormParams]
    mlp: dict[int, LinearParams] | GatedMLPParams


class TransformerParams(TypedDict):
    """Params of :func:`transformer`.

    ``layers``: with ``scan=True`` one :class:`TransformerBlockParams` whose every leaf has a
    leading axis of size ``num_layers`` (layer ``i`` is slice ``i``); with ``scan=False`` a
    dict ``{i: TransformerBlockParams}``. Stacking the looped layers' leaves
    (``jax.tree.map(lambda *a: jnp.stack(a), *layers.values())``) converts one into the
    other. ``final_norm``: the params of the norm (absent with ``final_norm=False``).
    """

    layers: TransformerBlockParams | dict[int, TransformerBlockParams]
    final_norm: NotRequired[NormParams | RMSNormParams]


class _Block(NamedTuple):
    """The options of a block, shared by the block, the stack and their decoding steps."""

    who: str
    num_heads: int
    mlp_dim: int | None
    activation: Callable[[Array], Array]
    num_kv_heads: int | None
    key_size: int | None
    value_size: int | None
    use_bias: bool
    rope: bool
    rope_base: float
    norm: Norm
    norm_eps: float
    placement: Placement
    gated: bool
    dropout_rate: float
    attention_dropout_rate: float
    deterministic: bool
    weights_initializer: Initializer
    out_initializer: Initializer | None
    bias_initializer: Initializer
    dtype: DType | None
    param_dtype: DType | None

    def check(self, key: PRNGKey | None) -> None:
        check_option(self.who, "norm", self.norm, ("layer", "rms"))
        check_option(self.who, "placement", self.placement, ("pre", "post", "parallel"))
        positive_int_or_none(self.who, "mlp_dim", self.mlp_dim)
        check_rate(self.who, "dropout_rate", self.dropout_rate)
        check_rate(self.who, "attention_dropout_rate", self.attention_dropout_rate)
        if self.dropping and key is None:
            raise ValueError(
                f"{self.who}: dropout is on (`dropout_rate` {self.dropout_rate}, `attention_dropout_rate` "
                f"{self.attention_dropout_rate}) but no `key` was given: pass `key=` for training or "
                "`deterministic=True` for evaluation"
            )
        if self.dropping:
            check_random_key(key, self.who)

    @property
    def dropping(self) -> bool:
        return not self.deterministic and (self.dropout_rate > 0 or self.attention_dropout_rate > 0)

    def normalize(self, params: NormParams | RMSNormParams, x: Array) -> Array:
        if self.norm == "rms":
            rms: RMSNormParams = {"scale": params["scale"]}  # pyright: ignore[reportTypedDictNotRequiredAccess]  # rms params have a scale
            return rms_norm(rms, x, -1, eps=self.norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)
        ln = cast(NormParams, params)  # layer-norm params when norm="layer"
        return layer_norm(ln, x, -1, eps=self.norm_eps, dtype=self.dtype, param_dtype=self.param_dtype)

    def feed_forward(self, params: dict[int, LinearParams] | GatedMLPParams, x: Array) -> Array:
        d = x.shape[-1]
        hidden = 4 * d if self.mlp_dim is None else self.mlp_dim
        out_init = self.weights_initializer if self.out_initializer is None else self.out_initializer
        if not self.gated:
            plain = cast(dict[int, LinearParams], params)  # {0, 1} when not gated
            return mlp(
                plain,
                x,
                [hidden, d],
                self.activation,
                use_bias=self.use_bias,
                weights_initializer=self.weights_initializer,
                final_weights_initializer=out_init,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
            )
        gated = cast(GatedMLPParams, params)  # gate/up/down when gated

        def project(p: LinearParams, h: Array, size: int, init: Initializer) -> Array:
            return linear(
                p,
                h,
                size,
                self.use_bias,
                weights_initializer=init,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
            )

        h = self.activation(project(gated["gate"], x, hidden, self.weights_initializer))
        h = h * project(gated["up"], x, hidden, self.weights_initializer)
        return project(gated["down"], h, d, out_init)

    def residual(
        self, params: TransformerBlockParams, x: Array, attend: Callable[[Array], Array], key: PRNGKey | None
    ) -> Array:
        """The block around ``attend`` (the attention of a normalized input): norms, MLP, dropout."""
        keys: list[PRNGKey | None] = [None, None]
        if self.dropping and key is not None and self.dropout_rate > 0:
            keys = list(jax.random.split(key, 2))

        def drop(h: Array, k: PRNGKey | None) -> Array:
            h = h.astype(x.dtype)
            return h if k is None else _keep(k, self.dropout_rate, h.shape, h)

        if self.placement == "parallel":
            h = self.normalize(params["attention_norm"], x)
            return x + drop(attend(h), keys[0]) + drop(self.feed_forward(params["mlp"], h), keys[1])
        mlp_norm = params["mlp_norm"]  # pyright: ignore[reportTypedDictNotRequiredAccess]  # present unless parallel
        if self.placement == "post":
            x = self.normalize(params["attention_norm"], x + drop(attend(x), keys[0]))
            return self.normalize(mlp_norm, x + drop(self.feed_forward(params["mlp"], x), keys[1]))
        x = x + drop(attend(self.normalize(params["attention_norm"], x)), keys[0])
        return x + drop(self.feed_forward(params["mlp"], self.normalize(mlp_norm, x)), keys[1])

    def forward(
        self,
        params: TransformerBlockParams,
        x: Array,
        mask: Array | None,
        padding_mask: Array | None,
        is_causal: bool,
        positions: Array | None,
        key: PRNGKey | None,
    ) -> Array:
        attention_key = None if key is None else jax.random.fold_in(key, 1)

        def attend(h: Array) -> Array:
            return multi_head_self_attention(
                params["attention"],
                h,
                self.num_heads,
                mask,
                is_causal,
                padding_mask=padding_mask,
                positions=positions,
                dropout_rate=self.attention_dropout_rate,
                key=attention_key,
                deterministic=self.deterministic or self.attention_dropout_rate == 0,
                weights_initializer=self.weights_initializer,
                out_initializer=self.out_initializer,
                bias_initializer=self.bias_initializer,
                num_kv_heads=self.num_kv_heads,
                key_size=self.key_size,
                value_size=self.value_size,
                use_bias=self.use_bias,
                rope=self.rope,
                rope_base=self.rope_base,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
            )

        return self.residual(params, x, attend, key)

    def step(
        self,
        params: TransformerBlockParams,
        cache: KVCache,
        x: Array,
        mask: Array | None,
        padding_mask: Array | None,
        positions: Array | None,
    ) -> tuple[Array, KVCache]:
        new_cache: list[KVCache] = []

        def attend(h: Array) -> Array:
            y, updated = multi_head_self_attention_step(
                params["attention"],
                cache,
                h,
                self.num_heads,
                mask,
                padding_mask=padding_mask,
                positions=positions,
                num_kv_heads=self.num_kv_heads,
                key_size=self.key_size,
                value_size=self.value_size,
                use_bias=self.use_bias,
                rope=self.rope,
                rope_base=self.rope_base,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
            )
            new_cache.append(updated)
            return y

        return self.residual(params, x, attend, None), new_cache[0]


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
    positions: Real[Array, "..."] | None = None,
    key: PRNGKey | None = None,
    deterministic: bool = False,
    activation: Callable[[Array], Array] = jax.nn.gelu,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    norm: Norm = "layer",
    norm_eps: float = 1e-5,
    placement: Placement = "pre",
    gated: bool = False,
    dropout_rate: float = 0.0,
    attention_dropout_rate: float = 0.0,
    weights_initializer: Initializer = default_initializer,
    out_initializer: Initializer | None = None,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """A transformer block; by default pre-norm: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``.

    Args:
        params: :class:`TransformerBlockParams`: ``attention_norm``, ``attention``,
            ``mlp_norm``, ``mlp`` (layers ``0``: ``d -> mlp_dim``, ``1``: ``mlp_dim -> d``).
        x: ``(*batch, seq, d)``.
        num_heads: attention heads; must divide ``d`` unless ``key_size`` is given.
        mlp_dim: the MLP's hidden width (default ``4 * d``).
        mask: the attention mask, as for ``multi_head_self_attention``: broadcast right-aligned
            to ``(*batch, num_heads, seq, seq)``.
        padding_mask: True = a real token, broadcast right-aligned to ``(*batch, seq)``.
        is_causal: causal self-attention.
        positions: the steps' positions for ``rope``, ``(*batch, seq)`` (default ``0, ..., seq - 1``).
        key: the random key of the dropout (needed when a dropout rate is above 0 and not ``deterministic``).
        deterministic: no dropout (evaluation).
        activation: the MLP's activation (default ``jax.nn.gelu``; ``jax.nn.silu`` with
            ``gated=True`` is SwiGLU).
        num_kv_heads: key/value heads for grouped-query attention (default ``num_heads``).
        key_size: the size of each query and key head (default ``d // num_heads``).
        value_size: the size of each value head (default ``key_size``).
        use_bias: whether the attention and MLP projections have biases.
        rope: rotary position embedding of queries and keys (``nets.rope``, rotate half).
        rope_base: the rotation's wavelength base.
        norm: ``"layer"`` (``nets.layer_norm``) or ``"rms"`` (``nets.rms_norm``, no offset).
        norm_eps: the norms' epsilon.
        placement: ``"pre"`` (``x + f(norm(x))``), ``"post"`` (``norm(x + f(x))``, the original
            transformer) or ``"parallel"`` (``x + attention(norm(x)) + mlp(norm(x))``, one norm, GPT-J).
        gated: a gated MLP ``down(activation(gate(x)) * up(x))`` instead of ``linear, activation, linear``.
        dropout_rate: dropout of each branch's output before it is added to the residual.
        attention_dropout_rate: dropout of the attention weights.
        weights_initializer: initializer of the attention and MLP weights.
        out_initializer: initializer of the attention's output and the MLP's last weights, the
            projections into the residual (default ``weights_initializer``; e.g.
            ``variance_scaling(2 / num_layers, ...)`` or nanoGPT's scaled init).
        bias_initializer: initializer of the biases (default zeros).
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
    block = _Block(
        "transformer_block", num_heads, mlp_dim, activation, num_kv_heads, key_size, value_size, use_bias, rope,
        rope_base, norm, norm_eps, placement, gated, dropout_rate, attention_dropout_rate, deterministic,
        weights_initializer, out_initializer, bias_initializer, dtype, param_dtype,
    )  # fmt: skip
    block.check(key)
    return block.forward(params, x, mask, padding_mask, is_causal, positions, key)


@flexible
def transformer(
    params: TransformerParams,
    x: Float[Array, "*batch seq d"],
    num_layers: int,
    num_heads: int,
    *,
    scan: bool = True,
    remat: bool = False,
    final_norm: bool = True,
    mlp_dim: int | None = None,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    is_causal: bool = False,
    positions: Real[Array, "..."] | None = None,
    key: PRNGKey | None = None,
    deterministic: bool = False,
    activation: Callable[[Array], Array] = jax.nn.gelu,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    norm: Norm = "layer",
    norm_eps: float = 1e-5,
    placement: Placement = "pre",
    gated: bool = False,
    dropout_rate: float = 0.0,
    attention_dropout_rate: float = 0.0,
    weights_initializer: Initializer = default_initializer,
    out_initializer: Initializer | None = None,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch seq d"]:
    """``num_layers`` :func:`transformer_block` s, then a norm.

    With ``scan=True`` the layers' params are stacked (a leading axis of size ``num_layers``
    on every leaf, see ``zephyr.stack``) and the blocks run in one ``jax.lax.scan``: one
    block is traced and compiled whatever the depth. With ``scan=False`` layer ``i`` reads
    ``params["layers"][i]`` and the blocks are unrolled (as ``thread_params`` does). Both give
    the same output for the same weights. ``remat=True`` wraps each block in
    ``jax.checkpoint``: activations are recomputed in the backward pass instead of stored.
    With dropout, each layer gets its own key (``zephyr.stack(..., with_key=True)``).
    :func:`transformer_step` decodes with a cache from :func:`init_transformer_cache`.

    Args:
        params: :class:`TransformerParams`: ``layers`` and ``final_norm``.
        x: ``(*batch, seq, d)``.
        num_layers: how many blocks.
        num_heads: attention heads; must divide ``d`` unless ``key_size`` is given.
        scan: stacked params and ``lax.scan`` (True) or a Python loop over ``params["layers"][i]``.
        remat: recompute each block's activations in the backward pass (``jax.checkpoint``).
        final_norm: whether to end with a norm (``params["final_norm"]``, of the kind ``norm``).
        mlp_dim: the MLP's hidden width (default ``4 * d``).
        mask: the attention mask, as for ``multi_head_self_attention``: broadcast right-aligned
            to ``(*batch, num_heads, seq, seq)``.
        padding_mask: True = a real token, broadcast right-aligned to ``(*batch, seq)``.
        is_causal: causal self-attention.
        positions: the steps' positions for ``rope``, ``(*batch, seq)`` (default ``0, ..., seq - 1``).
        key: the random key of the dropout (needed when a dropout rate is above 0 and not ``deterministic``).
        deterministic: no dropout (evaluation).
        activation: the MLP's activation (default ``jax.nn.gelu``; ``jax.nn.silu`` with
            ``gated=True`` is SwiGLU).
        num_kv_heads: key/value heads for grouped-query attention (default ``num_heads``).
        key_size: the size of each query and key head (default ``d // num_heads``).
        value_size: the size of each value head (default ``key_size``).
        use_bias: whether the attention and MLP projections have biases.
        rope: rotary position embedding of queries and keys (``nets.rope``, rotate half).
        rope_base: the rotation's wavelength base.
        norm: ``"layer"`` (``nets.layer_norm``) or ``"rms"`` (``nets.rms_norm``, no offset).
        norm_eps: the norms' epsilon.
        placement: ``"pre"`` (``x + f(norm(x))``), ``"post"`` (``norm(x + f(x))``, the original
            transformer) or ``"parallel"`` (``x + attention(norm(x)) + mlp(norm(x))``, one norm, GPT-J).
        gated: a gated MLP ``down(activation(gate(x)) * up(x))`` instead of ``linear, activation, linear``.
        dropout_rate: dropout of each branch's output before it is added to the residual.
        attention_dropout_rate: dropout of the attention weights.
        weights_initializer: initializer of the attention and MLP weights.
        out_initializer: initializer of the attention's output and the MLP's last weights, the
            projections into the residual (default ``weights_initializer``; e.g.
            ``variance_scaling(2 / num_layers, ...)`` or nanoGPT's scaled init).
        bias_initializer: initializer of the biases (default zeros).
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
    block = _Block(
        "transformer", num_heads, mlp_dim, activation, num_kv_heads, key_size, value_size, use_bias, rope,
        rope_base, norm, norm_eps, placement, gated, dropout_rate, attention_dropout_rate, deterministic,
        weights_initializer, out_initializer, bias_initializer, dtype, param_dtype,
    )  # fmt: skip
    block.check(key)

    if block.dropping and key is not None:  # (check raised when dropping without a key)
        def keyed(layer_params: TransformerBlockParams, layer_key: PRNGKey, h: Array) -> Array:
            return block.forward(layer_params, h, mask, padding_mask, is_causal, positions, layer_key)

        layer_keyed = _remat_keyed(keyed, prevent_cse=not scan) if remat else keyed
        y = stack(layer_keyed, num_layers, with_key=True, scan=scan)(params["layers"], key, x)
    else:
        def plain(layer_params: TransformerBlockParams, h: Array) -> Array:
            return block.forward(layer_params, h, mask, padding_mask, is_causal, positions, None)

        # In a scan, jax.checkpoint need not prevent CSE (the loop already does).
        layer = _remat(plain, prevent_cse=not scan) if remat else plain
        y = stack(layer, num_layers, scan=scan)(params["layers"], x)
    if final_norm:
        y = block.normalize(params["final_norm"], y)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when final_norm
    return y


def _remat(
    f: Callable[[TransformerBlockParams, Array], Array], prevent_cse: bool
) -> Callable[[TransformerBlockParams, Array], Array]:
    """``jax.checkpoint(f)``: recompute ``f``'s activations in the backward pass."""
    remat: Callable[[TransformerBlockParams, Array], Array] = jax.checkpoint(f, prevent_cse=prevent_cse)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax types the result as returning Unknown
    return remat


def _remat_keyed(
    f: Callable[[TransformerBlockParams, PRNGKey, Array], Array], prevent_cse: bool
) -> Callable[[TransformerBlockParams, PRNGKey, Array], Array]:
    """``jax.checkpoint(f)`` of a layer that takes a key."""
    remat: Callable[[TransformerBlockParams, PRNGKey, Array], Array] = jax.checkpoint(f, prevent_cse=prevent_cse)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax types the result as returning Unknown
    return remat


def init_transformer_cache(
    x: Float[Array, "*batch seq d"],
    num_layers: int,
    num_heads: int,
    max_len: int,
    *,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    dtype: DType | None = None,
) -> KVCache:
    """An empty cache for :func:`transformer_step`: one :func:`init_kv_cache` per layer, stacked.

    Args:
        x: a sample input ``(*batch, seq, d)``: only its batch axes, ``d`` and dtype are read.
        num_layers: as given to the transformer.
        num_heads: as given to the transformer.
        max_len: how many positions the cache holds.
        num_kv_heads: as given to the transformer.
        key_size: as given to the transformer.
        value_size: as given to the transformer.
        dtype: the cache's dtype (default: ``x``'s).

    Returns:
        A :class:`KVCache` whose every leaf has a leading axis of size ``num_layers``: ``key``
        ``(num_layers, *batch, max_len, num_kv_heads, key_size)``, ``value`` likewise, and
        ``length`` ``(num_layers,)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets
        >>> cache = nets.init_transformer_cache(jnp.ones((2, 1, 8)), 3, 4, 16, num_kv_heads=2)
        >>> jax.tree.map(jnp.shape, cache)
        {'key': (3, 2, 16, 2, 2), 'length': (3,), 'value': (3, 2, 16, 2, 2)}
    """
    positive_int("init_transformer_cache", "num_layers", num_layers)
    one = init_kv_cache(
        x, num_heads, max_len, num_kv_heads=num_kv_heads, key_size=key_size, value_size=value_size, dtype=dtype
    )
    def repeat(a: Array) -> Array:
        return jnp.broadcast_to(a, (num_layers, *a.shape))

    stacked: KVCache = jax.tree.map(repeat, one)
    return stacked


@flexible
def transformer_block_step(
    params: TransformerBlockParams,
    cache: KVCache,
    x: Float[Array, "*batch new_len d"],
    num_heads: int,
    *,
    mlp_dim: int | None = None,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
    activation: Callable[[Array], Array] = jax.nn.gelu,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    norm: Norm = "layer",
    norm_eps: float = 1e-5,
    placement: Placement = "pre",
    gated: bool = False,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch new_len d"], KVCache]:
    """A causal :func:`transformer_block` over new positions with a key/value cache (decoding).

    The attention is :func:`multi_head_self_attention_step`: the new positions are written to
    the cache at ``cache["length"]`` (their position, for ``rope``) and attend to every
    position so far. Pre-filling a prompt and stepping token by token gives the output of
    ``transformer_block(..., is_causal=True)`` with the same options. No dropout (decoding).

    Args:
        params: as :func:`transformer_block`'s.
        cache: from :func:`init_kv_cache` (with the block's ``num_kv_heads``, ``key_size``, ...).
        x: ``(*batch, new_len, d)``.
        num_heads: as given to the block.
        mlp_dim: as given to the block.
        mask: over the cache's positions, as for :func:`multi_head_self_attention_step`.
        padding_mask: over the cache's positions, ``(*batch, max_len)``.
        positions: the new steps' positions for ``rope`` (default ``cache["length"] + 0, 1, ...``).
        activation: as given to the block.
        num_kv_heads: as given to the block.
        key_size: as given to the block.
        value_size: as given to the block.
        use_bias: as given to the block.
        rope: as given to the block.
        rope_base: as given to the block.
        norm: as given to the block.
        norm_eps: as given to the block.
        placement: as given to the block.
        gated: as given to the block.
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params.

    Returns:
        ``(y, new_cache)``, ``y`` ``(*batch, new_len, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jax.random.normal(jax.random.key(1), (2, 5, 8))
        >>> params = trace(nets.transformer_block(_, _, 2, rope=True), jax.random.key(0), x)
        >>> cache = nets.init_kv_cache(x, 2, max_len=5)
        >>> y0, cache = nets.transformer_block_step(params, cache, x[:, :3], 2, rope=True)
        >>> y1, cache = nets.transformer_block_step(params, cache, x[:, 3:], 2, rope=True)
        >>> full = nets.transformer_block(params, x, 2, is_causal=True, rope=True)
        >>> bool(jnp.allclose(jnp.concatenate([y0, y1], axis=1), full, atol=1e-5))
        True
    """
    min_rank("transformer_block_step", "x", x.shape, 2, "(new_len, d)")
    block = _Block(
        "transformer_block_step", num_heads, mlp_dim, activation, num_kv_heads, key_size, value_size, use_bias,
        rope, rope_base, norm, norm_eps, placement, gated, 0.0, 0.0, True, default_initializer, None, zeros,
        dtype, param_dtype,
    )  # fmt: skip
    block.check(None)
    return block.step(params, cache, x, mask, padding_mask, positions)


@flexible
def transformer_step(
    params: TransformerParams,
    cache: KVCache,
    x: Float[Array, "*batch new_len d"],
    num_layers: int,
    num_heads: int,
    *,
    scan: bool = True,
    final_norm: bool = True,
    mlp_dim: int | None = None,
    mask: Bool[Array, "..."] | None = None,
    padding_mask: Bool[Array, "..."] | None = None,
    positions: Real[Array, "..."] | None = None,
    activation: Callable[[Array], Array] = jax.nn.gelu,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    use_bias: bool = True,
    rope: bool = False,
    rope_base: float = 10000.0,
    norm: Norm = "layer",
    norm_eps: float = 1e-5,
    placement: Placement = "pre",
    gated: bool = False,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*batch new_len d"], KVCache]:
    """A causal :func:`transformer` over new positions with a per-layer key/value cache (decoding).

    Each layer is a :func:`transformer_block_step` on its slice of the cache (from
    :func:`init_transformer_cache`). Pre-filling a prompt, then stepping one token at a time
    (in a ``lax.scan`` if you like), gives the output of ``transformer(..., is_causal=True)``.

    Args:
        params: as :func:`transformer`'s (with the same ``scan``).
        cache: from :func:`init_transformer_cache` or a previous step.
        x: ``(*batch, new_len, d)``.
        num_layers: as given to the transformer.
        num_heads: as given to the transformer.
        scan: as given to the transformer (how ``params["layers"]`` is laid out).
        final_norm: as given to the transformer.
        mlp_dim: as given to the transformer.
        mask: over the cache's positions, as for :func:`multi_head_self_attention_step`.
        padding_mask: over the cache's positions, ``(*batch, max_len)``.
        positions: the new steps' positions for ``rope`` (default ``cache["length"] + 0, 1, ...``).
        activation: as given to the transformer.
        num_kv_heads: as given to the transformer.
        key_size: as given to the transformer.
        value_size: as given to the transformer.
        use_bias: as given to the transformer.
        rope: as given to the transformer.
        rope_base: as given to the transformer.
        norm: as given to the transformer.
        norm_eps: as given to the transformer.
        placement: as given to the transformer.
        gated: as given to the transformer.
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params.

    Returns:
        ``(y, new_cache)``, ``y`` ``(*batch, new_len, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jax.random.normal(jax.random.key(1), (2, 4, 8))
        >>> params = trace(nets.transformer(_, _, 2, 2), jax.random.key(0), x)
        >>> cache = nets.init_transformer_cache(x, 2, 2, max_len=4)
        >>> steps = []
        >>> for t in range(4):
        ...     y_t, cache = nets.transformer_step(params, cache, x[:, t : t + 1], 2, 2)
        ...     steps.append(y_t)
        >>> full = nets.transformer(params, x, 2, 2, is_causal=True)
        >>> bool(jnp.allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5))
        True
    """
    who = "transformer_step"
    positive_int(who, "num_layers", num_layers)
    min_rank(who, "x", x.shape, 2, "(new_len, d)")
    block = _Block(
        who, num_heads, mlp_dim, activation, num_kv_heads, key_size, value_size, use_bias, rope, rope_base, norm,
        norm_eps, placement, gated, 0.0, 0.0, True, default_initializer, None, zeros, dtype, param_dtype,
    )  # fmt: skip
    block.check(None)
    lengths = getattr(cache.get("length") if isinstance(cache, dict) else None, "shape", None)  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
    if lengths != (num_layers,):
        raise ValueError(
            f"{who}: `cache` must hold one cache per layer (from init_transformer_cache with num_layers="
            f"{num_layers}): cache['length'] of shape ({num_layers},), got {lengths}"
        )

    def layer(h: Array, layer_params: TransformerBlockParams, layer_cache: KVCache) -> tuple[Array, KVCache]:
        return block.step(layer_params, layer_cache, h, mask, padding_mask, positions)

    if scan:
        stacked = cast(TransformerBlockParams, params["layers"])  # stacked when scan=True

        def body(h: Array, xs: tuple[TransformerBlockParams, KVCache]) -> tuple[Array, KVCache]:
            return layer(h, *xs)

        y, new_cache = jax.lax.scan(body, x, (stacked, cache))
    else:
        looped = cast(dict[int, TransformerBlockParams], params["layers"])  # {i: block} when scan=False
        y, caches = x, list[KVCache]()
        for i in range(num_layers):
            y, updated = layer(y, looped[i], _layer_slice(cache, i))
            caches.append(updated)
        new_cache = _stacked(caches)
    if final_norm:
        y = block.normalize(params["final_norm"], y)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when final_norm
    return y, new_cache


def _layer_slice(cache: KVCache, i: int) -> KVCache:
    """Layer ``i``'s cache of a stacked cache."""
    return {"key": cache["key"][i], "value": cache["value"][i], "length": cache["length"][i]}


def _stacked(caches: list[KVCache]) -> KVCache:
    """Per-layer caches stacked along a new leading axis."""
    return {
        "key": jnp.stack([c["key"] for c in caches]),
        "value": jnp.stack([c["value"] for c in caches]),
        "length": jnp.stack([c["length"] for c in caches]),
    }
