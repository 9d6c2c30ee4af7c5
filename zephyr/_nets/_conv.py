"""Convolutions, channels last: ``conv`` and ``conv_transpose``, and ``conv_1d/2d/3d`` and
``conv_transpose_1d/2d/3d`` with the rank fixed: each is the one private ``_conv`` with its
rank and ``transpose`` fixed (``functools.partial``), so they share one body and one set of
stub protocols."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, cast

import jax
from jax import Array
from jax.nn.initializers import zeros
from jaxtyping import Float

from ..core._api import validate
from .._checks import is_positive_int, min_rank, positive_int, positive_ints
from ..core._initializers import default_initializer
from ..core._types import DType, Initializer
from .._flexible import flexible
from ._common import checked_padding
from ._dtypes import compute_dtype

if TYPE_CHECKING:  # a str variable type-checks; its value is checked at run time
    Padding = Literal["SAME", "VALID", "CAUSAL"] | str | Sequence[tuple[int, int]]
else:  # what beartype checks with checking on
    Padding = Literal["SAME", "VALID", "CAUSAL"] | Sequence[tuple[int, int]]
"""``"SAME"``, ``"VALID"``, ``"CAUSAL"`` (1-d, not transposed: ``(kernel_size - 1) * dilation``
zeros on the left), or one explicit ``(low, high)`` pair per spatial axis (a ``str`` variable is
accepted and its value checked at run time, as for ``jax.lax``)."""

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
_SPATIAL_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


class ConvParams(TypedDict):
    """Params of the convolutions.

    ``weights`` has shape ``(*kernel_size, in_channels // feature_group_count, out_channels)``
    (``(*kernel_size, in_channels, out_channels)`` for the transposed ones). Its rank depends
    on the call, so the body declares it; ``bias`` is there unless ``bias_initializer=None``.
    """

    weights: Array
    bias: NotRequired[Float[Array, " out_channels"]]


@flexible
def _conv(
    params: ConvParams,
    x: Float[Array, "... in_channels"],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    num_spatial_dims: int | None = None,
    transpose: bool = False,
    feature_group_count: int = 1,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer | None = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "... out_channels"]:
    """The body of every convolution: the public names fix ``num_spatial_dims`` and
    ``transpose`` (see ``conv`` and ``conv_transpose`` for the arguments)."""
    who = "conv_transpose" if transpose else "conv"
    n = _rank(who, num_spatial_dims, kernel_size)
    min_rank(who, "x", x.shape, n + 1, f"(*batch, {', '.join(_SPATIAL_NAMES[n])}, channels)")
    kernel = positive_ints(who, "kernel_size", kernel_size, n)
    strides = positive_ints(who, "stride", stride, n)
    dilations = positive_ints(who, "dilation", dilation, n)
    pad = checked_padding(who, padding, n, ("SAME", "VALID", "CAUSAL") if n == 1 and not transpose else ("SAME", "VALID"))
    if pad == "CAUSAL":
        pad = [((kernel[0] - 1) * dilations[0], 0)]
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
        y = jax.lax.conv_transpose(flat, w, strides, pad, rhs_dilation=dilations, dimension_numbers=layout)
    else:
        y = jax.lax.conv_general_dilated(
            flat, w, strides, pad, rhs_dilation=dilations, dimension_numbers=layout,
            feature_group_count=feature_group_count,
        )
    if bias_initializer is not None:
        bias = validate(params["bias"], (out_channels,), bias_initializer, dtype=param_dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # read only with an initializer
        y = y + jax.numpy.broadcast_to(bias.astype(compute), y.shape)
    return y.reshape(batch + y.shape[1:])


def _rank(who: str, num_spatial_dims: int | None, kernel_size: int | Sequence[int]) -> int:
    """The number of spatial axes: ``num_spatial_dims``, or else ``len(kernel_size)``."""
    if num_spatial_dims is None:
        if isinstance(kernel_size, int):
            raise ValueError(
                f"{who}: an int `kernel_size` ({kernel_size}) needs a rank: give one int per spatial "
                f"axis, e.g. `kernel_size=(3, 3)`, or use {who}_1d, {who}_2d or {who}_3d"
            )
        num_spatial_dims = len(kernel_size)
    if type(num_spatial_dims) is not int or num_spatial_dims not in _SPATIAL:
        raise ValueError(f"{who}: `num_spatial_dims` must be 1, 2 or 3, got {num_spatial_dims!r}")
    return num_spatial_dims


def _alias(name: str, doc: str, **fixed: Any) -> Any:
    """``_conv`` with ``fixed`` keywords (its rank, ``transpose``), under a name and docstring of
    its own; its signature is ``_conv``'s without them, and holes work as in ``_conv``."""
    alias = cast(Any, functools.update_wrapper(functools.partial(_conv, **fixed), _conv))
    signature = inspect.signature(_conv)
    alias.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name not in fixed])
    alias.__name__ = alias.__qualname__ = name
    alias.__doc__ = doc
    return alias


conv = _alias("conv", """A convolution over the axes before the channels (channels last), one per entry of ``kernel_size``.

    ``jax.lax.conv_general_dilated`` (a cross-correlation) over the 1, 2 or 3 axes before the
    channels; the rank is ``len(kernel_size)`` (``conv_1d/2d/3d`` fix it and take an int). For
    a precision other than the default, use ``jax.default_matmul_precision``.

    Args:
        params: ``{"weights": (*kernel_size, in_channels // feature_group_count, out_channels),
            "bias": (out_channels,)}`` (``bias`` only with ``bias_initializer``).
        x: ``(*batch, *spatial, in_channels)``, any number of batch axes (none included).
        out_channels: the number of output channels.
        kernel_size: the window, one int per spatial axis.
        stride: the step between windows, an int or one per axis.
        padding: ``"SAME"`` (output size ``ceil(size / stride)``), ``"VALID"`` (no padding),
            ``"CAUSAL"`` (1-d: ``(kernel_size - 1) * dilation`` zeros on the left, so output
            ``t`` sees inputs ``<= t``), or one ``(low, high)`` pair per spatial axis.
        dilation: the kernel dilation (``rhs_dilation``), an int or one per axis.
        feature_group_count: split the channels into this many groups convolved separately
            (``in_channels`` for a depthwise convolution); must divide both channel counts.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros); None: no bias.
        dtype: the computation dtype (default: the promotion of ``x`` and ``weights``).
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(*batch, *out_spatial, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 8, 8, 3))
        >>> params = trace(nets.conv(_, _, 16, (3, 3), 2), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (16,), 'weights': (3, 3, 3, 16)}
        >>> nets.conv(params, x, 16, (3, 3), 2).shape
        (2, 4, 4, 16)
    """, num_spatial_dims=None, transpose=False)
conv_transpose = _alias("conv_transpose", """A transposed convolution over the axes before the channels (channels last), as Flax's ``ConvTranspose``.

    ``jax.lax.conv_transpose``: the input is dilated by ``stride`` (``stride - 1`` zeros
    between its elements) and convolved with the (unflipped) kernel; the rank is
    ``len(kernel_size)`` (``conv_transpose_1d/2d/3d`` fix it and take an int). With the
    effective kernel ``k = (kernel_size - 1) * dilation + 1`` on an axis of size ``n``, the
    output size is ``n * stride`` with ``"SAME"``; ``(n - 1) * stride + max(k, stride)`` with
    ``"VALID"`` (Equinox's and PyTorch's ``(n - 1) * stride + k`` when ``k >= stride``, Flax's
    ``n * stride`` when the effective kernel is smaller than the stride: the last
    ``stride - k`` outputs then see no input, the bias alone); and
    ``(n - 1) * stride + low + high - k + 2`` with an explicit ``(low, high)`` pair (the pairs
    pad the dilated input, then a ``"VALID"`` convolution runs).

    Args:
        params: ``{"weights": (*kernel_size, in_channels, out_channels), "bias": (out_channels,)}``
            (``bias`` only with ``bias_initializer``).
        x: ``(*batch, *spatial, in_channels)``, any number of batch axes (none included).
        out_channels: the number of output channels.
        kernel_size: the window, one int per spatial axis.
        stride: the upsampling factor, an int or one per axis.
        padding: ``"SAME"``, ``"VALID"`` or one ``(low, high)`` pair per spatial axis.
        dilation: the kernel dilation, an int or one per axis.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros); None: no bias.
        dtype: the computation dtype (default: the promotion of ``x`` and ``weights``).
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(*batch, *out_spatial, out_channels)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((8, 16, 3))
        >>> up = trace(nets.conv_transpose(_, _, 4, (3,), 2), jax.random.key(0), x)
        >>> nets.conv_transpose(up, x, 4, (3,), 2).shape
        (8, 32, 4)
    """, num_spatial_dims=None, transpose=True, feature_group_count=1)
conv_1d = _alias("conv_1d", """`conv` over 1 axis: ``x`` is ``(*batch, width, in_channels)``; an int ``kernel_size`` is enough.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 10, 3))
        >>> params = trace(nets.conv_1d(_, _, 4, 3, padding="CAUSAL"), jax.random.key(0), x)
        >>> nets.conv_1d(params, x, 4, 3, padding="CAUSAL").shape
        (2, 10, 4)
    """, num_spatial_dims=1, transpose=False)
conv_2d = _alias("conv_2d", """`conv` over 2 axes: ``x`` is ``(*batch, height, width, in_channels)``; an int ``kernel_size`` is enough.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 8, 8, 3))
        >>> params = trace(nets.conv_2d(_, _, 16, 3, 2), jax.random.key(0), x)
        >>> nets.conv_2d(params, x, 16, 3, 2).shape
        (2, 4, 4, 16)
    """, num_spatial_dims=2, transpose=False)
conv_3d = _alias("conv_3d", """`conv` over 3 axes: ``x`` is ``(*batch, depth, height, width, in_channels)``; an int ``kernel_size`` is enough.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((4, 4, 4, 2))
        >>> params = trace(nets.conv_3d(_, _, 5, 2, padding="VALID"), jax.random.key(0), x)
        >>> nets.conv_3d(params, x, 5, 2, padding="VALID").shape
        (3, 3, 3, 5)
    """, num_spatial_dims=3, transpose=False)
conv_transpose_1d = _alias("conv_transpose_1d", """`conv_transpose` over 1 axis (output sizes there); an int ``kernel_size`` is enough.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5, 3))
        >>> params = trace(nets.conv_transpose_1d(_, _, 4, 3, 2), jax.random.key(0), x)
        >>> nets.conv_transpose_1d(params, x, 4, 3, 2).shape
        (2, 10, 4)
    """, num_spatial_dims=1, transpose=True, feature_group_count=1)
conv_transpose_2d = _alias("conv_transpose_2d", """`conv_transpose` over 2 axes (output sizes there); an int ``kernel_size`` is enough.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 4, 4, 3))
        >>> params = trace(nets.conv_transpose_2d(_, _, 8, 3, 2), jax.random.key(0), x)
        >>> nets.conv_transpose_2d(params, x, 8, 3, 2).shape
        (2, 8, 8, 8)
    """, num_spatial_dims=2, transpose=True, feature_group_count=1)
conv_transpose_3d = _alias("conv_transpose_3d", """`conv_transpose` over 3 axes (output sizes there); an int ``kernel_size`` is enough.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 2, 2, 3))
        >>> params = trace(nets.conv_transpose_3d(_, _, 4, 2, 2), jax.random.key(0), x)
        >>> nets.conv_transpose_3d(params, x, 4, 2, 2).shape
        (4, 4, 4, 4)
    """, num_spatial_dims=3, transpose=True, feature_group_count=1)
