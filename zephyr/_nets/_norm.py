"""Normalization: ``layer_norm``, ``rms_norm``, ``group_norm`` and the stateful ``batch_norm``."""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import jax
import numpy as np
from jax import Array
from jax.nn.initializers import ones, zeros
from jaxtyping import Float

from ..core._api import validate
from .._checks import check_bool, fail, is_positive_int, min_rank
from .._jax import broadcast_in_dim, reduce_sum
from ..core._types import DType, Initializer
from .._flexible import flexible
from ._dtypes import at_least_float32, cast, compute_dtype


class NormParams(TypedDict):
    """Params of :func:`layer_norm` and :func:`group_norm`: shaped by the normalized axes.

    Both leaves are optional (``scale_initializer`` / ``offset_initializer`` None: none); the
    net's body declares them.
    """

    scale: NotRequired[Float[Array, "*normalized"]]
    offset: NotRequired[Float[Array, "*normalized"]]


class RMSNormParams(TypedDict):
    """Params of :func:`rms_norm`: an optional ``scale`` shaped by the normalized axes."""

    scale: NotRequired[Float[Array, "*normalized"]]


class BatchNormState(TypedDict):
    """State of :func:`batch_norm`: the running statistics, shaped by the feature axes."""

    mean: Float[Array, "*features"]
    var: Float[Array, "*features"]


def _axes(who: str, axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """``axis`` as sorted non-negative axes of an array of rank ``ndim``, checked."""
    raw: tuple[object, ...] = (axis,) if isinstance(axis, int) else tuple(axis)
    if not raw:
        raise ValueError(f"{who}: `axis` must name at least one axis, got {axis!r}")
    axes: list[int] = []
    for a in raw:
        if type(a) is not int:  # bools and floats are not axes
            raise TypeError(f"{who}: `axis` must be an int or a sequence of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{who}: `axis` {a} is out of range for `x` of rank {ndim}")
        axes.append(a % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{who}: `axis` names an axis twice: {axis!r}")
    return tuple(sorted(axes))


# The statistics and the scale/offset are written with lax ops: jnp's functions and operators
# are nested jits of their own. Measured on layer_norm of (8, 16, 256) float32 (CPU): a jnp
# version (x - mean, mean of its square, rsqrt, scale/offset reshaped to broadcast; commit
# 99c9cd0 of branch `nets`) gives the same bits eager and under jit and costs the same under
# jax.eval_shape (142 us jnp, 145 us lax) and jax.make_jaxpr (185-191, 180-184 us) of the net,
# but zephyr.trace after clear_trace_cache took 870-948 us instead of 669-706 us (+25-35%;
# rms_norm 660-767 vs 517-544 us, group_norm 959-1047 vs 770-851 us). Measured again for
# issue 23 (benchmarks/README.md, "Issue 26"): +36% (layer_norm) and +23% (rms_norm) of trace
# CPU time. Each jnp call is a nested jit(inline=JAX_EARLY) that JAX looks up and inlines; the
# engine's only way around it, jax.disable_jit() over the forward, is slower still and unrolls
# every lax.scan, so the lax form stays. Statistics and params keep size-1 axes (keepdims), as
# jnp's would: lax's binary ops broadcast them, and a scan's backward saves them small.


def _along(v: Array, axes: tuple[int, ...], shape: tuple[int, ...], dtype: Any) -> Array:
    """``v`` (shaped by ``axes`` of ``shape``) with a size-1 axis in place of each other axis
    of ``shape``: lax's binary ops broadcast it along them, as jnp's ``keepdims=True`` does."""
    kept = tuple(shape[a] if a in axes else 1 for a in range(len(shape)))
    return broadcast_in_dim(cast(v, np.dtype(dtype)), kept, axes)


def _mean(x: Array, axes: tuple[int, ...]) -> Array:
    """The mean over ``axes`` (removed), as ``jnp.mean`` computes it: a sum, then a divide."""
    count = np.asarray(math.prod(x.shape[a] for a in axes), x.dtype)
    return jax.lax.div(reduce_sum(x, axes), count)


def _back(reduced: Array, axes: tuple[int, ...], shape: tuple[int, ...]) -> Array:
    """A statistic over ``axes`` (removed) given back its axes, of size 1 (``keepdims=True``)."""
    return _along(reduced, tuple(a for a in range(len(shape)) if a not in axes), shape, reduced.dtype)


def _normalize(xs: Array, axes: tuple[int, ...], eps: float, center: bool) -> Array:
    """``(xs - mean) / sqrt(var + eps)`` (``center``), or ``xs / sqrt(mean(xs**2) + eps)``."""
    if center:
        xs = jax.lax.sub(xs, _back(_mean(xs, axes), axes, xs.shape))
    inverse = jax.lax.rsqrt(jax.lax.add(_mean(jax.lax.square(xs), axes), np.asarray(eps, xs.dtype)))
    return jax.lax.mul(xs, _back(inverse, axes, xs.shape))


def _check_options(who: str, eps: float, scale_initializer: object, offset_initializer: object = None) -> None:
    """``eps`` a number >= 0 (a negative one gives NaN for constant inputs); each initializer a
    function or None (no such param)."""
    given = typing.cast(object, eps)  # any value at run time
    if isinstance(given, bool) or not isinstance(given, int | float | np.floating) or not 0.0 <= float(eps) < math.inf:
        fail(who, "eps", "a finite number >= 0", eps)
    for name, f in (("scale", scale_initializer), ("offset", offset_initializer)):
        if f is not None and not callable(f):
            fail(who, f"{name}_initializer", f"an initializer (key, shape, dtype) -> Array, or None for no {name}", f, TypeError)


def _scale_offset(
    params: NormParams | RMSNormParams,
    y: Array,
    axes: tuple[int, ...],
    param_shape: tuple[int, ...],
    scale_initializer: Initializer | None,
    offset_initializer: Initializer | None,
    param_dtype: DType | None,
    dtype: np.dtype[Any],
    unit_offset: bool = False,
) -> Array:
    """``y * scale + offset`` (``y * (1 + scale)`` with ``unit_offset``), each param only with its
    initializer, shaped ``param_shape`` along ``axes`` of ``y``."""
    leaves = typing.cast(dict[str, Array], params)  # "scale" and "offset", as the initializers say
    if scale_initializer is not None:
        scale = validate(leaves["scale"], param_shape, scale_initializer, dtype=param_dtype)
        factor = _along(scale, axes, y.shape, dtype)
        y = jax.lax.mul(y, factor + jax.lax.full((), 1, factor.dtype) if unit_offset else factor)
    if offset_initializer is not None:
        offset = validate(leaves["offset"], param_shape, offset_initializer, dtype=param_dtype)
        y = jax.lax.add(y, _along(offset, axes, y.shape, dtype))
    return y


def _compute(dtype: DType | None, x: Array, param_dtype: DType | None) -> np.dtype[Any]:
    # The params' dtype takes part in the promotion, as Flax does (default float32 storage).
    stored = np.empty((), param_dtype if param_dtype is not None else np.float32)
    return compute_dtype(dtype, x, stored)


def _normed(
    who: str,
    params: NormParams | RMSNormParams,
    x: Array,
    axis: int | Sequence[int],
    eps: float,
    center: bool,
    scale_initializer: Initializer | None,
    offset_initializer: Initializer | None,
    unit_offset: bool,
    dtype: DType | None,
    param_dtype: DType | None,
) -> Array:
    """The body of ``layer_norm`` (``center``) and ``rms_norm``: statistics over ``axis`` in at
    least float32, then the scale and offset."""
    min_rank(who, "x", x.shape, 1)
    _check_options(who, eps, scale_initializer, offset_initializer)
    axes = _axes(who, axis, x.ndim)
    compute = _compute(dtype, x, param_dtype)
    y = cast(_normalize(cast(x, at_least_float32(compute)), axes, eps, center), compute)
    param_shape = tuple(x.shape[a] for a in axes)
    return _scale_offset(params, y, axes, param_shape, scale_initializer, offset_initializer, param_dtype, compute, unit_offset)


@flexible
def layer_norm(
    params: NormParams,
    x: Float[Array, "*shape"],
    axis: int | Sequence[int] = -1,
    *,
    eps: float = 1e-5,
    scale_initializer: Initializer | None = ones,
    offset_initializer: Initializer | None = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*shape"]:
    """Layer normalization: ``(x - mean) / sqrt(var + eps) * scale + offset`` over ``axis``.

    Mean and (biased) variance are taken over the axes in ``axis``, separately for every
    position of the other axes; statistics are computed in at least float32.

    Args:
        params: ``{"scale": s, "offset": s}`` with ``s = tuple(x.shape[a] for a in axis)``
            (sorted axes); each only with its initializer.
        x: any shape with at least one axis.
        axis: the normalized axis or axes (relative axes welcome).
        eps: added to the variance.
        scale_initializer: initializer of ``scale`` (default ones); None: no scale.
        offset_initializer: initializer of ``offset`` (default zeros); None: no offset.
        dtype: the computation dtype (default: the promotion of ``x`` and the params).
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        The shape of ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> x = jnp.ones((2, 3, 5))
        >>> params = trace(nets.layer_norm, jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'offset': (5,), 'scale': (5,)}
        >>> nets.layer_norm(params, x).shape
        (2, 3, 5)
    """
    return _normed(
        "layer_norm", params, x, axis, eps, True, scale_initializer, offset_initializer, False, dtype, param_dtype
    )


@flexible
def rms_norm(
    params: RMSNormParams,
    x: Float[Array, "*shape"],
    axis: int | Sequence[int] = -1,
    *,
    eps: float = 1e-5,
    scale_initializer: Initializer | None = ones,
    unit_offset: bool = False,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*shape"]:
    """Root-mean-square normalization: ``x / sqrt(mean(x**2) + eps) * scale`` over ``axis``.

    Args:
        params: ``{"scale": s}`` with ``s = tuple(x.shape[a] for a in axis)`` (none without
            ``scale_initializer``).
        x: any shape with at least one axis.
        axis: the normalized axis or axes.
        eps: added to the mean square.
        scale_initializer: initializer of ``scale`` (default ones; zeros with ``unit_offset``);
            None: no scale.
        unit_offset: scale by ``1 + scale`` (Gemma's RMSNorm, ``scale`` initialized to zeros).
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        The shape of ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> x = jnp.ones((2, 5))
        >>> params = trace(nets.rms_norm, jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'scale': (5,)}
        >>> nets.rms_norm(params, x).shape
        (2, 5)
    """
    if unit_offset and scale_initializer is ones:
        scale_initializer = zeros  # Gemma's scale starts at zeros: 1 + scale = 1
    return _normed("rms_norm", params, x, axis, eps, False, scale_initializer, None, unit_offset, dtype, param_dtype)


@flexible
def group_norm(
    params: NormParams,
    x: Float[Array, "batch *spatial channels"],
    num_groups: int,
    *,
    eps: float = 1e-5,
    scale_initializer: Initializer | None = ones,
    offset_initializer: Initializer | None = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "batch *spatial channels"]:
    """Group normalization: channels split into ``num_groups`` groups, each normalized alone.

    As in Haiku and Flax, the first axis is the batch: the statistics of one sample and one
    group are taken over all its spatial axes and the group's channels.

    Args:
        params: ``{"scale": (channels,), "offset": (channels,)}``, each only with its initializer.
        x: ``(batch, *spatial, channels)``; ``num_groups`` must divide ``channels``.
        num_groups: the number of groups (1: layer norm over all but the batch axis;
            ``channels``: instance norm).
        eps: added to the variance.
        scale_initializer: initializer of the per-channel ``scale`` (default ones); None: no scale.
        offset_initializer: initializer of the per-channel ``offset`` (default zeros); None: no offset.
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        The shape of ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 4, 4, 6))
        >>> params = trace(nets.group_norm(_, _, 3), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'offset': (6,), 'scale': (6,)}
        >>> nets.group_norm(params, x, 3).shape
        (2, 4, 4, 6)
    """
    _check_options("group_norm", eps, scale_initializer, offset_initializer)
    min_rank("group_norm", "x", x.shape, 2, "(batch, ..., channels)")
    channels = x.shape[-1]
    if not is_positive_int(num_groups) or channels % num_groups != 0:
        raise ValueError(
            f"group_norm: `num_groups` must divide the {channels} channels of `x`, got {num_groups}"
        )
    compute = _compute(dtype, x, param_dtype)
    grouped = x.astype(at_least_float32(compute)).reshape(x.shape[:-1] + (num_groups, channels // num_groups))
    reduce = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    y = cast(_normalize(grouped, reduce, eps, center=True).reshape(x.shape), compute)
    return _scale_offset(params, y, (x.ndim - 1,), (channels,), scale_initializer, offset_initializer, param_dtype, compute)


@flexible
def batch_norm(
    params: NormParams,
    state: BatchNormState,
    x: Float[Array, "*shape"],
    is_training: bool,
    *,
    momentum: float = 0.99,
    eps: float = 1e-5,
    axis: int | Sequence[int] = -1,
    scale_initializer: Initializer | None = ones,
    offset_initializer: Initializer | None = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> tuple[Float[Array, "*shape"], BatchNormState]:
    """Batch normalization with running statistics kept in ``state``.

    ``axis`` names the feature axes (default the channels, ``-1``); statistics are taken
    over every other axis. Training (``is_training=True``) normalizes with the batch's mean
    and biased variance and updates the running ones as exponential moving averages::

        mean' = momentum * mean + (1 - momentum) * batch_mean
        var'  = momentum * var  + (1 - momentum) * batch_var

    Evaluation normalizes with the running statistics and returns ``state`` unchanged.
    Build both trees with ``params, state = zephyr.trace_with_state(net, key, x, ...)``
    (running mean starts at zeros, running variance at ones).

    Args:
        params: ``{"scale": f, "offset": f}`` with ``f`` the shape of the feature axes.
        state: ``{"mean": f, "var": f}``, the running statistics.
        x: any shape with a feature axis and at least one other axis.
        is_training: batch statistics and updated state (True), or running ones (False).
        momentum: the weight of the old running statistics in the update.
        eps: added to the variance.
        axis: the feature axis or axes.
        scale_initializer: initializer of ``scale`` (default ones); None: no scale.
        offset_initializer: initializer of ``offset`` (default zeros); None: no offset.
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params and the state (default float32).

    Returns:
        ``(y, new_state)``, ``y`` of the shape of ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace_with_state
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.arange(8.0).reshape(4, 2)
        >>> params, state = trace_with_state(nets.batch_norm(_, _, _, True), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, (params, state))
        ({'offset': (2,), 'scale': (2,)}, {'mean': (2,), 'var': (2,)})
        >>> y, state = nets.batch_norm(params, state, x, True)
        >>> [round(m, 3) for m in state["mean"].tolist()]
        [0.03, 0.04]
    """
    min_rank("batch_norm", "x", x.shape, 2, "(batch, ..., features)")
    if not 0.0 <= momentum <= 1.0:
        fail("batch_norm", "momentum", "in [0, 1]", momentum)
    _check_options("batch_norm", eps, scale_initializer, offset_initializer)
    axes = _axes("batch_norm", axis, x.ndim)
    if len(axes) == x.ndim:
        raise ValueError(
            f"batch_norm: `axis` {axis!r} names every axis of `x` (shape {x.shape}); "
            "at least one axis must be left to average over"
        )
    feature_shape = tuple(x.shape[a] for a in axes)
    reduce = tuple(a for a in range(x.ndim) if a not in axes)
    running_mean = validate(state["mean"], feature_shape, zeros, dtype=param_dtype)
    running_var = validate(state["var"], feature_shape, ones, dtype=param_dtype)
    compute = _compute(dtype, x, param_dtype)
    stats = at_least_float32(compute)
    xs = x.astype(stats)
    check_bool("batch_norm", "is_training", is_training)
    if is_training and math.prod(x.shape[a] for a in reduce) == 0:
        raise ValueError(
            f"batch_norm: `x` of shape {x.shape} has no elements to take statistics over with "
            "is_training=True (an empty batch would set the running mean and var to NaN); "
            "skip the call for an empty batch, or pass is_training=False"
        )
    if is_training:
        mean = _mean(xs, reduce)
        var = _mean(jax.lax.square(jax.lax.sub(xs, _along(mean, axes, xs.shape, stats))), reduce)
        m = momentum
        new_state: BatchNormState = {
            "mean": (m * running_mean.astype(stats) + (1 - m) * mean).astype(running_mean.dtype),
            "var": (m * running_var.astype(stats) + (1 - m) * var).astype(running_var.dtype),
        }
    else:
        mean, var = running_mean.astype(stats), running_var.astype(stats)
        new_state = {"mean": running_mean, "var": running_var}
    inv = jax.lax.rsqrt(var + eps)
    y = (xs - _along(mean, axes, xs.shape, stats)) * _along(inv, axes, xs.shape, stats)
    y = _scale_offset(params, y.astype(compute), axes, feature_shape, scale_initializer, offset_initializer, param_dtype, compute)
    return y, new_state
