"""``trace`` and ``trace_with_state`` as users call them: typed by the ``@flexible``
protocols (the params type of a flexible net, even when it takes holes), then the engine's
two halves, ``collect_specs`` and ``initialize``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from ._checks import check_random_key
from ._jax import tree_flatten
from .core._api import collect_specs, initialize
from .core._types import PRNGKey, name_of
from .functools._partial import PlaceholderType
from .functools._protocols import Flexible1, Flexible2, Flexible3

P = TypeVar("P")
Ps = ParamSpec("Ps")
B = TypeVar("B")
C = TypeVar("C")
R = TypeVar("R")
Q = ParamSpec("Q")
P2 = ParamSpec("P2")
P3 = ParamSpec("P3")

# ``trace(f, key, *args)`` returns the type of ``f``'s first parameter: the net's params
# ``TypedDict``, or ``Params``. A ``@flexible`` net is matched by its protocol (its first
# parameter's type and the signature after it, never a hole overload); anything else callable
# (a holed call, a plain function, a generated stub's overloads) by ``Concatenate``.


@overload
def trace(
    f: Flexible3[Q, P, Ps, B, P2, C, P3, R], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs
) -> P: ...


@overload
def trace(f: Flexible2[Q, P, Ps, B, P2, R], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs) -> P: ...


@overload
def trace(f: Flexible1[Q, P, Ps, R], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs) -> P: ...


@overload
def trace(
    f: Callable[Concatenate[P, Ps], object], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs
) -> P: ...


def trace(f: Callable[..., object], key: PRNGKey, *args: object, **kwargs: object) -> Any:
    """Build the params of ``f`` by running ``f(params, *args, **kwargs)`` once, abstractly.

    The forward runs like ``jax.eval_shape``: shapes and dtypes only, no arithmetic on the
    inputs and no large allocation. Every leaf it declares (with ``validate`` or by its params
    annotation) is then initialized with a key folded from ``key`` and the leaf's path, so
    adding a layer leaves the other layers' initial values unchanged. A default
    (threefry2x32) leaf key is carried over to JAX's threefry4x32 generator before the
    initializer draws from it: values identical however the leaf is sharded and on every
    backend, drawn ~3x faster on CPU with no temporary arrays.

    Args:
        f: the net, a function of ``(params, *args, **kwargs)``; may be ``jax.jit``-wrapped.
        key: a JAX random key (``jax.random.key(0)`` or ``jax.random.PRNGKey(0)``).
        *args: sample inputs. Arrays are seen only by shape and dtype; anything else (ints,
            strings, callables) is passed as it is, as a hyperparameter.
        **kwargs: sample keyword inputs, treated like ``args``.

    Returns:
        A plain nested dict of ``jax.Array`` (str and int keys), as ``f`` indexes it.

    Like ``jax.jit``, ``trace`` treats ``f`` as a pure function: the abstract run is cached
    per function and argument signature (array shapes and dtypes, hyperparameter values), so
    tracing the same net again with another key only initializes. A net whose structure
    depends on mutable global state needs :func:`clear_trace_cache` in between. With run-time
    checking on (``zephyr.typing.checking(True)``), ``trace`` also checks that no tracer
    leaks out of the net (``jax.checking_leaks``) and names what kept one.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> params = trace(nets.linear(_, _, 3), jax.random.key(0), jnp.ones((2, 4)))
        >>> jax.tree.map(jnp.shape, params)
        {'bias': (3,), 'weights': (4, 3)}
    """
    check_random_key(key, "trace")
    _check_no_hole("trace", f, args, kwargs)
    (specs,) = collect_specs(f, args, kwargs)
    return initialize(specs, key)


S = TypeVar("S")


@overload
def trace_with_state(
    f: Flexible3[Q, P, P2, S, Ps, C, P3, R], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs
) -> tuple[P, S]: ...


@overload
def trace_with_state(
    f: Flexible2[Q, P, P2, S, Ps, R], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs
) -> tuple[P, S]: ...


@overload
def trace_with_state(
    f: Callable[Concatenate[P, S, Ps], object], key: PRNGKey, *args: Ps.args, **kwargs: Ps.kwargs
) -> tuple[P, S]: ...


def trace_with_state(f: Callable[..., object], key: PRNGKey, *args: object, **kwargs: object) -> Any:
    """Like :func:`trace` for a stateful net ``f(params, state, *args)``: returns both trees.

    State (running statistics, caches) is declared like params, with ``validate(state[...],
    shape, initializer)``, and lives in its own tree; a stateful net returns
    ``(output, new_state)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import trace_with_state, validate
        >>> from jax.nn.initializers import zeros
        >>> def counter(params, state, x):
        ...     count = validate(state["count"], (), zeros, dtype=jnp.int32)
        ...     return x, {"count": count + 1}
        >>> params, state = trace_with_state(counter, jax.random.key(0), jnp.ones(3))
        >>> params, state["count"].tolist()
        ({}, 0)
    """
    check_random_key(key, "trace_with_state")
    _check_no_hole("trace_with_state", f, args, kwargs)
    param_specs, state_specs = collect_specs(f, args, kwargs, roots=("params", "state"))
    params: Any = initialize(param_specs, key)
    state: Any = initialize(state_specs, key)
    return params, state


def _check_no_hole(who: str, f: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    if any(isinstance(leaf, PlaceholderType) for leaf in tree_flatten((args, kwargs))[0]):
        raise TypeError(
            f"{who}: an argument of `{name_of(f)}` is the placeholder `_`; {who} calls the "
            "function now, so every argument must be given (fill the holes first, or pass "
            "the holed function itself: trace(net(_, _, 256), key, x))"
        )
