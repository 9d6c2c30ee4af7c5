"""Checks shared by several nets' modules."""

from __future__ import annotations

from collections.abc import Sequence

from .._checks import int_pairs


def checked_padding(
    who: str, padding: str | Sequence[tuple[int, int]], n: int, options: tuple[str, ...] = ("SAME", "VALID")
) -> str | list[tuple[int, int]]:
    """``padding`` of a window over ``n`` axes (a convolution, a pooling): one of ``options`` or
    ``n`` ``(low, high)`` pairs of ints, checked.

    >>> checked_padding("max_pool", "same", 2)
    Traceback (most recent call last):
    ...
    ValueError: max_pool: `padding` must be 'SAME', 'VALID' or 2 (low, high) pairs of ints, got 'same'
    """
    if isinstance(padding, str) and padding in options:
        return padding
    pairs = None if isinstance(padding, str) else int_pairs(padding, n)
    if pairs is None:
        listed = ", ".join(repr(option) for option in options)
        raise ValueError(f"{who}: `padding` must be {listed} or {n} (low, high) pairs of ints, got {padding!r}")
    return pairs
