"""The parts of attention: ``attention`` (one hashable value for every use),
and what acts on queries and keys (``rotary``) or on the logits (``soft_cap``, ``sliding_window``).

Parts are frozen dataclasses: equal when their fields are, hashable, so a block built from
them is a static argument of ``jit`` and the static part of a cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import jax.numpy as jnp
import numpy as np
from jax import Array

from .._checks import check_rate, positive_int, positive_int_or_none
from ._embed import rope
from ._linear import Projections


class QKPart(Protocol):
    """What acts on the query and key heads: ``(q, k, q_positions, k_positions) -> (q, k)``.

    ``q`` ``(*batch, q_len, num_heads, key_size)``, ``k`` ``(*batch, kv_len, num_kv_heads,
    key_size)``; the positions broadcast to ``(*batch, q_len)`` and ``(*batch, kv_len)``.
    """

    def __call__(self, q: Array, k: Array, q_positions: Array, k_positions: Array, /) -> tuple[Array, Array]: ...


class LogitsPart(Protocol):
    """What acts on the attention logits: ``(logits, q_index, k_index) -> logits``.

    ``logits`` float32 ``(*batch, num_heads, q_len, kv_len)``, already scaled; ``q_index``
    ``(q_len,)`` and ``k_index`` ``(kv_len,)`` the absolute slots of the queries and keys
    (with a cache: ``length + arange(q_len)`` and ``arange(max_len)``).
    """

    def __call__(self, logits: Array, q_index: Array, k_index: Array, /) -> Array: ...


@dataclass(frozen=True)
class Attention:
    """Multi-head attention as one value: see :func:`attention`."""

    num_heads: int
    num_kv_heads: int | None = None
    key_size: int | None = None
    value_size: int | None = None
    causal: bool = False
    on_qk: QKPart | None = None
    on_logits: LogitsPart | tuple[LogitsPart, ...] | None = None
    scale: float | None = None
    dropout_rate: float = 0.0
    projections: Projections = Projections()


def attention(
    num_heads: int,
    *,
    num_kv_heads: int | None = None,
    key_size: int | None = None,
    value_size: int | None = None,
    causal: bool = False,
    on_qk: QKPart | None = None,
    on_logits: LogitsPart | tuple[LogitsPart, ...] | None = None,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    projections: Projections = Projections(),
) -> Attention:
    """Multi-head attention as a value: what every attention net, block, cache and step reads.

    Args:
        num_heads: query heads; must divide the model size unless ``key_size`` is given.
        num_kv_heads: key/value heads (default ``num_heads``; fewer is grouped-query attention).
        key_size: the size of each query and key head (default ``d // num_heads``).
        value_size: the size of each value head (default ``key_size``).
        causal: query ``i`` sees keys ``<= i`` (a decoder; the cached step needs it).
        on_qk: what acts on the query and key heads, e.g. :func:`rotary`.
        on_logits: what acts on the scaled logits, e.g. :func:`soft_cap` or
            :func:`sliding_window`; a tuple applies them in order.
        scale: the logits' scale (default ``1 / sqrt(key_size)``).
        dropout_rate: dropout of the attention weights (with a ``key``; :func:`without_dropout`
            makes the value for evaluation).
        projections: how the query, key, value and output maps are made (:func:`projections`).

    Returns:
        An :class:`Attention` value (frozen, hashable).

    Example:
        >>> from zephyr import nets
        >>> a = nets.attention(8, num_kv_heads=2, causal=True, on_qk=nets.rotary(500000.0))
        >>> a == nets.attention(8, num_kv_heads=2, causal=True, on_qk=nets.rotary(500000.0))
        True
    """
    who = "attention"
    positive_int(who, "num_heads", num_heads)
    positive_int_or_none(who, "num_kv_heads", num_kv_heads)
    positive_int_or_none(who, "key_size", key_size)
    positive_int_or_none(who, "value_size", value_size)
    check_rate(who, "dropout_rate", dropout_rate)
    if num_kv_heads is not None and num_heads % num_kv_heads:
        raise ValueError(
            f"{who}: `num_kv_heads` ({num_kv_heads}) must divide `num_heads` ({num_heads}): "
            "each key/value head serves num_heads // num_kv_heads query heads"
        )
    if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise ValueError(f"{who}: `scale` must be a positive number or None, got {scale!r}")
    if not isinstance(projections, Projections):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise TypeError(f"{who}: `projections` must come from nets.projections(...), got {type(projections).__name__}")
    return Attention(num_heads, num_kv_heads, key_size, value_size, causal, on_qk, on_logits, scale, dropout_rate, projections)


@dataclass(frozen=True)
class Rotary:
    """Rotary position embedding of queries and keys: see :func:`rotary`."""

    base: float = 10000.0

    def __call__(self, q: Array, k: Array, q_positions: Array, k_positions: Array) -> tuple[Array, Array]:
        for name, heads in (("query", q), ("key", k)):
            if heads.shape[-1] % 2:
                raise ValueError(
                    f"rotary: rotates pairs of features: the {name} head size must be even, got {heads.shape[-1]}"
                )
        return rope(q, q_positions, base=self.base), rope(k, k_positions, base=self.base)


def rotary(base: float = 10000.0) -> Rotary:
    """RoPE as an ``on_qk`` part of :func:`attention`: queries and keys rotated at their positions.

    The "rotate half" convention of :func:`rope` (GPT-NeoX, LLaMA, Hugging Face). A cache keeps
    the rotated keys; the step rotates the new ones at their positions.

    Args:
        base: the wavelength base (Hugging Face's ``rope_theta``).

    Returns:
        A :class:`Rotary` part.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> q = jnp.ones((5, 2, 8))
        >>> rq, rk = nets.rotary(10000.0)(q, q, jnp.arange(5), jnp.arange(5))
        >>> rq.shape
        (5, 2, 8)
    """
    if not (isinstance(base, (int, float)) and base > 0):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise ValueError(f"rotary: `base` must be a positive number, got {base!r}")
    return Rotary(float(base))


@dataclass(frozen=True)
class SoftCap:
    """``cap * tanh(logits / cap)``: see :func:`soft_cap`."""

    cap: float

    def __call__(self, logits: Array, q_index: Array | None = None, k_index: Array | None = None) -> Array:
        return self.cap * jnp.tanh(logits / self.cap)


def soft_cap(cap: float) -> SoftCap:
    """Logit soft-capping (Gemma 2): ``cap * tanh(logits / cap)``, an ``on_logits`` part.

    Also a plain function of logits (``soft_cap(30.0)(logits)``, the positions left out), e.g.
    for the final logits of a model.

    Args:
        cap: the bound of the logits.

    Returns:
        A :class:`SoftCap` part.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> float(nets.soft_cap(5.0)(jnp.full((1,), 1e4))[0])
        5.0
    """
    if not (isinstance(cap, (int, float)) and cap > 0):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise ValueError(f"soft_cap: `cap` must be a positive number, got {cap!r}")
    return SoftCap(float(cap))


_MASKED = float(np.finfo(np.float32).min)


@dataclass(frozen=True)
class SlidingWindow:
    """Key ``j`` visible from query ``i`` only when ``i - j < size``: see :func:`sliding_window`."""

    size: int

    def __call__(self, logits: Array, q_index: Array, k_index: Array) -> Array:
        near = q_index[:, None] - k_index[None, :] < self.size
        return jnp.where(jnp.broadcast_to(near, logits.shape), logits, _MASKED)


def sliding_window(size: int) -> SlidingWindow:
    """Local attention (Mistral, Gemma 2's local layers): query slot ``i`` sees key slots
    ``j > i - size``, an ``on_logits`` part (combine it with ``causal=True``).

    Args:
        size: how many slots a query sees, itself included.

    Returns:
        A :class:`SlidingWindow` part.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> idx = jnp.arange(4)
        >>> (nets.sliding_window(2)(jnp.zeros((4, 4)), idx, idx) == 0).astype(int).tolist()[3]
        [0, 0, 1, 1]
    """
    positive_int("sliding_window", "size", size)
    return SlidingWindow(size)


def on_logits_parts(on_logits: LogitsPart | tuple[LogitsPart, ...] | None) -> tuple[LogitsPart, ...]:
    """The ``on_logits`` of an attention as a tuple of parts (empty for None)."""
    if on_logits is None:
        return ()
    return on_logits if isinstance(on_logits, tuple) else (on_logits,)


Activation = Callable[[Array], Array]
