"""Regularization by random dropping: ``dropout`` and ``stochastic_depth``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jaxtyping import Float

from .._checks import check_bool, check_random_key, check_rate
from ..core._types import PRNGKey
from .._flexible import flexible
from ._pool import NoParams


def _keep(key: PRNGKey, rate: float, shape: tuple[int, ...], x: Array) -> Array:
    """``x / (1 - rate)`` where a Bernoulli(1 - rate) mask of ``shape`` (broadcast) keeps it, else 0."""
    if rate == 1.0:
        return jax.lax.full_like(x, 0)
    mask = jnp.broadcast_to(jax.random.bernoulli(key, 1.0 - rate, shape), x.shape)
    return jnp.where(mask, x / (1.0 - rate), jax.lax.full_like(x, 0))


def _dropped(who: str, key: PRNGKey, x: Array, rate: float, deterministic: bool, shape: tuple[int, ...]) -> Array:
    """``x`` through a dropout mask of ``shape`` (broadcast), checked; ``x`` itself when deterministic."""
    check_rate(who, "rate", rate)
    check_bool(who, "deterministic", deterministic)
    if deterministic or rate == 0.0:
        return x
    check_random_key(key, who)
    return _keep(key, rate, shape, x)


@flexible
def dropout(
    params: NoParams,
    key: PRNGKey,
    x: Float[Array, "*shape"],
    rate: float,
    *,
    deterministic: bool = False,
) -> Float[Array, "*shape"]:
    """Inverted dropout: each element is zeroed with probability ``rate``, the rest scaled by ``1 / (1 - rate)``.

    The expected output equals ``x``, so nothing changes at evaluation time: pass
    ``deterministic=True`` (or ``rate=0``) and ``x`` is returned as it is. ``rate=1`` gives zeros.

    Args:
        params: unused, ``{}`` (accepted so dropout composes with the other nets).
        key: a JAX random key; a new key gives a new mask.
        x: any shape.
        rate: the probability of dropping an element, a Python number in ``[0, 1]`` (static:
            it is checked and decides the code path, so it is not a traced array).
        deterministic: return ``x`` unchanged (evaluation).

    Returns:
        The shape of ``x``.

    Raises:
        ValueError: ``rate`` is not in ``[0, 1]``.
        TypeError: ``key`` is not a JAX random key.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets
        >>> y = nets.dropout({}, jax.random.key(0), jnp.ones(1000), 0.5)
        >>> sorted(set(y.tolist()))
        [0.0, 2.0]
        >>> nets.dropout({}, jax.random.key(0), jnp.ones(3), 0.5, deterministic=True).tolist()
        [1.0, 1.0, 1.0]
    """
    return _dropped("dropout", key, x, rate, deterministic, x.shape)


@flexible
def stochastic_depth(
    params: NoParams,
    key: PRNGKey,
    x: Float[Array, "batch *rest"],
    rate: float,
    *,
    deterministic: bool = False,
) -> Float[Array, "batch *rest"]:
    """Stochastic depth (drop path): each sample of the batch is zeroed whole with probability ``rate``.

    Apply it to a residual branch, ``x + stochastic_depth({}, key, f(x), rate)``: a dropped
    sample skips the block. Kept samples are scaled by ``1 / (1 - rate)`` (as torchvision's
    ``stochastic_depth(mode="row")``); ``deterministic=True`` or ``rate=0`` returns ``x``.

    Args:
        params: unused, ``{}``.
        key: a JAX random key.
        x: ``(batch, ...)``: the first axis is the batch; one draw per element of it.
        rate: the probability of dropping a sample, a Python number in ``[0, 1]`` (static).
        deterministic: return ``x`` unchanged (evaluation).

    Returns:
        The shape of ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets
        >>> y = nets.stochastic_depth({}, jax.random.key(1), jnp.ones((6, 2)), 0.5)
        >>> [row[0] == row[1] for row in y.tolist()]
        [True, True, True, True, True, True]
    """
    if x.ndim < 1:
        raise ValueError(f"stochastic_depth: `x` must have a batch axis, got shape {x.shape}")
    return _dropped("stochastic_depth", key, x, rate, deterministic, (x.shape[0],) + (1,) * (x.ndim - 1))
