"""Index-like values checked against their range, one policy for every net that reads them.

``token_embed``'s ids, ``positional_embed``'s positions and offset, and the recurrent nets'
``seq_lengths`` are data, not shapes, so their range can only be checked on values:

- **Concrete values** (an eager call, outside ``jit``, ``grad``, ``vmap`` and ``trace``): a value
  outside its range raises a ``ValueError`` naming the function, the argument, the range and
  the values given, whether run-time checking is on or off (it costs one copy to the host).
- **Traced values** (under a transformation): the results that depend on an out-of-range
  value are NaN, never a plausible number, and ``jax.experimental.checkify.checkify`` reports
  the first bad value with the same sentence (``checkify.debug_check``: a no-op without
  ``checkify``).

Comparisons run in a dtype at least 32 bits wide, so a narrow dtype (``uint8`` lengths, ``int8``
positions) never wraps.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.experimental import checkify

_SHOWN = 6  # bad values listed in a message


def concrete_ints(a: Any) -> np.ndarray[tuple[int, ...], np.dtype[np.int64]] | None:
    """The values of ``a`` as int64 if they are concrete (not a tracer inside jit, grad or trace).

    >>> import jax.numpy as jnp
    >>> concrete_ints(jnp.array([1, 2], jnp.uint8)).tolist()
    [1, 2]
    """
    try:
        return np.asarray(a, np.int64)
    except jax.errors.TracerArrayConversionError:
        return None


def wide(a: Array) -> Array:
    """``a`` as a signed int at least 32 bits wide (int64 for 64-bit dtypes): comparing or adding
    there cannot wrap around for any range a net uses.

    >>> import jax.numpy as jnp
    >>> wide(jnp.array([255], jnp.uint8)).dtype
    dtype('int32')
    """
    return a.astype(jnp.int64 if np.dtype(a.dtype).itemsize == 8 else jnp.int32)


def range_message(who: str, name: str, low: int, high: int, closed: bool, note: str = "") -> str:
    """The first half of every range error: ``"{who}: `{name}` must be in [low, high){note}, got "``."""
    return f"{who}: `{name}` must be in [{low}, {high}{']' if closed else ')'}{note}, got "


def check_range(who: str, name: str, values: Any, low: int, high: int, *, closed: bool = False, note: str = "") -> None:
    """Raise a ValueError if the concrete ``values`` are not all in ``[low, high)`` (``[low, high]``
    with ``closed``), listing the distinct bad values (a scalar: the value); traced values pass
    (see :func:`in_range`).

    >>> import jax.numpy as jnp
    >>> check_range("token_embed", "token_ids", jnp.array([3, -1, 10, 3]), 0, 10)
    Traceback (most recent call last):
    ...
    ValueError: token_embed: `token_ids` must be in [0, 10), got [-1, 10]
    """
    found = concrete_ints(values)
    if found is None or not found.size:
        return
    top = high + 1 if closed else high
    bad = found[(found < low) | (found >= top)]
    if bad.size and found.ndim == 0:
        raise ValueError(range_message(who, name, low, high, closed, note) + str(int(found)))
    if bad.size:
        shown = sorted({int(v) for v in bad.ravel()})
        listed = ", ".join(map(str, shown[:_SHOWN])) + (", ..." if len(shown) > _SHOWN else "")
        raise ValueError(range_message(who, name, low, high, closed, note) + f"[{listed}]")


def in_range(
    who: str, name: str, values: Array, low: int, high: int, *, closed: bool = False, note: str = ""
) -> Array:
    """Whether each value is in ``[low, high)`` (``[low, high]`` with ``closed``), compared in a wide
    dtype: concrete values outside raise (:func:`check_range`); traced ones give False, and under
    ``checkify`` fail with the same sentence.

    >>> import jax, jax.numpy as jnp
    >>> valid = jax.jit(lambda v: in_range("nets", "i", v, 0, 300))(jnp.array([0, 300, -1], jnp.int16))
    >>> valid.tolist()
    [True, False, False]
    """
    check_range(who, name, values, low, high, closed=closed, note=note)
    w = wide(values)
    valid = (w >= low) & (w <= high) if closed else (w >= low) & (w < high)
    if valid.size:
        first_bad = w.ravel()[jnp.argmin(valid.ravel())]
        message = range_message(who, name, low, high, closed, note).replace("{", "{{").replace("}", "}}")
        checkify.debug_check(jnp.all(valid), message + "{}", first_bad)  # pyright: ignore[reportUnknownMemberType]  # checkify's *fmt_args are untyped
    return valid
