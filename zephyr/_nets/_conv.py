"""Convolutions, channels last: ``conv_1d/2d/3d`` and ``conv_transpose_1d/2d/3d``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

import jax
from jax import Array
from jaxtyping import Float

from ..core._api import validate
from ..core._initializers import default_initializer, zeros
from ..core._types import DType, Initializer
from .._flexible import flexible
from ._dtypes import compute_dtype

if TYPE_CHECKING:  # a str variable type-checks; its value is checked at run time
    Padding = Literal["SAME", "VALID"] | str | Sequence[tuple[int, int]]
else:  # what beartype checks with checking on
    Padding = Literal["SAME", "VALID"] | Sequence[tuple[int, int]]
"""``"SAME"``, ``"VALID"``, or one explicit ``(low, high)`` pair per spatial axis (a ``str``
variable is accepted and its value checked at run time, as for ``jax.lax``)."""

if TYPE_CHECKING:  # a str variable type-checks; its value is checked at run time
    Padding1D = Literal["SAME", "VALID", "CAUSAL"] | str | Sequence[tuple[int, int]]
else:  # what beartype checks with checking on
    Padding1D = Literal["SAME", "VALID", "CAUSAL"] | Sequence[tuple[int, int]]
"""As :data:`Padding`, plus ``"CAUSAL"``: ``(kernel_size - 1) * dilation`` zeros on the left."""

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


class ConvParams(TypedDict):
    """Params of the convolutions.

    ``weights`` has shape ``(*kernel_size, in_channels // feature_group_count, out_channels)``
    (``(*kernel_size, in_channels, out_channels)`` for the transposed ones). Its rank depends
    on the net, so the body declares it; ``bias`` is there only when ``use_bias``.
    """

    weights: Array
    bias: NotRequired[Float[Array, " out_channels"]]


def _tuple(who: str, name: str, value: int | Sequence[int], n: int) -> tuple[int, ...]:
    """An int or ``n`` ints as ``n`` positive ints, checked."""
    raw: tuple[object, ...] = (value,) * n if isinstance(value, int) else tuple(value)
    values = tuple(v for v in raw if type(v) is int and v >= 1)  # bools are not sizes
    if len(raw) != n or len(values) != n:
        raise ValueError(f"{who}: `{name}` must be a positive int or {n} positive ints, got {value!r}")
    return values


def _padding(
    who: str, padding: str | Sequence[tuple[int, int]], kernel: tuple[int, ...], dilation: tuple[int, ...], allow_causal: bool
) -> str | list[tuple[int, int]]:
    n = len(kernel)
    if isinstance(padding, str):
        options = ("SAME", "VALID", "CAUSAL") if allow_causal else ("SAME", "VALID")
        if padding not in options:
            raise ValueError(f"{who}: `padding` must be one of {options} or {n} (low, high) pairs, got {padding!r}")
        if padding == "CAUSAL":
            return [((kernel[0] - 1) * dilation[0], 0)]
        return padding
    pairs: list[tuple[object, ...]] = [tuple(p) for p in padding]
    checked = [(p[0], p[1]) for p in pairs if len(p) == 2 and isinstance(p[0], int) and isinstance(p[1], int)]
    if len(pairs) != n or len(checked) != n:
        raise ValueError(f"{who}: `padding` must be one of 'SAME', 'VALID' or {n} (low, high) pairs of ints, got {padding!r}")
    return checked


def _check_x(who: str, x: Array, n: int) -> None:
    if x.ndim < n + 1:
        names = ("width",) if n == 1 else ("height", "width") if n == 2 else ("depth", "height", "width")
        raise ValueError(
            f"{who}: `x` must have at least {n + 1} axes (*batch, {', '.join(names)}, channels), got shape {x.shape}"
        )


def _flatten_batch(x: Array, n: int) -> tuple[Array, tuple[int, ...]]:
    """``(*batch, *spatial, c)`` -> ``(prod(batch), *spatial, c)`` and the batch shape."""
    batch = x.shape[: x.ndim - n - 1]
    return x.reshape((math.prod(batch),) + x.shape[x.ndim - n - 1 :]), batch


def _dimension_numbers(n: int) -> tuple[str, str, str]:
    spatial = _SPATIAL[n]
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def _conv(
    who: str,
    n: int,
    params: ConvParams,
    x: Array,
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    dilation: int | Sequence[int],
    feature_group_count: int,
    use_bias: bool,
    weights_initializer: Initializer,
    bias_initializer: Initializer,
    dtype: DType | None,
    param_dtype: DType | None,
    precision: jax.lax.PrecisionLike,
) -> Array:
    _check_x(who, x, n)
    kernel = _tuple(who, "kernel_size", kernel_size, n)
    strides = _tuple(who, "stride", stride, n)
    dilations = _tuple(who, "dilation", dilation, n)
    pad = _padding(who, padding, kernel, dilations, allow_causal=n == 1)
    in_channels = x.shape[-1]
    if out_channels < 1:
        raise ValueError(f"{who}: `out_channels` must be >= 1, got {out_channels}")
    if feature_group_count < 1 or in_channels % feature_group_count or out_channels % feature_group_count:
        raise ValueError(
            f"{who}: `feature_group_count` must divide both the {in_channels} input channels of `x` "
            f"and `out_channels` {out_channels}, got {feature_group_count}"
        )
    weights = validate(
        params["weights"],
        kernel + (in_channels // feature_group_count, out_channels),
        weights_initializer,
        dtype=param_dtype,
    )
    compute = compute_dtype(dtype, x, weights)
    flat, batch = _flatten_batch(x.astype(compute), n)
    w = weights.astype(compute)
    y = jax.lax.conv_general_dilated(
        flat,
        w,
        window_strides=strides,
        padding=pad,
        rhs_dilation=dilations,
        dimension_numbers=_dimension_numbers(n),
        feature_group_count=feature_group_count,
        precision=precision,
    )
    if use_bias:
        bias = validate(params["bias"], (out_channels,), bias_initializer, dtype=param_dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when use_bias
        y = y + jax.numpy.broadcast_to(bias.astype(compute), y.shape)
    return y.reshape(batch + y.shape[1:])


def _conv_transpose(
    who: str,
    n: int,
    params: ConvParams,
    x: Array,
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    dilation: int | Sequence[int],
    use_bias: bool,
    weights_initializer: Initializer,
    bias_initializer: Initializer,
    dtype: DType | None,
    param_dtype: DType | None,
    precision: jax.lax.PrecisionLike,
) -> Array:
    _check_x(who, x, n)
    kernel = _tuple(who, "kernel_size", kernel_size, n)
    strides = _tuple(who, "stride", stride, n)
    dilations = _tuple(who, "dilation", dilation, n)
    pad = _padding(who, padding, kernel, dilations, allow_causal=False)
    if out_channels < 1:
        raise ValueError(f"{who}: `out_channels` must be >= 1, got {out_channels}")
    weights = validate(params["weights"], kernel + (x.shape[-1], out_channels), weights_initializer, dtype=param_dtype)
    compute = compute_dtype(dtype, x, weights)
    flat, batch = _flatten_batch(x.astype(compute), n)
    w = weights.astype(compute)
    y = jax.lax.conv_transpose(
        flat,
        w,
        strides=strides,
        padding=pad,
        rhs_dilation=dilations,
        dimension_numbers=_dimension_numbers(n),
        precision=precision,
    )
    if use_bias:
        bias = validate(params["bias"], (out_channels,), bias_initializer, dtype=param_dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only when use_bias
        y = y + jax.numpy.broadcast_to(bias.astype(compute), y.shape)
    return y.reshape(batch + y.shape[1:])


@flexible
def conv_1d(
    params: ConvParams,
    x: Float[Array, "*batch width in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding1D = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    feature_group_count: int = 1,
    use_bias: bool = True,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> Float[Array, "*batch out_width out_channels"]:
    """A 1-d convolution over the axis before the channels (``jax.lax.conv_general_dilated``).

    Args:
        params: ``{"weights": (kernel_size, in_channels // feature_group_count,
            out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, width, in_channels)``, any number of batch axes (none included).
        out_channels: the number of output channels.
        kernel_size: the window width (an int or a 1-tuple).
        stride: the step between windows.
        padding: ``"SAME"`` (output width ``ceil(width / stride)``), ``"VALID"`` (no padding),
            ``"CAUSAL"`` (``(kernel_size - 1) * dilation`` zeros on the left, so output ``t``
            sees inputs ``<= t``), or ``[(low, high)]``.
        dilation: the kernel dilation (``rhs_dilation``).
        feature_group_count: split the channels into this many groups convolved separately
            (``in_channels`` for a depthwise convolution); must divide both channel counts.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype (default: the promotion of ``x`` and ``weights``).
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_general_dilated``.

    Returns:
        ``(*batch, out_width, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 10, 3))
        >>> params = trace(nets.conv_1d(_, _, 4, 3, padding="CAUSAL"), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (4,), 'weights': (3, 3, 4)}
        >>> nets.conv_1d(params, x, 4, 3, padding="CAUSAL").shape
        (2, 10, 4)
    """
    return _conv(
        "conv_1d", 1, params, x, out_channels, kernel_size, stride, padding, dilation,
        feature_group_count, use_bias, weights_initializer, bias_initializer, dtype, param_dtype, precision,
    )


@flexible
def conv_2d(
    params: ConvParams,
    x: Float[Array, "*batch height width in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    feature_group_count: int = 1,
    use_bias: bool = True,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> Float[Array, "*batch out_height out_width out_channels"]:
    """A 2-d convolution over the two axes before the channels.

    Args:
        params: ``{"weights": (kh, kw, in_channels // feature_group_count, out_channels),
            "bias": (out_channels,)}``.
        x: ``(*batch, height, width, in_channels)``, any number of batch axes (none included).
        out_channels: the number of output channels.
        kernel_size: an int (square window) or ``(kh, kw)``.
        stride: an int or a pair.
        padding: ``"SAME"``, ``"VALID"`` or ``[(low, high), (low, high)]``.
        dilation: the kernel dilation, an int or a pair.
        feature_group_count: grouped convolution; must divide both channel counts.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_general_dilated``.

    Returns:
        ``(*batch, out_height, out_width, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 8, 8, 3))
        >>> params = trace(nets.conv_2d(_, _, 16, 3, 2), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (16,), 'weights': (3, 3, 3, 16)}
        >>> nets.conv_2d(params, x, 16, 3, 2).shape
        (2, 4, 4, 16)
    """
    return _conv(
        "conv_2d", 2, params, x, out_channels, kernel_size, stride, padding, dilation,
        feature_group_count, use_bias, weights_initializer, bias_initializer, dtype, param_dtype, precision,
    )


@flexible
def conv_3d(
    params: ConvParams,
    x: Float[Array, "*batch depth height width in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    feature_group_count: int = 1,
    use_bias: bool = True,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> Float[Array, "*batch out_depth out_height out_width out_channels"]:
    """A 3-d convolution over the three axes before the channels.

    Args:
        params: ``{"weights": (kd, kh, kw, in_channels // feature_group_count,
            out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, depth, height, width, in_channels)``, any number of batch axes.
        out_channels: the number of output channels.
        kernel_size: an int (cubic window) or three ints.
        stride: an int or three ints.
        padding: ``"SAME"``, ``"VALID"`` or three ``(low, high)`` pairs.
        dilation: the kernel dilation, an int or three ints.
        feature_group_count: grouped convolution; must divide both channel counts.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_general_dilated``.

    Returns:
        ``(*batch, out_depth, out_height, out_width, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((4, 4, 4, 2))
        >>> params = trace(nets.conv_3d(_, _, 5, 2, padding="VALID"), jax.random.key(0), x)
        >>> params["weights"].shape
        (2, 2, 2, 2, 5)
        >>> nets.conv_3d(params, x, 5, 2, padding="VALID").shape
        (3, 3, 3, 5)
    """
    return _conv(
        "conv_3d", 3, params, x, out_channels, kernel_size, stride, padding, dilation,
        feature_group_count, use_bias, weights_initializer, bias_initializer, dtype, param_dtype, precision,
    )


@flexible
def conv_transpose_1d(
    params: ConvParams,
    x: Float[Array, "*batch width in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    use_bias: bool = True,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> Float[Array, "*batch out_width out_channels"]:
    """A 1-d transposed convolution (``jax.lax.conv_transpose``, as Flax's ``ConvTranspose``).

    The input is dilated by ``stride`` and convolved with the (unflipped) kernel: with
    ``"SAME"`` the output width is ``width * stride``; with ``"VALID"`` it is
    ``(width - 1) * stride + (kernel_size - 1) * dilation + 1``. Explicit pairs pad the
    dilated input, as in ``jax.lax.conv_transpose``. Feature groups are not supported.

    Args:
        params: ``{"weights": (kernel_size, in_channels, out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, width, in_channels)``, any number of batch axes.
        out_channels: the number of output channels.
        kernel_size: the window width.
        stride: the upsampling factor.
        padding: ``"SAME"``, ``"VALID"`` or ``[(low, high)]``.
        dilation: the kernel dilation.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_transpose``.

    Returns:
        ``(*batch, out_width, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5, 3))
        >>> params = trace(nets.conv_transpose_1d(_, _, 4, 3, 2), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (4,), 'weights': (3, 3, 4)}
        >>> nets.conv_transpose_1d(params, x, 4, 3, 2).shape
        (2, 10, 4)
    """
    return _conv_transpose(
        "conv_transpose_1d", 1, params, x, out_channels, kernel_size, stride, padding, dilation,
        use_bias, weights_initializer, bias_initializer, dtype, param_dtype, precision,
    )


@flexible
def conv_transpose_2d(
    params: ConvParams,
    x: Float[Array, "*batch height width in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    use_bias: bool = True,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> Float[Array, "*batch out_height out_width out_channels"]:
    """A 2-d transposed convolution; see :func:`conv_transpose_1d` for the output sizes.

    Args:
        params: ``{"weights": (kh, kw, in_channels, out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, height, width, in_channels)``, any number of batch axes.
        out_channels: the number of output channels.
        kernel_size: an int or a pair.
        stride: the upsampling factor, an int or a pair.
        padding: ``"SAME"``, ``"VALID"`` or two ``(low, high)`` pairs.
        dilation: the kernel dilation.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_transpose``.

    Returns:
        ``(*batch, out_height, out_width, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 4, 4, 3))
        >>> params = trace(nets.conv_transpose_2d(_, _, 8, 3, 2), jax.random.key(0), x)
        >>> nets.conv_transpose_2d(params, x, 8, 3, 2).shape
        (2, 8, 8, 8)
    """
    return _conv_transpose(
        "conv_transpose_2d", 2, params, x, out_channels, kernel_size, stride, padding, dilation,
        use_bias, weights_initializer, bias_initializer, dtype, param_dtype, precision,
    )


@flexible
def conv_transpose_3d(
    params: ConvParams,
    x: Float[Array, "*batch depth height width in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    use_bias: bool = True,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
    precision: jax.lax.PrecisionLike = None,
) -> Float[Array, "*batch out_depth out_height out_width out_channels"]:
    """A 3-d transposed convolution; see :func:`conv_transpose_1d` for the output sizes.

    Args:
        params: ``{"weights": (kd, kh, kw, in_channels, out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, depth, height, width, in_channels)``, any number of batch axes.
        out_channels: the number of output channels.
        kernel_size: an int or three ints.
        stride: the upsampling factor, an int or three ints.
        padding: ``"SAME"``, ``"VALID"`` or three ``(low, high)`` pairs.
        dilation: the kernel dilation.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_transpose``.

    Returns:
        ``(*batch, out_depth, out_height, out_width, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 2, 2, 3))
        >>> params = trace(nets.conv_transpose_3d(_, _, 4, 2, 2), jax.random.key(0), x)
        >>> nets.conv_transpose_3d(params, x, 4, 2, 2).shape
        (4, 4, 4, 4)
    """
    return _conv_transpose(
        "conv_transpose_3d", 3, params, x, out_channels, kernel_size, stride, padding, dilation,
        use_bias, weights_initializer, bias_initializer, dtype, param_dtype, precision,
    )
