"""Pooling, channels last: ``max_pool``, ``avg_pool``, ``global_max_pool``, ``global_avg_pool``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TypedDict, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jaxtyping import Float

from .._checks import min_rank, positive_ints
from .._flexible import flexible
from ._common import checked_padding

if TYPE_CHECKING:  # a str variable type-checks; its value is checked at run time
    PoolPadding = Literal["SAME", "VALID"] | str | Sequence[tuple[int, int]]
else:  # what beartype checks with checking on
    PoolPadding = Literal["SAME", "VALID"] | Sequence[tuple[int, int]]
"""``"SAME"``, ``"VALID"``, or one explicit ``(low, high)`` pair per pooled axis (a ``str``
variable is accepted and its value checked at run time)."""


# jax types reduce_window's init value loosely (partially unknown to pyright); one typed alias.
_reduce_window: Callable[..., Array] = jax.lax.reduce_window  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # see above


class NoParams(TypedDict):
    """The params of a net without parameters: ignored, whatever they hold (``{}``, or the whole
    params of a model that passes its params to every call, as the original README's nets do)."""


def _full_rank(who: str, name: str, x: Array, value: object, usual: str) -> tuple[int, ...] | None:
    """Haiku's full-rank form: ``value`` with one entry per axis of ``x`` (``(1, 2, 2, 1)`` for
    ``(batch, height, width, channels)``) as the spatial form (``(2, 2)``); None for any other form.

    The first entry (the batch axis) and the last (the channels) must be 1: zephyr never pools
    them. Otherwise the error starts with ``usual``, what the spatial form would have said.
    """
    if isinstance(value, int) or not isinstance(value, Sequence):
        return None
    entries = tuple(cast("Sequence[object]", value))
    if x.ndim < 3 or len(entries) != x.ndim:
        return None
    if not all(type(e) is int and e == 1 for e in (entries[0], entries[-1])):
        raise ValueError(
            f"{who}: {usual}; a `{name}` with one entry per axis of `x` (Haiku's full-rank form) must "
            f"be 1 on the first (batch) axis and on the last (channels), which are never pooled, "
            f"got {value!r}"
        )
    return cast("tuple[int, ...]", entries[1:-1])  # the caller checks they are positive ints


def _window(who: str, x: Array, window_shape: int | Sequence[int]) -> tuple[int, ...]:
    """The window over the pooled axes (the spatial form)."""
    n = x.ndim
    usual = f"a window of {n} axes needs `x` with at least {n + 1} axes (..., *pooled, channels), got shape {x.shape}"
    full = _full_rank(who, "window_shape", x, window_shape, usual)
    if full is not None:
        window = full
    elif isinstance(window_shape, int):
        if x.ndim < 3:
            raise ValueError(
                f"{who}: an int `window_shape` pools every axis between the batch axis and the "
                f"channels, so `x` must have at least 3 axes (batch, *spatial, channels), got shape "
                f"{x.shape}; pass a tuple to pool the axes just before the channels"
            )
        window = (window_shape,) * (x.ndim - 2)
    else:
        window = tuple(window_shape)
        if not window:
            raise ValueError(f"{who}: `window_shape` must name at least one axis, got {window_shape!r}")
        if x.ndim < len(window) + 1:
            raise ValueError(
                f"{who}: a window of {len(window)} axes needs `x` with at least {len(window) + 1} axes "
                f"(..., *pooled, channels), got shape {x.shape}"
            )
    if not all(type(w) is int and w >= 1 for w in window):
        raise ValueError(f"{who}: `window_shape` must be positive ints, got {window_shape!r}")
    return window


def _full(values: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    return (1,) * (ndim - 1 - len(values)) + values + (1,)


def _reduce(
    who: str,
    x: Array,
    window_shape: int | Sequence[int],
    stride: int | Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    init: float,
    op: Callable[[Array, Array], Array],
) -> tuple[Array, tuple[int, ...], tuple[int, ...], str | list[tuple[int, int]]]:
    window = _window(who, x, window_shape)
    usual = f"`stride` must be a positive int or {len(window)} positive ints (one per pooled axis)"
    full_stride = _full_rank(who, "stride", x, stride, usual)
    stride = stride if full_stride is None else full_stride
    strides = _full(positive_ints(who, "stride", stride, len(window), " (one per pooled axis)"), x.ndim)
    pairs = checked_padding(who, padding, len(window))
    pad = pairs if isinstance(pairs, str) else [(0, 0)] * (x.ndim - 1 - len(window)) + pairs + [(0, 0)]
    dims = _full(window, x.ndim)
    y = _reduce_window(x, np.array(init, x.dtype), op, dims, strides, pad)
    return y, dims, strides, pad


@flexible
def max_pool(
    params: NoParams,
    x: Float[Array, "*batch channels"],
    window_shape: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: PoolPadding = "SAME",
) -> Float[Array, "*out_batch channels"]:
    """The maximum over windows (``jax.lax.reduce_window``); the channel axis is never pooled.

    A tuple ``window_shape`` pools the ``len(window_shape)`` axes just before the channels
    (every axis before those is a batch axis); an int pools every axis between the first
    (batch) axis and the channels. Haiku's full-rank form, one entry per axis of ``x`` with 1
    on the first (batch) axis and on the channels, is accepted for ``window_shape`` and
    ``stride``: ``(1, 2, 2, 1)`` on ``(batch, height, width, channels)`` is ``(2, 2)``; any
    other entry on those two axes is an error, as zephyr never pools them. Padding never
    wins a maximum.

    Args:
        params: unused, ``{}`` (accepted so pooling composes with the other nets).
        x: ``(*batch, *pooled, channels)``.
        window_shape: an int (every axis but the first and the last), one size per pooled
            axis, or one per axis of ``x`` (1 on the first and the last).
        stride: an int, one step per pooled axis, or one per axis of ``x`` (1 on the first and
            the last).
        padding: ``"SAME"`` (output ``ceil(size / stride)``), ``"VALID"``, or one
            ``(low, high)`` pair per pooled axis.

    Returns:
        ``(*batch, *pooled_out, channels)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
        >>> nets.max_pool({}, x, 2, 2)[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        >>> nets.max_pool({}, x, (1, 2, 2, 1), (1, 2, 2, 1))[0, :, :, 0].tolist()  # Haiku's form
        [[5.0, 7.0], [13.0, 15.0]]
    """
    y, _dims, _strides_, _pad = _reduce("max_pool", x, window_shape, stride, padding, -np.inf, jax.lax.max)
    return y


@flexible
def avg_pool(
    params: NoParams,
    x: Float[Array, "*batch channels"],
    window_shape: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: PoolPadding = "SAME",
) -> Float[Array, "*out_batch channels"]:
    """The mean over windows; with padding, the mean of the real elements only.

    Axes as in :func:`max_pool` (Haiku's full-rank ``(1, 2, 2, 1)`` included). A window that
    overlaps the padding is divided by the count of the real elements it covers (as
    ``count_include_pad=False`` in PyTorch), so an edge is not darkened.

    Args:
        params: unused, ``{}``.
        x: ``(*batch, *pooled, channels)``.
        window_shape: an int (every axis but the first and the last), one size per pooled
            axis, or one per axis of ``x`` (1 on the first and the last).
        stride: an int, one step per pooled axis, or one per axis of ``x`` (1 on the first and
            the last).
        padding: ``"SAME"``, ``"VALID"``, or one ``(low, high)`` pair per pooled axis.

    Returns:
        ``(*batch, *pooled_out, channels)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> x = jnp.arange(3.0).reshape(1, 3, 1)
        >>> nets.avg_pool({}, x, (2,))[0, :, 0].tolist()
        [0.5, 1.5, 2.0]
    """
    total, dims, strides, pad = _reduce("avg_pool", x, window_shape, stride, padding, 0.0, jax.lax.add)
    # The count of real elements depends on the pooled axes only: a small constant.
    pads = [(0, 0)] * x.ndim if isinstance(pad, str) else pad
    keep = [d > 1 or s > 1 or p != (0, 0) for d, s, p in zip(dims, strides, pads)]
    ones = np.ones(tuple(size if k else 1 for size, k in zip(x.shape, keep)), x.dtype)
    pooled_pad = pad if isinstance(pad, str) else [p if k else (0, 0) for p, k in zip(pad, keep)]
    count = _reduce_window(ones, np.array(0, x.dtype), jax.lax.add, dims, strides, pooled_pad)
    return total / jnp.broadcast_to(count, total.shape)


def _spatial_axes(who: str, x: Array) -> tuple[int, ...]:
    min_rank(who, "x", x.shape, 3, "(batch, *spatial, channels)")
    return tuple(range(1, x.ndim - 1))


@flexible
def global_avg_pool(
    params: NoParams,
    x: Float[Array, "batch *spatial channels"],
    keepdims: bool = False,
) -> Float[Array, "batch *out channels"]:
    """The mean over every spatial axis: ``(batch, *spatial, channels)`` -> ``(batch, channels)``.

    Args:
        params: unused, ``{}``.
        x: ``(batch, *spatial, channels)``: the first axis is the batch, the last the channels.
        keepdims: keep the spatial axes with size 1.

    Returns:
        ``(batch, channels)`` (``(batch, 1, ..., 1, channels)`` with ``keepdims``).

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> nets.global_avg_pool({}, jnp.ones((2, 4, 4, 3))).shape
        (2, 3)
    """
    return jnp.mean(x, axis=_spatial_axes("global_avg_pool", x), keepdims=keepdims)


@flexible
def global_max_pool(
    params: NoParams,
    x: Float[Array, "batch *spatial channels"],
    keepdims: bool = False,
) -> Float[Array, "batch *out channels"]:
    """The maximum over every spatial axis: ``(batch, *spatial, channels)`` -> ``(batch, channels)``.

    Args:
        params: unused, ``{}``.
        x: ``(batch, *spatial, channels)``: the first axis is the batch, the last the channels.
        keepdims: keep the spatial axes with size 1.

    Returns:
        ``(batch, channels)`` (``(batch, 1, ..., 1, channels)`` with ``keepdims``).

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets
        >>> nets.global_max_pool({}, jnp.ones((2, 4, 4, 3)), keepdims=True).shape
        (2, 1, 1, 3)
    """
    return jnp.max(x, axis=_spatial_axes("global_max_pool", x), keepdims=keepdims)
