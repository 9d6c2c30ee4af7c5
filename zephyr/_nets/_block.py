"""A transformer block from parts: the MLP part (``feed_forward``, ``gated``), norms (any
``(params, x) -> y``, ``no_norm``), residual arrangements (``pre_norm``, ``post_norm``,
``sandwich``, ``parallel``) and ``block``, the one value a block net, a stack, a cache and a
decoding step read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NotRequired, TypedDict, TypeVar, cast

import jax
from jax import Array

from .._checks import check_callable, check_rate, describe_value, positive_int, positive_int_or_none
from ..core._types import PRNGKey
from ._attention import AttentionParams, as_attention
from ._dropout import _keep  # pyright: ignore[reportPrivateUsage]  # the one dropout mask of the nets
from ._linear import LinearParams, Projections
from ._norm import NormParams, RMSNormParams, layer_norm
from ._parts import Activation, Attention

Norm = Callable[..., Array]
"""A norm part: ``(params, x) -> y`` over the last axis, e.g. ``nets.rms_norm(_, _, eps=1e-6)``."""

Sublayer = Callable[[Array], Array]


class GatedMLPParams(TypedDict):
    """Params of a :func:`gated` MLP: ``down(activation(gate(x)) * up(x))``."""

    gate: LinearParams
    up: LinearParams
    down: LinearParams


class TransformerBlockParams(TypedDict):
    """Params of a block (:func:`block`, :func:`transformer_block`).

    ``attention``: the params of ``multi_head_self_attention``; ``mlp``: ``{0: linear d ->
    hidden, 1: linear hidden -> d}`` or, :func:`gated`, ``{"gate", "up", "down"}``; the norms'
    params under the arrangement's names: ``attention_norm`` and ``mlp_norm`` (``pre_norm``,
    ``post_norm``; ``parallel`` has no ``mlp_norm``), plus ``post_attention_norm`` and
    ``post_mlp_norm`` (``sandwich``).
    """

    attention_norm: NormParams | RMSNormParams
    attention: AttentionParams
    mlp_norm: NotRequired[NormParams | RMSNormParams]
    mlp: dict[int, LinearParams] | GatedMLPParams
    post_attention_norm: NotRequired[NormParams | RMSNormParams]
    post_mlp_norm: NotRequired[NormParams | RMSNormParams]


@dataclass(frozen=True)
class FeedForward:
    """The MLP part of a block: see :func:`feed_forward` and :func:`gated`."""

    hidden: int | None = None
    activation: Activation = jax.nn.gelu
    projections: Projections = Projections()
    gated: bool = False

    def __call__(self, params: dict[int, LinearParams] | GatedMLPParams, x: Array) -> Array:
        d, project = x.shape[-1], self.projections
        hidden = 4 * d if self.hidden is None else self.hidden
        if not self.gated:
            plain = cast(dict[int, LinearParams], params)  # {0, 1} when not gated
            return project(plain[1], self.activation(project(plain[0], x, hidden)), d, out=True)
        glu = cast(GatedMLPParams, params)  # gate/up/down when gated
        h = self.activation(project(glu["gate"], x, hidden)) * project(glu["up"], x, hidden)
        return project(glu["down"], h, d, out=True)


def feed_forward(
    hidden: int | None = None, activation: Activation = jax.nn.gelu, *, projections: Projections = Projections()
) -> FeedForward:
    """The MLP part of a block: ``linear(d -> hidden)``, ``activation``, ``linear(hidden -> d)``.

    Args:
        hidden: the hidden width (default ``4 * d``).
        activation: the activation (default ``jax.nn.gelu``, tanh-approximated as GPT-2's;
            BERT's exact one is ``functools.partial(jax.nn.gelu, approximate=False)``).
        projections: how the two linears are made (:func:`projections`).

    Returns:
        A :class:`FeedForward` part, also a net ``(params, x) -> y`` (params ``{0, 1}``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> ff = nets.feed_forward(16, nets.relu)
        >>> params = trace(ff, jax.random.key(0), jnp.ones((3, 8)))
        >>> params[0]["weights"].shape, ff(params, jnp.ones((3, 8))).shape
        ((8, 16), (3, 8))
    """
    positive_int_or_none("feed_forward", "hidden", hidden)
    check_callable("feed_forward", "activation", activation)
    return FeedForward(hidden, activation, projections)


def gated(mlp: FeedForward) -> FeedForward:
    """A gated MLP part: ``down(activation(gate(x)) * up(x))`` with ``mlp``'s width, activation
    and projections (SwiGLU with ``jax.nn.silu``, GeGLU with ``jax.nn.gelu``).

    Args:
        mlp: a :func:`feed_forward` part.

    Returns:
        A :class:`FeedForward` part whose params are ``{"gate", "up", "down"}``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> swiglu = nets.gated(nets.feed_forward(16, nets.silu))
        >>> sorted(trace(swiglu, jax.random.key(0), jnp.ones((3, 8))))
        ['down', 'gate', 'up']
    """
    if not isinstance(mlp, FeedForward):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise TypeError(f"gated: `mlp` must be a part of nets.feed_forward(...), got {describe_value(mlp)}")
    return replace(mlp, gated=True)


def no_norm(params: object, x: Array) -> Array:
    """The norm part that does nothing (no params): ``no_norm(params, x) == x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> nets.no_norm({}, jnp.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """
    return x


def _layer_norm(params: NormParams, x: Array) -> Array:
    """The default norm part of :func:`block`: ``nets.layer_norm`` over the last axis, eps 1e-5."""
    return layer_norm(params, x)


def pre_norm(params: TransformerBlockParams, x: Array, attend: Sublayer, mlp: Sublayer, norm: Norm) -> Array:
    """The pre-norm arrangement (GPT-2, LLaMA): ``x + attend(norm(x))``, then ``x + mlp(norm(x))``.

    An arrangement takes the block's params, the input, the two sublayers (params bound) and
    the norm part, and reads the norms' params by their names.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> p = {"attention_norm": {}, "mlp_norm": {}}
        >>> nets.pre_norm(p, jnp.ones(2), lambda h: h, lambda h: 2 * h, nets.no_norm).tolist()
        [6.0, 6.0]
    """
    x = x + attend(norm(params["attention_norm"], x))
    return x + mlp(norm(params["mlp_norm"], x))  # pyright: ignore[reportTypedDictNotRequiredAccess]  # a pre-norm block has it


def post_norm(params: TransformerBlockParams, x: Array, attend: Sublayer, mlp: Sublayer, norm: Norm) -> Array:
    """The post-norm arrangement (the original transformer, BERT): ``norm(x + attend(x))``, then
    ``norm(x + mlp(x))``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> p = {"attention_norm": {}, "mlp_norm": {}}
        >>> nets.post_norm(p, jnp.ones(2), lambda h: h, lambda h: 2 * h, nets.no_norm).tolist()
        [6.0, 6.0]
    """
    x = norm(params["attention_norm"], x + attend(x)).astype(x.dtype)
    return norm(params["mlp_norm"], x + mlp(x)).astype(x.dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # a post-norm block has it


def sandwich(params: TransformerBlockParams, x: Array, attend: Sublayer, mlp: Sublayer, norm: Norm) -> Array:
    """Norms before and after each sublayer (Gemma 2): ``x + post_attention_norm(attend(
    attention_norm(x)))``, then ``x + post_mlp_norm(mlp(mlp_norm(x)))``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> p = dict.fromkeys(["attention_norm", "post_attention_norm", "mlp_norm", "post_mlp_norm"], {})
        >>> nets.sandwich(p, jnp.ones(2), lambda h: h, lambda h: 2 * h, nets.no_norm).tolist()
        [6.0, 6.0]
    """
    x = x + norm(params["post_attention_norm"], attend(norm(params["attention_norm"], x))).astype(x.dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # a sandwich block has them
    return x + norm(params["post_mlp_norm"], mlp(norm(params["mlp_norm"], x))).astype(x.dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # a sandwich block has them


def parallel(params: TransformerBlockParams, x: Array, attend: Sublayer, mlp: Sublayer, norm: Norm) -> Array:
    """The parallel arrangement (GPT-J): one norm, ``x + attend(norm(x)) + mlp(norm(x))``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> nets.parallel({"attention_norm": {}}, jnp.ones(2), lambda h: h, lambda h: 2 * h, nets.no_norm).tolist()
        [4.0, 4.0]
    """
    h = norm(params["attention_norm"], x)
    return x + attend(h) + mlp(h)


Arrangement = Callable[[TransformerBlockParams, Array, Sublayer, Sublayer, Norm], Array]
"""A residual arrangement: ``(params, x, attend, mlp, norm) -> y`` (:func:`pre_norm`, ...)."""


@dataclass(frozen=True)
class Block:
    """A transformer block as one value: see :func:`block`."""

    attention: Attention
    mlp: Callable[..., Array] = FeedForward()
    norm: Norm = _layer_norm
    arrangement: Arrangement = pre_norm
    residual_dropout: float = 0.0

    def apply(
        self,
        params: TransformerBlockParams,
        x: Array,
        attend: Callable[[AttentionParams, Array], Array],
        key: PRNGKey | None,
    ) -> Array:
        """The block on ``x`` around ``attend(attention_params, h)`` (the full or the cached
        attention); residual dropout with ``key`` (None: no dropout)."""
        keys: list[PRNGKey | None] = [None, None]
        if key is not None and self.residual_dropout > 0:
            keys = list(jax.random.split(key, 2))

        def drop(h: Array, k: PRNGKey | None) -> Array:
            h = h.astype(x.dtype)
            return h if k is None else _keep(k, self.residual_dropout, h.shape, h)

        def attention_sublayer(h: Array) -> Array:
            return drop(attend(params["attention"], h), keys[0])

        def mlp_sublayer(h: Array) -> Array:
            return drop(self.mlp(params["mlp"], h), keys[1])

        return self.arrangement(params, x, attention_sublayer, mlp_sublayer, self.norm)


def block(
    attention: int | Attention,
    mlp: Callable[..., Array] = FeedForward(),
    norm: Norm = _layer_norm,
    arrangement: Arrangement = pre_norm,
    *,
    residual_dropout: float = 0.0,
) -> Block:
    """A transformer block from parts: the value ``transformer_block``, ``transformer``,
    ``init_cache`` and ``step`` read, so the forward, the cached step and the cache agree.

    Args:
        attention: a value of :func:`attention` (``causal=True`` for a decoder), or a number of heads.
        mlp: the MLP part, ``(params, x) -> y``: :func:`feed_forward` (default, GELU, ``4 * d``),
            :func:`gated`, or any net.
        norm: the norm part, ``(params, x) -> y``: default ``nets.layer_norm`` (eps 1e-5);
            e.g. ``nets.rms_norm(_, _, eps=1e-6)``, ``nets.rms_norm(_, _, unit_offset=True)``,
            :func:`no_norm`.
        arrangement: :func:`pre_norm` (default), :func:`post_norm`, :func:`sandwich`,
            :func:`parallel`, or any function of that shape.
        residual_dropout: dropout of each sublayer's output before it joins the residual.

    Returns:
        A :class:`Block` value (frozen; hashable when its parts are).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> llama = nets.block(
        ...     nets.attention(4, num_kv_heads=2, causal=True, on_qk=nets.rotary()),
        ...     nets.gated(nets.feed_forward(48, nets.silu)),
        ...     nets.rms_norm(_, _, eps=1e-6),
        ... )
        >>> params = trace(nets.transformer_block(_, _, llama), jax.random.key(0), jnp.ones((2, 5, 32)))
        >>> sorted(params)
        ['attention', 'attention_norm', 'mlp', 'mlp_norm']
    """
    who = "block"
    att = as_attention(who, attention)
    check_callable(who, "mlp", mlp)
    check_callable(who, "norm", norm)
    check_callable(who, "arrangement", arrangement)
    check_rate(who, "residual_dropout", residual_dropout)
    return Block(att, mlp, norm, arrangement, residual_dropout)


_Model = TypeVar("_Model", Attention, Block, tuple[Block, ...])


def without_dropout(model: _Model) -> _Model:
    """``model`` for evaluation: every dropout rate of the attention, the block or the pattern
    of blocks set to 0 (the params are the same). Dropout lives in the value, so a net called
    with a rate above 0 and no ``key`` is an error, never dropout silently left out.

    Args:
        model: a value of :func:`attention` or :func:`block`, or a tuple of blocks.

    Returns:
        The same kind of value, without dropout.

    Example:
        >>> from zephyr import nets
        >>> train = nets.block(nets.attention(2, dropout_rate=0.1), residual_dropout=0.1)
        >>> evaluate = nets.without_dropout(train)
        >>> evaluate.residual_dropout, evaluate.attention.dropout_rate
        (0.0, 0.0)
    """
    return cast(_Model, _without_dropout(model))


def _without_dropout(model: Attention | Block | tuple[Block, ...]) -> Attention | Block | tuple[Block, ...]:
    if isinstance(model, Attention):
        return replace(model, dropout_rate=0.0)
    if isinstance(model, Block):
        return replace(model, attention=replace(model.attention, dropout_rate=0.0), residual_dropout=0.0)
    if isinstance(model, tuple) and all(isinstance(b, Block) for b in model):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        return tuple(cast(Block, _without_dropout(b)) for b in model)
    raise TypeError(
        f"without_dropout: `model` must be a nets.attention(...) or nets.block(...) value or a tuple of blocks, "
        f"got {describe_value(model)}"
    )


def as_block(who: str, value: int | Block) -> Block:
    """``value`` as a :class:`Block`: a number of heads is ``nets.block(value)``."""
    return value if isinstance(value, Block) else block(positive_int(who, "num_heads", value))
