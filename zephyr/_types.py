"""The named types of zephyr, in one place."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax.numpy as jnp
from jax import Array

PRNGKey = Array
"""A JAX random key: ``jax.random.key(0)`` (typed) or ``jax.random.PRNGKey(0)`` (raw uint32)."""

Shape = tuple[int, ...]
"""A concrete array shape."""

DType = Any
"""Anything ``jnp.dtype`` accepts (``jnp.float32``, ``"bfloat16"``, ...)."""

float32 = jnp.float32


@runtime_checkable
class Params(Protocol):
    """A params tree as the type checkers see it: indexable, all the way down.

    ``trace`` returns one; every net takes one. A nested ``dict`` of ``jax.Array`` satisfies
    it in mypy and pyright, and so does a ``jax.Array`` (a leaf). It is deliberately not
    ``Any``: an ``Any`` argument would make every overload of a holed net match, and every
    result ``Any``. Use ``validate(params["w"], shape)`` to get a leaf typed as an array.

    A ``TypedDict`` of arrays is *not* a ``Params`` (its values are ``object`` to a checker);
    nets annotated with a ``TypedDict`` are shown to users with ``Params`` in the stubs.
    """

    def __getitem__(self, key: Any, /) -> Params: ...


@runtime_checkable
class Initializer(Protocol):
    """``(key, shape, dtype) -> Array``: the protocol of ``jax.nn.initializers``."""

    def __call__(self, key: PRNGKey, shape: Shape, dtype: DType = ..., /) -> Array: ...
