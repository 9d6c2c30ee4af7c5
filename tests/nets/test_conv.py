"""Convolutions against explicit numpy loops on tiny shapes; ``conv``, ``conv_transpose`` and
their per-rank aliases."""

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


def _reference_conv(
    x: NDArray,
    w: NDArray,
    stride: tuple[int, ...],
    pads: list[tuple[int, int]],
    dilation: tuple[int, ...],
    groups: int = 1,
) -> NDArray:
    """Cross-correlation by loops. x (N, *spatial, C), w (*kernel, C // groups, O)."""
    n = w.ndim - 2
    kernel = w.shape[:n]
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    out_sizes = [(xp.shape[1 + i] - ((kernel[i] - 1) * dilation[i] + 1)) // stride[i] + 1 for i in range(n)]
    c_group, o_group = x.shape[-1] // groups, w.shape[-1] // groups
    y = np.zeros((x.shape[0], *out_sizes, w.shape[-1]))
    for pos in itertools.product(*(range(s) for s in out_sizes)):
        for k in itertools.product(*(range(s) for s in kernel)):
            index = tuple(pos[i] * stride[i] + k[i] * dilation[i] for i in range(n))
            patch = xp[(slice(None), *index)]  # type: ignore[arg-type]  # numpy's stubs reject a built index tuple
            for g in range(groups):
                out = (slice(None), *pos, slice(g * o_group, (g + 1) * o_group))
                y[out] += patch[:, g * c_group : (g + 1) * c_group] @ w[k][:, g * o_group : (g + 1) * o_group]  # type: ignore[index]  # a built index tuple
    return y


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _as_np(a: Any) -> NDArray:
    return np.asarray(a, np.float64)


def _with_bias(params: Any, key: jax.Array) -> Any:
    return {**params, "bias": jax.random.normal(key, params["bias"].shape)}


@pytest.mark.parametrize("stride,dilation,padding", [(1, 1, "SAME"), (2, 1, "VALID"), (1, 2, "SAME"), (2, 2, [(2, 1)]), (1, 2, "CAUSAL"), (3, 1, "SAME")])
def test_conv_1d_matches_loops(key: jax.Array, stride: int, dilation: int, padding: Any) -> None:
    x = jax.random.normal(key, (2, 9, 3))
    params = _with_bias(trace(nets.conv_1d(_, _, 4, 3, stride, padding, dilation), key, x), key)
    assert jax.tree.map(jnp.shape, params) == {"bias": (4,), "weights": (3, 3, 4)}
    y = nets.conv_1d(params, x, 4, 3, stride, padding, dilation)
    if padding == "SAME":
        pads = [_same_pads(9, 3, stride, dilation)]
    elif padding == "VALID":
        pads = [(0, 0)]
    elif padding == "CAUSAL":
        pads = [(2 * dilation, 0)]
    else:
        pads = padding
    expected = _reference_conv(_as_np(x), _as_np(params["weights"]), (stride,), pads, (dilation,)) + _as_np(params["bias"])
    np.testing.assert_allclose(_as_np(y), expected, rtol=1e-5, atol=1e-5)


def test_conv_1d_causal_output_ignores_the_future(key: jax.Array) -> None:
    x = jax.random.normal(key, (7, 2))
    params = trace(nets.conv_1d(_, _, 3, 3, 1, "CAUSAL", 2), key, x)
    y = nets.conv_1d(params, x, 3, 3, 1, "CAUSAL", 2)
    y_changed = nets.conv_1d(params, x.at[4:].set(100.0), 3, 3, 1, "CAUSAL", 2)
    assert y.shape == (7, 3)
    np.testing.assert_allclose(_as_np(y[:4]), _as_np(y_changed[:4]), rtol=1e-6)
    assert not np.allclose(_as_np(y[4:]), _as_np(y_changed[4:]))


@pytest.mark.parametrize("stride,dilation,padding,groups", [((1, 2), 1, "SAME", 1), (2, (2, 1), "VALID", 1), (1, 1, [(1, 0), (0, 2)], 1), (1, 1, "SAME", 2), (2, 1, "SAME", 4)])
def test_conv_2d_matches_loops(key: jax.Array, stride: Any, dilation: Any, padding: Any, groups: int) -> None:
    x = jax.random.normal(key, (2, 5, 6, 4))
    kernel = (3, 2)
    net = nets.conv_2d(_, _, 8, kernel, stride, padding, dilation, feature_group_count=groups)
    params = _with_bias(trace(net, key, x), key)
    assert params["weights"].shape == (3, 2, 4 // groups, 8)
    y = net(params, x)
    s = (stride, stride) if isinstance(stride, int) else stride
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "SAME":
        pads = [_same_pads(5, 3, s[0], d[0]), _same_pads(6, 2, s[1], d[1])]
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        pads = padding
    expected = _reference_conv(_as_np(x), _as_np(params["weights"]), s, pads, d, groups) + _as_np(params["bias"])
    np.testing.assert_allclose(_as_np(y), expected, rtol=1e-5, atol=1e-5)


def test_conv_3d_matches_loops(key: jax.Array) -> None:
    x = jax.random.normal(key, (1, 4, 3, 5, 2))
    params = _with_bias(trace(nets.conv_3d(_, _, 3, (2, 2, 3), (1, 1, 2), "VALID"), key, x), key)
    assert params["weights"].shape == (2, 2, 3, 2, 3)
    y = nets.conv_3d(params, x, 3, (2, 2, 3), (1, 1, 2), "VALID")
    expected = _reference_conv(_as_np(x), _as_np(params["weights"]), (1, 1, 2), [(0, 0)] * 3, (1, 1, 1)) + _as_np(params["bias"])
    np.testing.assert_allclose(_as_np(y), expected, rtol=1e-5, atol=1e-5)


def test_conv_any_number_of_batch_axes(key: jax.Array) -> None:
    x = jax.random.normal(key, (2, 3, 5, 5, 2))
    params = trace(nets.conv_2d(_, _, 4, 3), key, x)
    y = nets.conv_2d(params, x, 4, 3)
    assert y.shape == (2, 3, 5, 5, 4)
    np.testing.assert_allclose(_as_np(y[1, 2]), _as_np(nets.conv_2d(params, x[1, 2], 4, 3)), rtol=1e-5, atol=1e-5)
    assert nets.conv_2d(params, x[0, 0], 4, 3).shape == (5, 5, 4)


def test_conv_without_bias(key: jax.Array) -> None:
    x = jax.random.normal(key, (6, 2))
    params: Any = trace(nets.conv_1d(_, _, 3, 2, bias_initializer=None), key, x)
    assert list(params) == ["weights"]
    assert nets.conv_1d(params, x, 3, 2, bias_initializer=None).shape == (6, 3)


def _reference_conv_transpose_valid(x: NDArray, w: NDArray, stride: tuple[int, ...], dilation: tuple[int, ...]) -> NDArray:
    """The scatter definition: x[i] adds x[i] @ w[j] at i * s + (k - 1 - j) * d (unflipped kernel)."""
    n = w.ndim - 2
    kernel = w.shape[:n]
    spatial = x.shape[1:-1]
    out = [(spatial[i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 for i in range(n)]
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    for pos in itertools.product(*(range(s) for s in spatial)):
        for k in itertools.product(*(range(s) for s in kernel)):
            target = tuple(pos[i] * stride[i] + (kernel[i] - 1 - k[i]) * dilation[i] for i in range(n))
            y[(slice(None), *target)] += x[(slice(None), *pos)] @ w[k]  # type: ignore[arg-type]  # numpy's stubs reject a built index tuple
    return y


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (3, 2)])
def test_conv_transpose_1d_valid_matches_scatter(key: jax.Array, stride: int, dilation: int) -> None:
    x = jax.random.normal(key, (2, 4, 3))
    net = nets.conv_transpose_1d(_, _, 5, 3, stride, "VALID", dilation)
    params = _with_bias(trace(net, key, x), key)
    assert jax.tree.map(jnp.shape, params) == {"bias": (5,), "weights": (3, 3, 5)}
    expected = _reference_conv_transpose_valid(_as_np(x), _as_np(params["weights"]), (stride,), (dilation,))
    np.testing.assert_allclose(_as_np(net(params, x)), expected + _as_np(params["bias"]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,stride", [(3, 2), (4, 2), (2, 3), (3, 1)])
def test_conv_transpose_1d_same_is_the_scatter_cropped(key: jax.Array, kernel: int, stride: int) -> None:
    """SAME keeps ``width * stride`` outputs of the full scatter, placed as lax (and Flax) do."""
    x = jax.random.normal(key, (1, 5, 2))
    net = nets.conv_transpose_1d(_, _, 3, kernel, stride, bias_initializer=None)
    params: Any = trace(net, key, x)
    full = _reference_conv_transpose_valid(_as_np(x), _as_np(params["weights"]), (stride,), (1,))
    pad_len = kernel + stride - 2
    pad_low = kernel - 1 if stride > kernel - 1 else math.ceil(pad_len / 2)
    offset = kernel - 1 - pad_low
    padded = np.pad(full, [(0, 0), (0, 5 * stride), (0, 0)])  # the scatter is zero beyond its end
    expected = padded[:, offset : offset + 5 * stride]
    y = net(params, x)
    assert y.shape == (1, 5 * stride, 3)
    np.testing.assert_allclose(_as_np(y), expected, rtol=1e-5, atol=1e-5)


def test_conv_transpose_2d_valid_matches_scatter_and_same_shape(key: jax.Array) -> None:
    x = jax.random.normal(key, (3, 4, 2))
    net = nets.conv_transpose_2d(_, _, 3, (2, 3), (2, 1), "VALID")
    params: Any = trace(net, key, x)
    expected = _reference_conv_transpose_valid(_as_np(x)[None], _as_np(params["weights"]), (2, 1), (1, 1))[0]
    np.testing.assert_allclose(_as_np(net(params, x)), expected, rtol=1e-5, atol=1e-5)
    same = nets.conv_transpose_2d(_, _, 3, 3, 2)
    assert same(trace(same, key, x), x).shape == (6, 8, 3)


def test_conv_transpose_explicit_padding_matches_lax(key: jax.Array) -> None:
    x = jax.random.normal(key, (1, 2, 3, 2, 2))
    net = nets.conv_transpose_3d(_, _, 2, 2, 2, [(1, 1), (0, 1), (1, 0)], bias_initializer=None)
    params: Any = trace(net, key, x)
    # lax.conv_transpose without transpose_kernel is a convolution of the stride-dilated input.
    expected = jax.lax.conv_general_dilated(
        x, params["weights"], (1, 1, 1), [(1, 1), (0, 1), (1, 0)], lhs_dilation=(2, 2, 2),
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
    )
    np.testing.assert_allclose(_as_np(net(params, x)), _as_np(expected), rtol=1e-5, atol=1e-5)


def _stated_transpose_size(n: int, kernel: int, stride: int, dilation: int, padding: Any) -> int:
    """The output size the conv_transpose docstrings state, per axis."""
    k = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return n * stride
    if padding == "VALID":
        return (n - 1) * stride + max(k, stride)
    pairs: list[tuple[int, int]] = padding
    (low, high), = pairs
    return (n - 1) * stride + low + high - k + 2


@pytest.mark.parametrize("padding", ["SAME", "VALID", [(0, 0)], [(2, 1)]])
def test_conv_transpose_output_size_is_the_stated_formula(padding: Any) -> None:
    """Over a grid of (width, kernel, stride, dilation), kernels smaller than the stride included."""
    checked = 0
    for width, kernel, stride, dilation in itertools.product((1, 2, 5), (1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3)):
        expected = _stated_transpose_size(width, kernel, stride, dilation, padding)
        if expected < 1:
            continue
        x = jax.ShapeDtypeStruct((2, width, 3), jnp.float32)
        params = {"weights": jax.ShapeDtypeStruct((kernel, 3, 4), jnp.float32), "bias": jax.ShapeDtypeStruct((4,), jnp.float32)}
        out = jax.eval_shape(lambda p, x: nets.conv_transpose_1d(p, x, 4, kernel, stride, padding, dilation), params, x)
        assert out.shape == (2, expected, 4), (width, kernel, stride, dilation)
        checked += 1
    assert checked >= 50  # not vacuous: at least 50 of the 144 combinations have an output


def test_conv_transpose_2d_3d_output_sizes_are_the_stated_formula() -> None:
    sizes, kernels, strides, dilations = (3, 1, 4), (2, 3, 1), (3, 2, 2), (1, 2, 1)  # axis 0: kernel < stride
    paddings: list[Any] = ["SAME", "VALID", [(1, 0), (2, 2), (1, 1)]]
    for padding in paddings:
        for n in (2, 3):
            x = jax.ShapeDtypeStruct((*sizes[:n], 2), jnp.float32)
            params = {"weights": jax.ShapeDtypeStruct((*kernels[:n], 2, 5), jnp.float32), "bias": jax.ShapeDtypeStruct((5,), jnp.float32)}
            net = nets.conv_transpose_2d if n == 2 else nets.conv_transpose_3d
            pad: Any = padding if isinstance(padding, str) else padding[:n]
            out = jax.eval_shape(lambda p, x: net(p, x, 5, kernels[:n], strides[:n], pad, dilations[:n]), params, x)
            expected = tuple(
                _stated_transpose_size(sizes[i], kernels[i], strides[i], dilations[i], pad if isinstance(pad, str) else [pad[i]])
                for i in range(n)
            )
            assert out.shape == (*expected, 5), (n, padding)


@pytest.mark.parametrize("kernel,stride,dilation", [(1, 2, 1), (2, 3, 1), (2, 4, 2)])
def test_conv_transpose_valid_with_a_kernel_smaller_than_the_stride(key: jax.Array, kernel: int, stride: int, dilation: int) -> None:
    """``width * stride`` outputs (as Flax): the scatter, then ``stride - k`` outputs of bias alone."""
    x = jax.random.normal(key, (2, 4, 3))
    net = nets.conv_transpose_1d(_, _, 5, kernel, stride, "VALID", dilation)
    params = _with_bias(trace(net, key, x), key)
    y = _as_np(net(params, x))
    k = (kernel - 1) * dilation + 1
    assert k < stride and y.shape == (2, 4 * stride, 5)
    scatter = _reference_conv_transpose_valid(_as_np(x), _as_np(params["weights"]), (stride,), (dilation,))
    expected = np.pad(scatter, [(0, 0), (0, stride - k), (0, 0)]) + _as_np(params["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_bad_inputs(key: jax.Array) -> None:
    x = jnp.ones((2, 5, 5, 4))
    params: Any = trace(nets.conv_2d(_, _, 8, 3), key, x)
    with pytest.raises(ValueError, match=r"weights.*expected shape \(3, 3, 3, 8\), got \(3, 3, 4, 8\)"):
        nets.conv_2d(params, jnp.ones((2, 5, 5, 3)), 8, 3)
    # With checking on, the annotations reject a padding string that is no option first.
    with pytest.raises(ValueError, match=r"conv: `x` must have at least 3 axes"):
        nets.conv_2d(params, jnp.ones((4,)), 8, 3)
    with pytest.raises(TypeError, match=r"padding"):
        nets.conv_2d(params, x, 8, 3, padding="same")
    with checking(False):
        _bad_inputs_unchecked(params, x)


def _bad_inputs_unchecked(params: Any, x: jax.Array) -> None:
    with pytest.raises(ValueError, match=r"conv: `x` must have at least 3 axes \(\*batch, height, width, channels\), got shape \(4,\)"):
        nets.conv_2d(params, jnp.ones((4,)), 8, 3)
    with pytest.raises(ValueError, match=r"conv: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints, got 'same'"):
        nets.conv_2d(params, x, 8, 3, padding="same")
    with pytest.raises(ValueError, match=r"conv: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints, got 'CAUSAL'"):
        nets.conv_2d(params, x, 8, 3, padding="CAUSAL")
    with pytest.raises(ValueError, match=r"conv: `padding` must be 'SAME', 'VALID' or 2 \(low, high\) pairs of ints"):
        nets.conv_2d(params, x, 8, 3, padding=[(1, 1)])
    with pytest.raises(ValueError, match=r"conv: `kernel_size` must be a positive int or 2 positive ints, got \(3, 3, 3\)"):
        nets.conv_2d(params, x, 8, (3, 3, 3))
    with pytest.raises(ValueError, match=r"conv: `stride` must be a positive int or 2 positive ints, got 0"):
        nets.conv_2d(params, x, 8, 3, 0)
    with pytest.raises(ValueError, match=r"conv: `feature_group_count` must divide both the 4 input channels of `x` and `out_channels` 8, got 3"):
        nets.conv_2d(params, x, 8, 3, feature_group_count=3)
    with pytest.raises(ValueError, match=r"conv_transpose: `padding` must be 'SAME', 'VALID' or"):
        nets.conv_transpose_1d({}, jnp.ones((5, 2)), 3, 2, padding="CAUSAL")


def _conv_case(rank: int, transpose: bool) -> tuple[Any, Any, tuple[int, ...]]:
    alias = {
        (1, False): nets.conv_1d, (2, False): nets.conv_2d, (3, False): nets.conv_3d,
        (1, True): nets.conv_transpose_1d, (2, True): nets.conv_transpose_2d, (3, True): nets.conv_transpose_3d,
    }[rank, transpose]
    return alias, (2,) * rank, (2, *(3,) * rank, 2)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_and_conv_transpose_are_the_aliases_with_the_rank_from_the_kernel(key: jax.Array, rank: int, transpose: bool) -> None:
    alias, kernel, shape = _conv_case(rank, transpose)
    net = nets.conv_transpose if transpose else nets.conv
    x = jax.random.normal(key, shape)
    params = _with_bias(trace(alias(_, _, 4, 2, 2), key, x), key)
    expected = _as_np(alias(params, x, 4, 2, 2))
    np.testing.assert_array_equal(_as_np(net(params, x, 4, kernel, 2)), expected)  # the rank from the kernel
    assert jax.tree.map(jnp.shape, trace(net(_, _, 4, kernel, 2), key, x)) == jax.tree.map(jnp.shape, params)


def test_the_aliases_have_their_own_name_docstring_and_signature() -> None:
    import inspect

    for name in ("conv", "conv_1d", "conv_2d", "conv_3d", "conv_transpose", "conv_transpose_1d", "conv_transpose_2d", "conv_transpose_3d"):
        alias = getattr(nets, name)
        assert alias.__name__ == name
        if name[-1] == "d":
            assert (alias.__doc__ or "").startswith(f"`{name[:-3]}` over {name[-2]} ax")
        assert "_conv" not in (alias.__doc__ or "")
        parameters = list(inspect.signature(alias).parameters)
        assert parameters[:7] == ["params", "x", "out_channels", "kernel_size", "stride", "padding", "dilation"]
        assert not {"num_spatial_dims", "transpose", "precision"} & set(parameters)
        # at most a dozen: conv keeps feature_group_count, the transposed ones cannot group
        assert len(parameters) == (11 if "transpose" in name else 12), (name, parameters)


def test_conv_rank_errors(key: jax.Array) -> None:
    x = jnp.ones((2, 5, 5, 4))
    with checking(False):
        with pytest.raises(ValueError, match=r"conv: an int `kernel_size` \(3\) needs a rank: give one int per spatial axis, e.g. `kernel_size=\(3, 3\)`, or use conv_1d, conv_2d or conv_3d"):
            trace(nets.conv(_, _, 8, 3), key, x)
        with pytest.raises(ValueError, match=r"conv_transpose: an int `kernel_size` \(3\) needs a rank: .* or use conv_transpose_1d, conv_transpose_2d or conv_transpose_3d"):
            trace(nets.conv_transpose(_, _, 8, 3), key, x)
        with pytest.raises(ValueError, match=r"conv: `num_spatial_dims` must be 1, 2 or 3, got 4"):
            trace(nets.conv(_, _, 8, (3, 3, 3, 3)), key, jnp.ones((1, 4, 4, 4, 4, 1)))
        with pytest.raises(ValueError, match=r"conv: `kernel_size` must be a positive int or 2 positive ints, got \(3, 3, 3\)"):
            trace(nets.conv_2d(_, _, 8, (3, 3, 3)), key, x)
