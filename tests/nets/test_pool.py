"""Pooling against explicit numpy loops (padding excluded from max and mean)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import nets, trace
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import checking

NDArray = np.ndarray[Any, np.dtype[np.float64]]


def _reference_pool(
    x: NDArray, window: tuple[int, ...], stride: tuple[int, ...], pads: list[tuple[int, int]], reduce: Any
) -> NDArray:
    """Pool the len(window) axes before the last by loops; padded cells are left out."""
    m = len(window)
    lead = x.shape[: x.ndim - 1 - m]
    spatial = x.shape[x.ndim - 1 - m : -1]
    out = [(spatial[i] + sum(pads[i]) - window[i]) // stride[i] + 1 for i in range(m)]
    y = np.zeros((*lead, *out, x.shape[-1]))
    for pos in itertools.product(*(range(o) for o in out)):
        ranges = []
        for i in range(m):
            start = pos[i] * stride[i] - pads[i][0]
            ranges.append(slice(max(start, 0), min(start + window[i], spatial[i])))
        block = x[(Ellipsis, *ranges, slice(None))]  # type: ignore[arg-type]  # numpy's stubs reject a built index tuple
        axes = tuple(range(len(lead), len(lead) + m))
        y[(Ellipsis, *pos, slice(None))] = reduce(block, axis=axes)  # type: ignore[index]  # a built index tuple
    return y


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("net,reduce", [(nets.max_pool, np.max), (nets.avg_pool, np.mean)])
@pytest.mark.parametrize("window,stride,padding", [(2, 2, "VALID"), (3, 1, "SAME"), (3, 2, "SAME"), ((2, 3), (1, 2), [(1, 0), (1, 1)])])
def test_pool_2d_matches_loops(key: jax.Array, net: Any, reduce: Any, window: Any, stride: Any, padding: Any) -> None:
    x = jax.random.normal(key, (2, 5, 6, 3))
    y = net({}, x, window, stride, padding)
    w = (window, window) if isinstance(window, int) else window
    s = (stride, stride) if isinstance(stride, int) else stride
    if padding == "SAME":
        pads = [_same_pads(5, w[0], s[0]), _same_pads(6, w[1], s[1])]
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        pads = padding
    expected = _reference_pool(np.asarray(x, np.float64), w, s, pads, reduce)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)


def test_tuple_window_pools_the_axes_before_the_channels(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 7, 4))  # two batch axes, one pooled axis
    y = nets.avg_pool({}, x, (3,), 2, "VALID")
    assert y.shape == (2, 3, 3, 4)
    expected = _reference_pool(np.asarray(x, np.float64), (3,), (2,), [(0, 0)], np.mean)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)
    assert nets.max_pool({}, x[0, 0], (2,), 2).shape == (4, 4)  # no batch axis at all


def test_avg_pool_same_divides_by_real_elements() -> None:
    x = jnp.ones((1, 4, 4, 2))
    np.testing.assert_allclose(np.asarray(nets.avg_pool({}, x, 3)), 1.0)


def test_max_pool_of_negative_values_ignores_padding() -> None:
    x = -jnp.ones((1, 3, 3, 1))
    np.testing.assert_allclose(np.asarray(nets.max_pool({}, x, 3)), -1.0)


def test_pools_have_no_params(key: jax.Array) -> None:
    x = jnp.ones((2, 4, 4, 3))
    assert trace(nets.max_pool(_, _, 2, 2), key, x) == {}
    assert trace(nets.global_avg_pool, key, x) == {}


def test_global_pools(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 4, 5))
    np.testing.assert_allclose(np.asarray(nets.global_avg_pool({}, x)), np.asarray(x).mean((1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(nets.global_max_pool({}, x)), np.asarray(x).max((1, 2)))
    assert nets.global_avg_pool({}, x, True).shape == (2, 1, 1, 5)
    assert nets.global_max_pool({}, jnp.ones((2, 3, 4, 5, 6))).shape == (2, 6)


def test_bad_inputs() -> None:
    x = jnp.ones((2, 4, 4, 3))
    with pytest.raises(TypeError, match=r"padding"):  # checking on: the annotation rejects it
        nets.max_pool({}, x, 2, 1, "same")
    with checking(False):
        with pytest.raises(ValueError, match=r"max_pool: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints, got 'same'"):
            nets.max_pool({}, x, 2, 1, "same")
        with pytest.raises(ValueError, match=r"global_avg_pool: `x` must have at least 3 axes \(batch, \*spatial, channels\), got shape \(4, 3\)"):
            nets.global_avg_pool({}, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"avg_pool: an int `window_shape` pools every axis between the batch axis and the channels, so `x` must have at least 3 axes"):
        nets.avg_pool({}, jnp.ones((4, 3)), 2)
    with pytest.raises(ValueError, match=r"max_pool: a window of 3 axes needs `x` with at least 4 axes \(\.\.\., \*pooled, channels\), got shape \(4, 4, 3\)"):
        nets.max_pool({}, jnp.ones((4, 4, 3)), (2, 2, 2))
    with pytest.raises(ValueError, match=r"max_pool: `stride` must be a positive int or 2 positive ints \(one per pooled axis\), got \(1, 1, 1\)"):
        nets.max_pool({}, x, (2, 2), (1, 1, 1))
    with pytest.raises(ValueError, match=r"avg_pool: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints"):
        nets.avg_pool({}, x, 2, 1, [(1, 1)])
    with pytest.raises(ValueError, match=r"max_pool: `window_shape` must be positive ints, got \(0, 2\)"):
        nets.max_pool({}, x, (0, 2))


# ------------------------------------------------------------------ Haiku's full-rank form


@pytest.mark.parametrize("net", [nets.max_pool, nets.avg_pool])
@pytest.mark.parametrize(
    "shape,full,spatial",
    [
        # (x shape, (window, stride, padding) in the full-rank form, the same in the spatial form)
        ((2, 5, 6, 3), ((1, 2, 2, 1), (1, 2, 2, 1), "VALID"), ((2, 2), (2, 2), "VALID")),
        ((2, 5, 6, 3), ((1, 3, 2, 1), (1, 2, 1, 1), "SAME"), ((3, 2), (2, 1), "SAME")),
        ((2, 5, 6, 3), ((1, 3, 3, 1), 2, [(1, 1), (0, 1)]), ((3, 3), 2, [(1, 1), (0, 1)])),
        ((2, 5, 6, 3), (2, (1, 2, 2, 1), "SAME"), (2, (2, 2), "SAME")),
        ((2, 7, 3), ((1, 3, 1), (1, 2, 1), "VALID"), ((3,), (2,), "VALID")),
        ((2, 7, 3), ((1, 3, 1), (1, 2, 1), "SAME"), ((3,), (2,), "SAME")),
    ],
)
def test_full_rank_window_equals_the_spatial_form(key: jax.Array, net: Any, shape: Any, full: Any, spatial: Any) -> None:
    x = jax.random.normal(key, shape)
    y = net({}, x, *full)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(net({}, x, *spatial)))
    assert y.shape[0] == shape[0] and y.shape[-1] == shape[-1]


def test_full_rank_window_under_jit_and_trace(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 4, 4, 3))
    pool = nets.max_pool(_, _, (1, 2, 2, 1), (1, 2, 2, 1))
    assert trace(pool, key, x) == {}
    np.testing.assert_array_equal(np.asarray(jax.jit(pool)({}, x)), np.asarray(nets.max_pool({}, x, 2, 2)))


def test_full_rank_window_never_pools_batch_or_channels() -> None:
    x = jnp.ones((2, 4, 4, 3))
    rule = r"with one entry per axis of `x` \(Haiku's full-rank form\) must be 1 on the first \(batch\) axis and on the last \(channels\), which are never pooled"
    with pytest.raises(ValueError, match=r"max_pool: a window of 4 axes needs `x` with at least 5 axes .*; a `window_shape` " + rule + r", got \(2, 2, 2, 1\)"):
        nets.max_pool({}, x, (2, 2, 2, 1))
    with pytest.raises(ValueError, match=r"avg_pool: .*; a `window_shape` " + rule + r", got \(1, 2, 2, 3\)"):
        nets.avg_pool({}, x, (1, 2, 2, 3), (1, 2, 2, 1))
    with pytest.raises(ValueError, match=r"max_pool: `stride` must be a positive int or 2 positive ints \(one per pooled axis\); a `stride` " + rule + r", got \(1, 2, 2, 2\)"):
        nets.max_pool({}, x, (1, 2, 2, 1), (1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"avg_pool: .*; a `window_shape` " + rule + r", got \(2, 2, 1\)"):
        nets.avg_pool({}, jnp.ones((2, 7, 3)), (2, 2, 1))
    with pytest.raises(ValueError, match=r"max_pool: `window_shape` must be positive ints, got \(1, 0, 2, 1\)"):
        nets.max_pool({}, x, (1, 0, 2, 1))
