"""Argument checks shared by every public function.

Each check raises one sentence naming the function, the argument, what was expected and
the value given, e.g. ``"gru: `hidden_size` must be a positive int, got 0"``. A leaf module:
it imports nothing from zephyr.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np

T = TypeVar("T")


def fail(who: str, name: str, expected: str, value: object, error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error("{who}: `{name}` must be {expected}, got {value!r}")``.

    >>> fail("gru", "hidden_size", "a positive int", 0)
    Traceback (most recent call last):
    ...
    ValueError: gru: `hidden_size` must be a positive int, got 0
    """
    raise error(f"{who}: `{name}` must be {expected}, got {value!r}")


def is_positive_int(value: object) -> bool:
    """Whether ``value`` is an int ``>= 1``: a Python or numpy int (sizes computed with numpy
    are sizes, as in JAX), not a bool."""
    return is_int(value) and cast(int, value) >= 1


def positive_int(who: str, name: str, value: int) -> int:
    """``value`` as an ``int``, checked to be a positive int (a ValueError otherwise).

    >>> positive_int("multi_head_attention", "num_heads", np.int64(4))
    4
    >>> positive_int("multi_head_attention", "num_heads", 0)
    Traceback (most recent call last):
    ...
    ValueError: multi_head_attention: `num_heads` must be a positive int, got 0
    """
    if not is_positive_int(value):
        fail(who, name, "a positive int", value)
    return int(value)


def positive_int_or_none(who: str, name: str, value: int | None) -> int | None:
    """``value``, checked to be ``None`` or a positive int."""
    if value is None:
        return None
    return int(value) if is_positive_int(value) else fail(who, name, "a positive int or None", value)


def positive_ints(who: str, name: str, value: int | Sequence[int], n: int, note: str = "") -> tuple[int, ...]:
    """An int or ``n`` ints as ``n`` positive ints (a kernel size, a stride), checked.

    >>> positive_ints("conv_2d", "stride", 2, 2)
    (2, 2)
    >>> positive_ints("conv_2d", "stride", (1, 0), 2)
    Traceback (most recent call last):
    ...
    ValueError: conv_2d: `stride` must be a positive int or 2 positive ints, got (1, 0)
    """
    raw: tuple[object, ...] = tuple(value) if isinstance(value, Sequence) else (value,) * n
    values = tuple(int(v) for v in raw if is_positive_int(v))  # type: ignore[call-overload]  # an int by is_positive_int
    if len(raw) != n or len(values) != n:
        fail(who, name, f"a positive int or {n} positive ints{note}", value)
    return values


def int_pairs(value: Sequence[Sequence[int]], n: int) -> list[tuple[int, int]] | None:
    """``value`` as ``n`` ``(low, high)`` pairs of ints (explicit padding), or None if it is not."""
    pairs: list[tuple[object, ...]] = [tuple(p) for p in value]
    checked = [(p[0], p[1]) for p in pairs if len(p) == 2 and isinstance(p[0], int) and isinstance(p[1], int)]
    return checked if len(pairs) == n and len(checked) == n else None


def check_rate(who: str, name: str, value: float) -> float:
    """``value``, checked to be a number in ``[0, 1]`` (a dropout rate).

    >>> check_rate("dropout", "rate", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: dropout: `rate` must be a number in [0, 1], got 1.5
    """
    if type(value) not in (int, float) or not 0.0 <= value <= 1.0:  # a Python number: not a bool, a numpy scalar or an array
        fail(who, name, "a number in [0, 1]", value)
    return value


def check_option(who: str, name: str, value: T, choices: Sequence[T]) -> T:
    """``value``, checked to be one of ``choices``.

    >>> check_option("bidirectional", "cell", "lsmt", ("rnn", "lstm", "gru"))
    Traceback (most recent call last):
    ...
    ValueError: bidirectional: `cell` must be 'rnn', 'lstm' or 'gru', got 'lsmt'
    """
    if value not in choices:
        listed = [repr(c) for c in choices]
        expected = listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"
        fail(who, name, expected, value)
    return value


def min_rank(who: str, name: str, shape: tuple[int, ...], rank: int, axes: str = "") -> None:
    """Check an array of ``shape`` has at least ``rank`` axes; ``axes`` says which, e.g. ``"(seq, d)"``.

    >>> min_rank("lstm", "x", (3,), 2, "(time, features)")
    Traceback (most recent call last):
    ...
    ValueError: lstm: `x` must have at least 2 axes (time, features), got shape (3,)
    """
    if len(shape) < rank:
        count = "one axis" if rank == 1 else f"{rank} axes"
        raise ValueError(f"{who}: `{name}` must have at least {count}{' ' + axes if axes else ''}, got shape {shape}")


def describe_value(value: object) -> str:
    """``value`` in a message: an array by type, shape and dtype, anything else by its repr.

    >>> import numpy as np
    >>> describe_value(np.zeros((2, 3))), describe_value("a")
    ('ndarray of shape (2, 3) and dtype float64', "str 'a'")
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {value!r}"


def _is_random_key(key: object) -> bool:
    if not isinstance(key, jax.Array | np.ndarray):
        return False
    array: jax.Array | np.ndarray[Any, Any] = key  # pyright: ignore[reportUnknownVariableType]  # numpy's generic ndarray
    if jnp.issubdtype(array.dtype, jax.dtypes.prng_key):
        return array.shape == ()
    return array.dtype == np.uint32 and array.shape == (2,)


def check_random_key(key: object, who: str) -> None:
    """Raise a ``TypeError`` unless ``key`` is a single JAX random key.

    >>> import jax
    >>> check_random_key(jax.random.key(0), "dropout")
    >>> check_random_key(0, "dropout")
    Traceback (most recent call last):
    TypeError: dropout: `key` must be a JAX random key, jax.random.key(0) or jax.random.PRNGKey(0), got int 0
    """
    if not _is_random_key(key):
        raise TypeError(
            f"{who}: `key` must be a JAX random key, jax.random.key(0) or "
            f"jax.random.PRNGKey(0), got {describe_value(key)}"
        )


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer size: a Python or numpy int, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_size(who: str, name: str, value: int, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (a layer width): a TypeError for a non-int, a
    ValueError for one too small. numpy ints are accepted and returned as ``int``.

    >>> check_size("linear", "out_dim", np.int64(3))
    3
    >>> check_size("linear", "out_dim", 2.5)
    Traceback (most recent call last):
    ...
    TypeError: linear: `out_dim` must be a positive int, got 2.5
    >>> check_size("linear", "out_dim", -4)
    Traceback (most recent call last):
    ...
    ValueError: linear: `out_dim` must be a positive int, got -4
    """
    expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if not is_int(value):
        fail(who, name, expected, value, TypeError)
    if int(value) < minimum:
        fail(who, name, expected, value)
    return int(value)


def check_sizes(who: str, name: str, value: Sequence[int]) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (layer widths), not a string.

    >>> check_sizes("mlp", "out_dims", [8, 3])
    (8, 3)
    >>> check_sizes("mlp", "out_dims", "83")
    Traceback (most recent call last):
    ...
    TypeError: mlp: `out_dims` must be a sequence of positive ints, got '83'
    """
    expected = "a sequence of positive ints"
    given = cast(object, value)  # any value at run time
    if isinstance(given, str | bytes) or not isinstance(given, Sequence | np.ndarray):
        fail(who, name, expected, value, TypeError)
    items: list[object] = list(value)
    if not items:
        fail(who, name, "a non-empty sequence of positive ints", value)
    if not all(is_int(v) for v in items):
        fail(who, name, expected, value, TypeError)
    if not all(int(cast(int, v)) >= 1 for v in items):
        fail(who, name, expected, value)
    return tuple(int(cast(int, v)) for v in items)


def check_bool(who: str, name: str, value: bool) -> bool:
    """``value``, checked to be a bool (``"no"`` or ``1`` is not a switch).

    >>> check_bool("linear", "use_bias", "no")
    Traceback (most recent call last):
    ...
    TypeError: linear: `use_bias` must be True or False, got 'no'
    """
    given = cast(object, value)  # any value at run time
    if not isinstance(given, bool | np.bool_):
        fail(who, name, "True or False", value, TypeError)
    return bool(value)


def check_callable(who: str, name: str, value: T) -> T:
    """``value``, checked to be callable.

    >>> check_callable("mlp", "activation", "relu")
    Traceback (most recent call last):
    ...
    TypeError: mlp: `activation` must be a function, got 'relu'
    """
    if not callable(value):
        fail(who, name, "a function", value, TypeError)
    return value


def check_dtype(who: str, name: str, value: object) -> np.dtype[Any]:
    """``value`` as a numpy dtype (JAX's canonical one), or a TypeError naming it.

    >>> check_dtype("validate", "dtype", "bfloat16").name
    'bfloat16'
    >>> check_dtype("validate", "dtype", "notadtype")
    Traceback (most recent call last):
    ...
    TypeError: validate: `dtype` must be a dtype such as jnp.float32 or 'bfloat16', got 'notadtype'
    """
    try:
        return np.dtype(jax.dtypes.canonicalize_dtype(value))
    except (TypeError, ValueError):
        fail(who, name, "a dtype such as jnp.float32 or 'bfloat16'", value, TypeError)


def check_tags(who: str, value: object) -> tuple[str, ...]:
    """Tags as a tuple of strings: one string is one tag.

    >>> check_tags("validate", "decay"), check_tags("validate", ["a", "b"])
    (('decay',), ('a', 'b'))
    >>> check_tags("validate", 5)
    Traceback (most recent call last):
    ...
    TypeError: validate: `tags` must be a str or an iterable of str, got 5
    """
    if isinstance(value, str):
        return (value,)
    try:
        tags = tuple(cast("Sequence[object]", value))
    except TypeError:
        fail(who, "tags", "a str or an iterable of str", value, TypeError)
    if not all(isinstance(t, str) for t in tags):
        fail(who, "tags", "a str or an iterable of str", value, TypeError)
    return cast("tuple[str, ...]", tags)


F = TypeVar("F", bound=Callable[..., Any])


def checked_by(check: Callable[..., None]) -> Callable[[F], F]:
    """Give a net its argument checks: ``check`` takes the net's arguments and raises on a bad
    one. ``@flexible`` runs it during ``trace``, before the params annotation declares any
    leaf (so a bad size is named before it becomes a shape), and with checking on, once per
    call signature (as the annotations are checked): ``check`` may depend only on what a
    signature holds, the arguments' structure, types, shapes, dtypes and plain values.
    """

    def attach(fn: F) -> F:
        setattr(fn, "__zephyr_check__", check)  # noqa: B010  # read by zephyr._flexible and zephyr.typing._checking
        return fn

    return attach
