"""Affine layers: ``linear``, ``branch_linear``, ``linear_like``, ``mlp``, and ``projections``
(how the linear maps of an MLP or an attention are made)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.nn.initializers import zeros
from jaxtyping import Float

from ..core._api import validate
from .._checks import check_bool, check_callable, check_dtype, check_size, check_sizes, checked_by, min_rank
from ..typing._checking import is_checking
from ..core._initializers import default_initializer
from ..core._types import DType, Initializer
from ._dtypes import add_trailing, cast, compute_dtype
from .._flexible import flexible


class LinearParams(TypedDict):
    """Params of :func:`linear`."""

    weights: Float[Array, "d_in out_dim"]
    bias: NotRequired[Float[Array, " out_dim"]]


class BranchLinearParams(TypedDict):
    """Params of :func:`branch_linear`."""

    weights: Float[Array, "d num_branches*d"]
    bias: NotRequired[Float[Array, " num_branches*d"]]


def _check_linear(
    params: object, x: object, out_dim: int, use_bias: bool = True, *,
    weights_initializer: object = None, bias_initializer: object = None,
    dtype: object = None, param_dtype: object = None,
) -> None:
    check_size("linear", "out_dim", out_dim)
    check_bool("linear", "use_bias", use_bias)
    for name, f in (("weights_initializer", weights_initializer), ("bias_initializer", bias_initializer)):
        if f is not None:
            check_callable("linear", name, f)
    for name, d in (("dtype", dtype), ("param_dtype", param_dtype)):
        if d is not None:
            check_dtype("linear", name, d)


@functools.cache
def _is_float(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is a float dtype, remembered per dtype: ``jnp.issubdtype`` is slow for
    a check run on every call (six per checked call of a three-layer mlp)."""
    return bool(jnp.issubdtype(dtype, jnp.floating))


def _check_float(who: str, name: str, array: Array) -> None:
    """With checking on, a param the annotation says is float must be (int params give zeros)."""
    if is_checking() and not _is_float(array.dtype):
        raise TypeError(f"{who}: `params['{name}']` must be a float array (its annotation is Float), got dtype {array.dtype}")


@flexible
@checked_by(_check_linear)
def linear(
    params: LinearParams,
    x: Float[Array, "*batch d_in"],
    out_dim: int,
    use_bias: bool = True,
    *,
    weights_initializer: Initializer = default_initializer,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch out_dim"]:
    """An affine map of the last axis: ``x @ weights + bias``.

    Args:
        params: ``{"weights": (d_in, out_dim), "bias": (out_dim,)}``.
        x: ``(*batch, d_in)``, any number of batch axes.
        out_dim: the size of the output's last axis.
        use_bias: whether to add ``bias``.
        weights_initializer: initializer of ``weights`` (default: truncated normal, fan-in).
        bias_initializer: initializer of ``bias`` (default: zeros).
        dtype: the computation dtype (default: the promoted dtype of ``x`` and the params).
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        ``(*batch, out_dim)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> x = jnp.ones((2, 5))
        >>> params = trace(nets.linear(_, _, 3), jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (3,), 'weights': (5, 3)}
        >>> nets.linear(params, x, 3).shape
        (2, 3)
    """
    min_rank("linear", "x", x.shape, 1)
    weights = validate(params["weights"], (x.shape[-1], out_dim), weights_initializer, dtype=param_dtype)
    compute = compute_dtype(dtype, x, weights)
    _check_float("linear", "weights", weights)
    y = jnp.matmul(cast(x, compute), cast(weights, compute))
    if use_bias:
        bias = validate(params["bias"], (out_dim,), bias_initializer, dtype=param_dtype)  # pyright: ignore[reportTypedDictNotRequiredAccess]  # present when use_bias
        _check_float("linear", "bias", bias)
        y = add_trailing(y, cast(bias, compute))
    return y


@dataclass(frozen=True)
class Projections:
    """How the linear maps of attention and MLPs are made: see :func:`projections`."""

    use_bias: bool = True
    weights_initializer: Initializer = default_initializer
    out_initializer: Initializer | None = None
    bias_initializer: Initializer = zeros
    dtype: DType | None = None
    param_dtype: DType | None = None

    def __call__(self, params: LinearParams, x: Array, out_dim: int, out: bool = False) -> Array:
        """``nets.linear`` made this way (``out``: a map back into the residual stream)."""
        init = self.weights_initializer if not out or self.out_initializer is None else self.out_initializer
        return linear(
            params, x, out_dim, self.use_bias, weights_initializer=init, bias_initializer=self.bias_initializer,
            dtype=self.dtype, param_dtype=self.param_dtype,
        )  # fmt: skip


def projections(
    use_bias: bool = True,
    *,
    weights_initializer: Initializer = default_initializer,
    out_initializer: Initializer | None = None,
    bias_initializer: Initializer = zeros,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Projections:
    """How the linear maps of an attention or MLP part are made (a part of :func:`attention`,
    :func:`feed_forward` and :func:`mlp`).

    Args:
        use_bias: whether the maps have a bias.
        weights_initializer: initializer of the weights into the heads or the hidden layer.
        out_initializer: initializer of the weights back into the residual (attention's
            ``out``, the MLP's last layer); default ``weights_initializer``.
        bias_initializer: initializer of the biases.
        dtype: the computation dtype.
        param_dtype: the storage dtype of the params (default float32).

    Returns:
        A :class:`Projections` value.

    Example:
        >>> from zephyr import nets
        >>> nets.projections(use_bias=False).use_bias
        False
    """
    check_bool("projections", "use_bias", use_bias)
    return Projections(use_bias, weights_initializer, out_initializer, bias_initializer, dtype, param_dtype)


@flexible
def linear_like(
    params: LinearParams,
    x: Float[Array, "*batch d_in"],
    reference: Float[Array, "*rest out_dim"],
    use_bias: bool = True,
    *,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch out_dim"]:
    """A :func:`linear` whose output size is the last axis of ``reference``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> x, ref = jnp.ones((2, 5)), jnp.ones((7,))
        >>> params = trace(nets.linear_like, jax.random.key(0), x, ref)
        >>> nets.linear_like(params, x, ref).shape
        (2, 7)
    """
    return linear(params, x, reference.shape[-1], use_bias, dtype=dtype, param_dtype=param_dtype)


@flexible
def branch_linear(
    params: BranchLinearParams,
    x: Float[Array, "*batch d"],
    num_branches: int,
    use_bias: bool = True,
    *,
    dtype: DType | None = None,
    param_dtype: DType | None = None,
) -> Float[Array, "*batch num_branches d"]:
    """Branch the last axis into ``num_branches`` linear maps of the same width.

    Args:
        params: ``{"weights": (d, num_branches * d), "bias": (num_branches * d,)}``.
        x: ``(*batch, d)``.
        num_branches: how many branches.

    Returns:
        ``(*batch, num_branches, d)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> x = jnp.ones((2, 4))
        >>> params = trace(nets.branch_linear, jax.random.key(0), x, 3)
        >>> nets.branch_linear(params, x, 3).shape
        (2, 3, 4)
    """
    check_size("branch_linear", "num_branches", num_branches)
    d = x.shape[-1]
    flat_params: LinearParams = params  # same keys as LinearParams, other dim names
    y = linear(flat_params, x, num_branches * d, use_bias, dtype=dtype, param_dtype=param_dtype)
    return y.reshape(y.shape[:-1] + (num_branches, d))


@flexible
def mlp(
    params: dict[int, LinearParams],
    x: Float[Array, "*batch d_in"],
    out_dims: Sequence[int],
    activation: Callable[[Array], Array] = jax.nn.relu,
    activation_final: Callable[[Array], Array] = lambda y: y,
    *,
    projections: Projections = Projections(),
) -> Float[Array, "*batch d_out"]:
    """A stack of :func:`linear` layers, ``activation`` between them.

    Args:
        params: layer ``i`` at ``params[i]``.
        x: ``(*batch, d_in)``.
        out_dims: the output size of each layer; the last is the output size.
        activation: applied after every layer but the last.
        activation_final: applied after the last layer (default: identity).
        projections: how the layers are made (:func:`projections`: bias, initializers, dtypes;
            its ``out_initializer`` is the last layer's, e.g. nanoGPT's residual projection
            scaled by ``1 / sqrt(2 * layers)``).

    Returns:
        ``(*batch, out_dims[-1])``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> x = jnp.ones((2, 4))
        >>> params = trace(nets.mlp, jax.random.key(0), x, [8, 3])
        >>> sorted(params), nets.mlp(params, x, [8, 3]).shape
        ([0, 1], (2, 3))
    """
    dims = check_sizes("mlp", "out_dims", out_dims)
    check_callable("mlp", "activation", activation)
    check_callable("mlp", "activation_final", activation_final)
    if not isinstance(projections, Projections):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input
        raise TypeError(f"mlp: `projections` must come from nets.projections(...), got {type(projections).__name__}")
    for i, out_dim in enumerate(dims):
        x = projections(params[i], x, out_dim, out=i == len(dims) - 1)
        x = activation(x) if i < len(dims) - 1 else activation_final(x)
    return x
