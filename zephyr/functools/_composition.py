"""Composition of functions: chain them, add skip connections, thread a value through them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar, cast

import jax

from .._checks import check_random_key
from jax import Array

from ..core._types import ParamsTree, PRNGKey

V = TypeVar("V")
R = TypeVar("R")


def chain(fs: Sequence[Callable[[Array], Array]]) -> Callable[[Array], Array]:
    """Compose left to right: ``chain([f, g, h])(x) == h(g(f(x)))``.

    Typed for arrays, which is what nets pass along: a list mixing holed nets, lambdas and
    activations then keeps ``(Array) -> Array`` in both mypy and pyright (a generic type
    variable would make mypy infer ``Any`` for the lambdas). At run time any callables work.

    Example:
        >>> import jax.numpy as jnp
        >>> chain([lambda x: x + 1, lambda x: x * 10])(jnp.ones(2)).tolist()
        [20.0, 20.0]
    """
    given = cast(object, fs)  # any value at run time
    if callable(given) or not isinstance(given, Iterable):
        raise TypeError(f"chain: `fs` must be a list of functions, got {fs!r} (write chain([f, g]), not chain(f))")
    functions = tuple(fs)
    for i, f in enumerate(functions):
        if not callable(f):
            raise TypeError(f"chain: element {i} is {type(f).__name__}, not a function")

    def chained(x: Array) -> Array:
        for f in functions:
            x = f(x)
        return x

    return chained


def skip(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """A skip (residual) connection: ``skip(f)(x) == x + f(x)``.

    Example:
        >>> import jax.numpy as jnp
        >>> skip(lambda x: 2 * x)(jnp.ones(2)).tolist()
        [3.0, 3.0]
    """
    if not callable(f):
        raise TypeError(f"skip: expected a function, got {type(f).__name__}")

    def skipped(x: Array) -> Array:
        y = f(x)
        if getattr(y, "shape", None) != getattr(x, "shape", None):
            raise ValueError(
                f"skip: the wrapped function maps shape {getattr(x, 'shape', None)} to "
                f"{getattr(y, 'shape', None)}; a skip connection needs the same shape"
            )
        return x + y

    return skipped


def thread(
    fs: Sequence[Callable[..., R]],
    value: V,
    split_rule: Callable[[V, int], Sequence[V]],
) -> list[Callable[..., R]]:
    """Give each function its share of ``value`` as its first argument.

    ``split_rule(value, len(fs))`` returns one share per function; function ``i`` becomes
    ``functools.partial(fs[i], shares[i])``.

    Example:
        >>> fs = thread([lambda s, x: s + x] * 2, 10, lambda v, n: [v * i for i in range(n)])
        >>> [f(1) for f in fs]
        [1, 11]
    """
    functions = list(fs)
    shares = list(split_rule(value, len(functions)))
    if len(shares) != len(functions):
        raise ValueError(
            f"thread: split_rule gave {len(shares)} shares for {len(functions)} functions"
        )
    return [functools.partial(f, share) for f, share in zip(functions, shares)]


def thread_params(fs: Sequence[Callable[..., R]], params: ParamsTree) -> list[Callable[..., R]]:
    """Function ``i`` gets ``params[i]`` as its params: a stack of layers, one subtree each.

    Example:
        >>> blocks = thread_params([lambda p, x: p + x] * 2, {0: 1, 1: 2})
        >>> [b(10) for b in blocks]
        [11, 12]
    """
    functions = list(fs)
    missing = [i for i in range(len(functions)) if i not in params] if isinstance(params, Mapping) else []
    if missing:
        raise KeyError(
            f"thread_params: {len(functions)} functions need params[0] to params[{len(functions) - 1}]; "
            f"missing {missing}, the params have keys {list(params)}"
        )
    return [functools.partial(f, params[i]) for i, f in enumerate(functions)]


def thread_key(fs: Sequence[Callable[..., R]], key: PRNGKey) -> list[Callable[..., R]]:
    """Function ``i`` gets its own key, ``jax.random.split(key, len(fs))[i]``.

    Example:
        >>> import jax
        >>> fs = thread_key([lambda k, x: x] * 3, jax.random.key(0))
        >>> len(fs)
        3
    """
    check_random_key(key, "thread_key")
    functions = list(fs)
    keys = jax.random.split(key, len(functions))
    return [functools.partial(f, keys[i]) for i, f in enumerate(functions)]


def thread_identity(fs: Sequence[Callable[..., R]], value: object) -> list[Callable[..., R]]:
    """Every function gets the same ``value`` as its first argument.

    Example:
        >>> [f(1) for f in thread_identity([lambda v, x: v + x] * 2, 5)]
        [6, 6]
    """
    return [functools.partial(f, value) for f in fs]


