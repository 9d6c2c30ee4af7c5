"""The named types of zephyr, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload, runtime_checkable

import jax.numpy as jnp
from jax import Array
from typing_extensions import TypeAliasType

PRNGKey = Array
"""A JAX random key: ``jax.random.key(0)`` (typed) or ``jax.random.PRNGKey(0)`` (raw uint32)."""

Shape = tuple[int, ...]
"""A concrete array shape."""

DType = Any
"""Anything ``jnp.dtype`` accepts (``jnp.float32``, ``"bfloat16"``, ...)."""

float32 = jnp.float32


if TYPE_CHECKING:
    Params = TypeAliasType("Params", "Mapping[Any, Params] | Array")
else:  # at run time (beartype), one level: a mapping or an array, resolvable from any module
    Params = TypeAliasType("Params", Mapping[Any, Any] | Array)
"""A params tree as the type checkers see it: nested mappings whose leaves are arrays.

``trace`` returns one; every net takes one. A nested ``dict`` of ``jax.Array`` is one, and so
is a ``jax.Array`` (a leaf); it is also an ``optax`` ``ArrayTree``, so params go to optax as
they are. It is deliberately not ``Any``: an ``Any`` argument would make every overload of a
holed net match, and every result ``Any``. Use ``validate(params["w"], shape)`` to get a leaf
typed as an array.

A ``TypedDict`` of arrays is *not* a ``Params`` (its values are ``object`` to a checker);
nets annotated with a ``TypedDict`` are shown to users with ``Params`` in the stubs.
"""


@runtime_checkable
class Initializer(Protocol):
    """``(key, shape, dtype) -> Array``: the protocol of ``jax.nn.initializers``."""

    def __call__(self, key: PRNGKey, shape: Shape, dtype: DType = ..., /) -> Array: ...


_A_contra = TypeVar("_A_contra", contravariant=True)
_P = ParamSpec("_P")
_R_co = TypeVar("_R_co", covariant=True)


class HoledCall(Protocol[_R_co]):
    """What a call with holes to your own ``@flexible`` function returns, statically.

    Calling it with the missing arguments gives the function's return type. (The library's
    nets have exact holed types from the generated stubs; for your own module, run
    ``python -m zephyr.typing.stubgen yourpackage.module``.) It contains no ``Any``, so
    holed calls keep their types through ``chain`` and other overloaded functions.
    """

    def __call__(self, *args: object, **kwargs: object) -> _R_co: ...


class Flexible(Protocol[_A_contra, _P, _R_co]):
    """The static type of ``@flexible`` on a function ``(first, *args, **kwargs) -> R``.

    A call without holes is checked against the function's own signature and returns ``R``;
    a call with holes returns a :class:`HoledCall` of ``R``. The first argument may also be a
    :class:`Params`: a net annotated with a params ``TypedDict`` is called with a subtree of
    params, which the checkers only know as ``Params``.
    """

    __name__: str

    @overload
    def __call__(self, first: _A_contra | Params, /, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

    @overload
    def __call__(self, *args: object, **kwargs: object) -> HoledCall[_R_co]: ...
