"""Convolutions, channels last: ``conv_1d/2d/3d`` and ``conv_transpose_1d/2d/3d``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

import jax
from jax import Array
from jaxtyping import Float

from ..core._api import validate
from .._checks import int_pairs, is_positive_int, min_rank, positive_int, positive_ints
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
_SPATIAL_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


class ConvParams(TypedDict):
    """Params of the convolutions.

    ``weights`` has shape ``(*kernel_size, in_channels // feature_group_count, out_channels)``
    (``(*kernel_size, in_channels, out_channels)`` for the transposed ones). Its rank depends
    on the net, so the body declares it; ``bias`` is there only when ``use_bias``.
    """

    weights: Array
    bias: NotRequired[Float[Array, " out_channels"]]


def _padding(
    who: str, padding: str | Sequence[tuple[int, int]], kernel: tuple[int, ...], dilation: tuple[int, ...], allow_causal: bool
) -> str | list[tuple[int, int]]:
    n = len(kernel)
    if isinstance(padding, str):
        options = ("SAME", "VALID", "CAUSAL") if allow_causal else ("SAME", "VALID")
        if padding not in options:
            raise ValueError(f"{who}: `padding` must be one of {options} or {n} (low, high) pairs, got {padding!r}")
        return [((kernel[0] - 1) * dilation[0], 0)] if padding == "CAUSAL" else padding
    pairs = int_pairs(padding, n)
    if pairs is None:
        raise ValueError(f"{who}: `padding` must be one of 'SAME', 'VALID' or {n} (low, high) pairs of ints, got {padding!r}")
    return pairs


def _conv(
    params: ConvParams,
    x: Array,
    *,
    who: str,
    num_spatial_dims: int,
    transpose: bool,
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    dilation: int | Sequence[int],
    feature_group_count: int = 1,
    use_bias: bool,
    weights_initializer: Initializer,
    bias_initializer: Initializer,
    dtype: DType | None,
    param_dtype: DType | None,
    precision: jax.lax.PrecisionLike,
) -> Array:
    """Every convolution: ``num_spatial_dims`` axes before the channels, channels last.

    ``transpose=False`` is ``jax.lax.conv_general_dilated`` (a cross-correlation); with
    ``transpose=True`` it is ``jax.lax.conv_transpose``, as Flax's ``ConvTranspose``: the input
    is dilated by ``stride`` and convolved with the (unflipped) kernel; the output sizes are
    in :func:`conv_transpose_1d`'s docstring. Feature groups are not supported by the
    transposed convolutions.

    Args:
        params: ``{"weights": (*kernel_size, in_channels // feature_group_count, out_channels),
            "bias": (out_channels,)}`` (``bias`` only with ``use_bias``).
        x: ``(*batch, *spatial, in_channels)``, any number of batch axes (none included).
        who: the public net's name, for the error messages.
        num_spatial_dims: how many axes before the channels are convolved.
        transpose: a transposed convolution.
        out_channels: the number of output channels.
        kernel_size: the window, an int (the same on every spatial axis) or one int per axis.
        stride: the step between windows (the upsampling factor when transposed), likewise.
        padding: ``"SAME"`` (output size ``ceil(size / stride)``), ``"VALID"`` (no padding),
            ``"CAUSAL"`` (1-d only: ``(kernel_size - 1) * dilation`` zeros on the left, so output
            ``t`` sees inputs ``<= t``), or one ``(low, high)`` pair per spatial axis.
        dilation: the kernel dilation (``rhs_dilation``), an int or one per axis.
        feature_group_count: split the channels into this many groups convolved separately
            (``in_channels`` for a depthwise convolution); must divide both channel counts.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype (default: the promotion of ``x`` and ``weights``).
        param_dtype: the storage dtype of the params (default float32).
        precision: passed to ``jax.lax.conv_general_dilated`` / ``jax.lax.conv_transpose``.

    Returns:
        ``(*batch, *out_spatial, out_channels)``.
    """
    n = num_spatial_dims
    min_rank(who, "x", x.shape, n + 1, f"(*batch, {', '.join(_SPATIAL_NAMES[n])}, channels)")
    kernel = positive_ints(who, "kernel_size", kernel_size, n)
    strides = positive_ints(who, "stride", stride, n)
    dilations = positive_ints(who, "dilation", dilation, n)
    pad = _padding(who, padding, kernel, dilations, allow_causal=n == 1 and not transpose)
    positive_int(who, "out_channels", out_channels)
    in_channels = x.shape[-1]
    if not is_positive_int(feature_group_count) or in_channels % feature_group_count or out_channels % feature_group_count:
        raise ValueError(
            f"{who}: `feature_group_count` must divide both the {in_channels} input channels of `x` "
            f"and `out_channels` {out_channels}, got {feature_group_count}"
        )
    shape = kernel + (in_channels // feature_group_count, out_channels)
    weights = validate(params["weights"], shape, weights_initializer, dtype=param_dtype)
    compute = compute_dtype(dtype, x, weights)
    batch = x.shape[: x.ndim - n - 1]
    flat = x.astype(compute).reshape((math.prod(batch),) + x.shape[x.ndim - n - 1 :])  # one batch axis
    w = weights.astype(compute)
    spatial = _SPATIAL[n]
    layout = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
    if transpose:
        y = jax.lax.conv_transpose(
            flat, w, strides, pad, rhs_dilation=dilations, dimension_numbers=layout, precision=precision
        )
    else:
        y = jax.lax.conv_general_dilated(
            flat, w, strides, pad, rhs_dilation=dilations, dimension_numbers=layout,
            feature_group_count=feature_group_count, precision=precision,
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
    """As `conv` with 1 spatial dim: a convolution over the axis before the channels.

    Args:
        x: ``(*batch, width, in_channels)``, any number of batch axes (none included).
        padding: ``"SAME"``, ``"VALID"``, ``[(low, high)]`` or ``"CAUSAL"``:
            ``(kernel_size - 1) * dilation`` zeros on the left, so output ``t`` sees inputs ``<= t``.

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
        params, x, who="conv_1d", num_spatial_dims=1, transpose=False, out_channels=out_channels,
        kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
        feature_group_count=feature_group_count, use_bias=use_bias, weights_initializer=weights_initializer,
        bias_initializer=bias_initializer, dtype=dtype, param_dtype=param_dtype, precision=precision,
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
    """As `conv` with 2 spatial dims: a convolution over the two axes before the channels.

    Args:
        x: ``(*batch, height, width, in_channels)``, any number of batch axes (none included).

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
        params, x, who="conv_2d", num_spatial_dims=2, transpose=False, out_channels=out_channels,
        kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
        feature_group_count=feature_group_count, use_bias=use_bias, weights_initializer=weights_initializer,
        bias_initializer=bias_initializer, dtype=dtype, param_dtype=param_dtype, precision=precision,
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
    """As `conv` with 3 spatial dims: a convolution over the three axes before the channels.

    Args:
        x: ``(*batch, depth, height, width, in_channels)``, any number of batch axes.

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
        params, x, who="conv_3d", num_spatial_dims=3, transpose=False, out_channels=out_channels,
        kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
        feature_group_count=feature_group_count, use_bias=use_bias, weights_initializer=weights_initializer,
        bias_initializer=bias_initializer, dtype=dtype, param_dtype=param_dtype, precision=precision,
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
    """As `conv` with 1 spatial dim and ``transpose=True`` (``jax.lax.conv_transpose``, as Flax's ``ConvTranspose``).

    The input is dilated by ``stride`` (``stride - 1`` zeros between its elements) and
    convolved with the (unflipped) kernel. With the effective kernel
    ``k = (kernel_size - 1) * dilation + 1``, the output width is:

    - ``"SAME"``: ``width * stride``;
    - ``"VALID"``: ``(width - 1) * stride + max(k, stride)``. That is
      ``(width - 1) * stride + k`` (Equinox's and PyTorch's formula) when ``k >= stride``, but
      ``width * stride`` (as Flax) when the effective kernel is smaller than the stride (the
      last ``stride - k`` outputs then see no input: the bias alone);
    - ``[(low, high)]``: ``(width - 1) * stride + low + high - k + 2`` (the pairs pad the
      dilated input, then a ``"VALID"`` convolution runs).

    Args:
        params: ``{"weights": (kernel_size, in_channels, out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, width, in_channels)``, any number of batch axes.
        stride: the upsampling factor.

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
    return _conv(
        params, x, who="conv_transpose_1d", num_spatial_dims=1, transpose=True, out_channels=out_channels,
        kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
        use_bias=use_bias, weights_initializer=weights_initializer, bias_initializer=bias_initializer,
        dtype=dtype, param_dtype=param_dtype, precision=precision,
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
    """As `conv` with 2 spatial dims and ``transpose=True``; output sizes as :func:`conv_transpose_1d`, per axis.

    With ``k = (kernel_size - 1) * dilation + 1`` on an axis of size ``n``, the output size is
    ``n * stride`` with ``"SAME"``, ``(n - 1) * stride + max(k, stride)`` with ``"VALID"``
    (``n * stride`` when the effective kernel is smaller than the stride, as Flax), and
    ``(n - 1) * stride + low + high - k + 2`` with an explicit ``(low, high)`` pair.

    Args:
        params: ``{"weights": (kh, kw, in_channels, out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, height, width, in_channels)``, any number of batch axes.
        stride: the upsampling factor, an int or a pair.

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
    return _conv(
        params, x, who="conv_transpose_2d", num_spatial_dims=2, transpose=True, out_channels=out_channels,
        kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
        use_bias=use_bias, weights_initializer=weights_initializer, bias_initializer=bias_initializer,
        dtype=dtype, param_dtype=param_dtype, precision=precision,
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
    """As `conv` with 3 spatial dims and ``transpose=True``; output sizes as :func:`conv_transpose_1d`, per axis.

    With ``k = (kernel_size - 1) * dilation + 1`` on an axis of size ``n``, the output size is
    ``n * stride`` with ``"SAME"``, ``(n - 1) * stride + max(k, stride)`` with ``"VALID"``
    (``n * stride`` when the effective kernel is smaller than the stride, as Flax), and
    ``(n - 1) * stride + low + high - k + 2`` with an explicit ``(low, high)`` pair.

    Args:
        params: ``{"weights": (kd, kh, kw, in_channels, out_channels), "bias": (out_channels,)}``.
        x: ``(*batch, depth, height, width, in_channels)``, any number of batch axes.
        stride: the upsampling factor, an int or three ints.

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
    return _conv(
        params, x, who="conv_transpose_3d", num_spatial_dims=3, transpose=True, out_channels=out_channels,
        kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
        use_bias=use_bias, weights_initializer=weights_initializer, bias_initializer=bias_initializer,
        dtype=dtype, param_dtype=param_dtype, precision=precision,
    )
