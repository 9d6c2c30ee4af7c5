"""Attention nets against independent references: a float64 numpy formula and jax.nn.dot_product_attention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, checking

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _jit(f: F) -> F:
    return cast(F, jax.jit(f))  # pyright: ignore[reportUnknownMemberType]  # jax types jit as partially unknown


def _jacobian(f: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """The Jacobian of ``f`` at ``x``, computed under ``jit`` (one program, not one per operation)."""
    return cast(jax.Array, jax.jit(jax.jacobian(f))(x))  # pyright: ignore[reportUnknownMemberType]  # partially unknown in jax's types


def _array(value: Any) -> jax.Array:
    """A jax array of a numpy value (``jnp.broadcast_to`` is typed; ``jnp.asarray`` is not)."""
    value = np.asarray(value)
    return jnp.broadcast_to(value, value.shape)


def _ones(*shape: int, dtype: Any = jnp.float32) -> jax.Array:
    return jax.lax.full(shape, 1, dtype)


def _normal(key: jax.Array, i: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(jax.random.fold_in(key, i), shape)


def _randomize(params: T, key: jax.Array) -> T:
    """Every leaf random (biases too), so the references see non-trivial weights."""
    keys = iter(jax.random.split(key, len(jax.tree.leaves(params))))

    def leaf(a: jax.Array) -> jax.Array:
        return 0.3 * jax.random.normal(next(keys), a.shape)

    result: T = jax.tree.map(leaf, params)
    return result


def _np_linear(p: Any, x: np.ndarray) -> np.ndarray:
    y = x @ np.asarray(p["weights"], np.float64)
    return y + np.asarray(p["bias"], np.float64) if "bias" in p else y


def _np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    out: np.ndarray = e / e.sum(-1, keepdims=True)
    return out


def _np_mha(
    params: Any, q: Any, k: Any, v: Any, num_heads: int, num_kv_heads: int, mask: np.ndarray | None
) -> np.ndarray:
    """Vaswani et al. with grouped heads, written out in float64 numpy, one head at a time."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    d = q.shape[-1]
    hd = d // num_heads
    qp, kp, vp = _np_linear(params["query"], q), _np_linear(params["key"], k), _np_linear(params["value"], v)
    heads: list[np.ndarray] = []
    for h in range(num_heads):
        g = h // (num_heads // num_kv_heads)
        qh = qp[..., h * hd : (h + 1) * hd]
        kh = kp[..., g * hd : (g + 1) * hd]
        vh = vp[..., g * hd : (g + 1) * hd]
        logits = qh @ np.swapaxes(kh, -1, -2) / np.sqrt(hd)
        if mask is not None:
            logits = np.where(mask[..., h, :, :], logits, -1e30)
        heads.append(_np_softmax(logits) @ vh)
    return _np_linear(params["out"], np.concatenate(heads, axis=-1))


def _close(a: Any, b: Any, tol: float = 1e-4) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_multi_head_attention_matches_numpy(key: jax.Array, num_heads: int, num_kv_heads: int) -> None:
    q, k, v = _normal(key, 1, (2, 5, 8)), _normal(key, 2, (2, 7, 6)), _normal(key, 3, (2, 7, 3))
    net = nets.multi_head_attention(_, _, _, _, nets.attention(num_heads, num_kv_heads=num_kv_heads))
    params = _randomize(trace(net, key, q, k, v), jax.random.fold_in(key, 9))
    validate(params["key"]["weights"], (6, num_kv_heads * 2))  # raises on another shape
    _close(net(params, q, k, v), _np_mha(params, q, k, v, num_heads, num_kv_heads, None))


def test_masks_full_and_padding_match_numpy(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 6, 8))
    params = _randomize(trace(nets.multi_head_self_attention(_, _, 2), key, x), key)
    full = np.asarray(_normal(key, 2, (2, 2, 6, 6))) > 0
    full[..., 0] = True  # every query sees at least one key
    _close(nets.multi_head_self_attention(params, x, 2, _array(full)), _np_mha(params, x, x, x, 2, 2, full))
    padding = np.array([[True] * 6, [True] * 4 + [False] * 2])
    expanded = np.broadcast_to(padding[:, None, None, :], (2, 2, 6, 6))
    y = nets.multi_head_self_attention(params, x, 2, padding_mask=_array(padding))
    _close(y, _np_mha(params, x, x, x, 2, 2, expanded))
    causal = np.tril(np.ones((6, 6), bool))
    _close(nets.multi_head_self_attention(params, x, 2, is_causal=True), _np_mha(params, x, x, x, 2, 2, np.broadcast_to(causal, (2, 2, 6, 6))))
    # a (q_len, kv_len) mask broadcasts over batch and heads, and equals is_causal
    _close(nets.multi_head_self_attention(params, x, 2, _array(causal)), nets.multi_head_self_attention(params, x, 2, is_causal=True))


def test_padded_keys_do_not_matter(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 6, 8))
    params = trace(nets.multi_head_self_attention(_, _, 2), key, x)
    padding = _array([[True] * 6, [True] * 4 + [False] * 2])
    changed = x.at[1, 4:].set(100.0)
    y, y_changed = (nets.multi_head_self_attention(params, a, 2, padding_mask=padding) for a in (x, changed))
    _close(y[1, :4], y_changed[1, :4], 1e-5)


@pytest.mark.parametrize("num_kv_heads,causal", [(4, False), (2, True), (1, True)])
def test_dot_product_attention_matches_jax_nn(key: jax.Array, num_kv_heads: int, causal: bool) -> None:
    q, k, v = _normal(key, 1, (2, 5, 4, 8)), _normal(key, 2, (2, 5, num_kv_heads, 8)), _normal(key, 3, (2, 5, num_kv_heads, 8))
    mask = _normal(key, 4, (2, 1, 5, 5)) > -0.5
    mask = mask.at[..., 0].set(True)
    ours = nets.dot_product_attention(q, k, v, mask, causal)
    reference = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal, implementation="xla")
    _close(ours, reference, 1e-5)


def _np_attention(q: Any, k: Any, v: Any, mask: np.ndarray) -> np.ndarray:
    """softmax(q k^T / sqrt(D)) v with grouped heads, float64 numpy; q (B, T, N, D), mask (B, N, T, S)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    groups = q.shape[-2] // k.shape[-2]
    k, v = np.repeat(k, groups, axis=-2), np.repeat(v, groups, axis=-2)
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    out: np.ndarray = np.einsum("bnts,bsnh->btnh", _np_softmax(np.where(mask, logits, -1e30)), v)
    return out


@pytest.mark.parametrize("value_dim", [3, 8, 12])
def test_dot_product_attention_value_head_size_and_causal_aligned_at_the_end(key: jax.Array, value_dim: int) -> None:
    q, k, v = _normal(key, 1, (2, 3, 4, 8)), _normal(key, 2, (2, 5, 2, 8)), _normal(key, 3, (2, 5, 2, value_dim))
    padding = np.asarray(_normal(key, 4, (2, 5))) > -0.5
    padding[:, 0] = True
    causal = np.arange(5)[None, :] <= np.arange(3)[:, None] + 2  # query i is position i + 2
    mask = np.logical_and(padding[:, None, None, :], causal)
    ours = nets.dot_product_attention(q, k, v, None, True, padding_mask=_array(padding))
    assert ours.shape == (2, 3, 4, value_dim)
    _close(ours, _np_attention(q, k, v, np.broadcast_to(mask, (2, 4, 3, 5))), 1e-5)


def test_single_head_is_multi_head_with_one_head(key: jax.Array) -> None:
    q, kv = _normal(key, 1, (3, 4, 8)), _normal(key, 2, (3, 6, 5))
    params = _randomize(trace(nets.single_head_attention, key, q, kv, kv), key)
    y = nets.single_head_attention(params, q, kv, kv)
    _close(y, nets.multi_head_attention(params, q, kv, kv, 1))
    _close(y, _np_mha(params, q, kv, kv, 1, 1, None))


def test_readme_decoder_call_64_heads_of_4(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 64, 256))
    def decoder_layer(params: Params, x: jax.Array) -> jax.Array:
        return nets.multi_head_self_attention(params["mha"][0], x, 64)

    params = trace(decoder_layer, key, x)
    y = nets.multi_head_self_attention(params["mha"][0], x, 64)
    assert y.shape == (2, 64, 256)
    validate(params["mha"][0]["out"]["weights"], (256, 256))  # raises on another shape


def test_causal_output_at_t_is_independent_of_later_inputs(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 7, 8))
    params = trace(nets.multi_head_self_attention(_, _, 4), key, x)
    y = nets.multi_head_self_attention(params, x, 4, is_causal=True)

    @_jit  # one program for the seven calls below (same shapes: inputs after t replaced by a mask)
    def causal(x: jax.Array) -> jax.Array:
        return nets.multi_head_self_attention(params, x, 4, is_causal=True)

    later = jax.lax.iota(jnp.int32, 7)[None, :, None]
    for t in range(7):
        changed = jnp.where(later > t, _normal(key, 10 + t, x.shape), x)
        y_changed = causal(changed)
        _close(y[:, : t + 1], y_changed[:, : t + 1], 1e-6)
        if t < 6:
            assert not np.allclose(np.asarray(y[:, t + 1 :]), np.asarray(y_changed[:, t + 1 :]))
    # and the Jacobian of output t with respect to inputs after t is zero
    jac = _jacobian(causal, x[0])
    for t in range(6):
        assert float(jnp.max(jnp.abs(jac[t, :, t + 1 :]))) == 0.0


@pytest.mark.parametrize("num_kv_heads", [None, 2, 1])
def test_kv_cache_token_by_token_equals_full_causal_attention(key: jax.Array, num_kv_heads: int | None) -> None:
    x = _normal(key, 1, (2, 6, 8))
    att = nets.attention(4, num_kv_heads=num_kv_heads, causal=True)
    params = _randomize(trace(nets.multi_head_self_attention(_, _, att), key, x), key)
    full = nets.multi_head_self_attention(params, x, att)
    plain = nets.attention(4, num_kv_heads=num_kv_heads)
    _close(full, nets.multi_head_self_attention(params, x, plain, is_causal=True))  # causal value == is_causal
    cache = nets.init_cache(x, 8, att)
    step = _jit(nets.step)  # one program for the six steps
    outputs: list[jax.Array] = []
    for t in range(6):
        y_t, cache = step(params, cache, x[:, t : t + 1])
        outputs.append(y_t)
    _close(jnp.concatenate(outputs, axis=1), full, 1e-5)
    assert int(cache.length) == 6
    assert cache.keys[0].shape == (2, 8, num_kv_heads or 4, 2)


def test_kv_cache_prefill_then_jitted_scan_decoding(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 7, 8))
    att = nets.attention(2, causal=True)
    params = trace(nets.multi_head_self_attention(_, _, att), key, x)
    full = nets.multi_head_self_attention(params, x, att)
    cache = nets.init_cache(x, 7, att)
    prefix, cache = nets.step(params, cache, x[:, :3])

    @_jit
    def decode(cache: nets.Cache, rest: jax.Array) -> tuple[nets.Cache, jax.Array]:
        def body(cache: nets.Cache, x_t: jax.Array) -> tuple[nets.Cache, jax.Array]:
            y_t, cache = nets.step(params, cache, x_t[:, None])
            return cache, y_t[:, 0]

        return jax.lax.scan(body, cache, jnp.moveaxis(rest, 1, 0))

    cache, rest = decode(cache, x[:, 3:])
    _close(jnp.concatenate([prefix, jnp.moveaxis(rest, 0, 1)], axis=1), full, 1e-5)


def test_kv_cache_step_takes_a_padding_mask_over_the_cache(key: jax.Array) -> None:
    x = _normal(key, 1, (1, 4, 8))
    att = nets.attention(2, causal=True)
    params = trace(nets.multi_head_self_attention(_, _, att), key, x)
    keep = _array([[False, True, True, True]])  # the first position is padding
    full = nets.multi_head_self_attention(params, x, att, padding_mask=keep)
    cache = nets.init_cache(x, 4, att)
    outputs: list[jax.Array] = []
    for t in range(4):
        y_t, cache = nets.step(params, cache, x[:, t : t + 1], padding_mask=keep)
        outputs.append(y_t)
    _close(jnp.concatenate(outputs, axis=1)[:, 1:], full[:, 1:], 1e-5)


def test_dtype_and_param_dtype(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    net = nets.multi_head_self_attention(_, _, nets.attention(2, projections=nets.projections(param_dtype=jnp.bfloat16)))
    params = trace(net, key, x)
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    assert net(params, x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    bf16 = nets.projections(dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    y = nets.multi_head_self_attention(params, x, nets.attention(2, projections=bf16))
    assert y.dtype == jnp.bfloat16


# ------------------------------------------------------------------------------ bad input


def test_num_heads_must_divide_model_size(key: jax.Array) -> None:
    x = _ones(2, 5, 10)
    with pytest.raises(ValueError, match=r"`num_heads` \(4\) must divide the model size .* 10"):
        trace(nets.multi_head_self_attention(_, _, 4), key, x)


def test_num_kv_heads_must_divide_num_heads() -> None:
    with pytest.raises(ValueError, match=r"attention: `num_kv_heads` \(4\) must divide `num_heads` \(6\)"):
        nets.attention(6, num_kv_heads=4)


def test_mask_of_the_wrong_shape(key: jax.Array) -> None:
    x = _ones(2, 5, 8)
    params = trace(nets.multi_head_self_attention(_, _, 2), key, x)
    with pytest.raises(ValueError, match=r"`mask` must broadcast \(right-aligned\) to .* = \(2, 2, 5, 5\), got shape \(3, 5\)"):
        nets.multi_head_self_attention(params, x, 2, _ones(3, 5, dtype=bool))
    with pytest.raises(ValueError, match=r"`mask` must broadcast .* got shape \(2, 1, 4, 5\)"):
        nets.multi_head_self_attention(params, x, 2, _ones(2, 1, 4, 5, dtype=bool))
    with checking(False), pytest.raises(TypeError, match=r"`mask` must be a boolean array"):
        nets.multi_head_self_attention(params, x, 2, _ones(2, 5))


def test_wrong_rank_names_the_argument(key: jax.Array) -> None:
    x = _ones(2, 5, 8)
    params = trace(nets.multi_head_self_attention(_, _, 2), key, x)
    with pytest.raises((ValueError, TypeError), match=r"parameter 'x'|`x`"):  # run-time checking
        nets.multi_head_self_attention(params, _ones(8), 2)
    with checking(False), pytest.raises(ValueError, match=r"multi_head_self_attention: `x` must have at least 2 axes"):
        nets.multi_head_self_attention(params, _ones(8), 2)
    with checking(False), pytest.raises(ValueError, match=r"dot_product_attention: `q` must have at least 3 axes"):
        nets.dot_product_attention(_ones(5, 8), _ones(5, 8), _ones(5, 8))


def test_q_k_feature_mismatch(key: jax.Array) -> None:
    q, k = _ones(2, 5, 4, 8), _ones(2, 7, 2, 6)
    with pytest.raises(TypeError, match="parameter 'k'"):  # run-time checking names the dims
        nets.dot_product_attention(q, k, k)
    with checking(False), pytest.raises(ValueError, match=r"`q` and `k` must have the same head size"):
        nets.dot_product_attention(q, k, k)
    params = trace(nets.multi_head_attention(_, _, _, _, 2), key, _ones(2, 5, 8), _ones(2, 7, 6), _ones(2, 7, 6))
    with checking(False), pytest.raises(ValueError, match=r"`k` and `v` must agree"):
        nets.multi_head_attention(params, _ones(2, 5, 8), _ones(2, 7, 6), _ones(2, 6, 6), 2)
    # both nets check q, k and v alike: k and v agree but on the last axis, q and k on the batch axes
    with checking(False), pytest.raises(ValueError, match=r"^dot_product_attention: `k` and `v` must agree on every axis but the last, got k \(2, 7, 2, 6\) and v \(2, 6, 2, 6\)$"):
        nets.dot_product_attention(_ones(2, 5, 4, 6), k, _ones(2, 6, 2, 6))
    with checking(False), pytest.raises(ValueError, match=r"^dot_product_attention: `q` and `k` must have the same batch axes, got q \(3, 5, 4, 6\) and k \(2, 7, 2, 6\)$"):
        nets.dot_product_attention(_ones(3, 5, 4, 6), k, k)
    with checking(False), pytest.raises(ValueError, match=r"^multi_head_attention: `q` and `k` must have the same batch axes, got q \(3, 5, 8\) and k \(2, 7, 6\)$"):
        nets.multi_head_attention(params, _ones(3, 5, 8), _ones(2, 7, 6), _ones(2, 7, 6), 2)
    with checking(False), pytest.raises(ValueError, match=r"^multi_head_attention: `v` must have at least 2 axes"):
        nets.multi_head_attention(params, _ones(2, 5, 8), _ones(2, 7, 6), _ones(6), 2)


def test_cache_that_does_not_fit(key: jax.Array) -> None:
    x = _ones(2, 1, 8)
    att = nets.attention(2, causal=True)
    params = trace(nets.multi_head_self_attention(_, _, att), key, x)
    cache = nets.init_cache(_ones(3, 1, 8), 8, att)  # a batch of 3, the step's is 2
    with pytest.raises(ValueError, match=r"step: the cache's keys \(3, 8, 2, 4\) do not fit `x` \(2, 1, 8\): expected \(2, 8, 2, 4\)"):
        nets.step(params, cache, x)


# ------------------------------------------------------------- one reading of a mask at any batch size


def _mask_forms(batch: int, heads: int, q_len: int, kv_len: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Every documented `mask` shape, random with at least one key per query."""
    rng = np.random.default_rng(seed)
    shapes = [(q_len, kv_len), (heads, q_len, kv_len), (1, q_len, kv_len), (batch, 1, q_len, kv_len), (batch, heads, q_len, kv_len), (1, 1, 1, kv_len)]
    forms: list[tuple[str, np.ndarray]] = []
    for shape in shapes:
        m = rng.random(shape) > 0.4
        m[..., 0] = True
        forms.append((str(shape), m))
    return forms


@pytest.mark.parametrize("batch", [4, 2, 5])  # q_len is 4: equal to and different from the batch size
def test_every_mask_form_is_read_right_aligned_at_any_batch_size(key: jax.Array, batch: int) -> None:
    heads, q_len, kv_len = 2, 4, 6
    q, kv = _normal(key, 1, (batch, q_len, 8)), _normal(key, 2, (batch, kv_len, 8))
    params = _randomize(trace(nets.multi_head_attention(_, _, _, _, heads), key, q, kv, kv), key)
    for name, m in _mask_forms(batch, heads, q_len, kv_len, batch):
        expected = _np_mha(params, q, kv, kv, heads, heads, np.broadcast_to(m, (batch, heads, q_len, kv_len)))
        try:
            _close(nets.multi_head_attention(params, q, kv, kv, heads, _array(m)), expected)
        except AssertionError as error:
            raise AssertionError(f"mask of shape {name} at batch {batch}") from error
    padding = np.random.default_rng(0).random((batch, kv_len)) > 0.3
    padding[:, 0] = True
    expected = _np_mha(params, q, kv, kv, heads, heads, np.broadcast_to(padding[:, None, None, :], (batch, heads, q_len, kv_len)))
    _close(nets.multi_head_attention(params, q, kv, kv, heads, padding_mask=_array(padding)), expected)
    shared = padding[0]  # (kv_len,): one padding for every example
    expected = _np_mha(params, q, kv, kv, heads, heads, np.broadcast_to(shared, (batch, heads, q_len, kv_len)))
    _close(nets.multi_head_attention(params, q, kv, kv, heads, padding_mask=_array(shared)), expected)
    # mask and padding_mask together: both apply
    m = _mask_forms(batch, heads, q_len, kv_len, 7)[0][1]  # (q_len, kv_len)
    both = np.logical_and(np.broadcast_to(m, (batch, heads, q_len, kv_len)), padding[:, None, None, :])
    expected = _np_mha(params, q, kv, kv, heads, heads, both)
    _close(nets.multi_head_attention(params, q, kv, kv, heads, _array(m), padding_mask=_array(padding)), expected)


@pytest.mark.parametrize("batch", [2, 4, 3])
def test_tril_mask_equals_is_causal_at_every_batch_size(key: jax.Array, batch: int) -> None:
    x = _normal(key, 1, (batch, 4, 8))  # seq 4: batch 4 is the size that used to flip the reading
    params = trace(nets.multi_head_self_attention(_, _, 2), key, x)
    tril = jnp.tril(_ones(4, 4, dtype=bool))
    causal = nets.multi_head_self_attention(params, x, 2, is_causal=True)
    _close(nets.multi_head_self_attention(params, x, 2, tril), causal, 1e-6)
    q, k, v = (_normal(key, i, (batch, 4, 2, 4)) for i in (2, 3, 4))
    _close(nets.dot_product_attention(q, k, v, tril), nets.dot_product_attention(q, k, v, is_causal=True), 1e-6)


def test_unbatched_mask_forms(key: jax.Array) -> None:
    x = _normal(key, 1, (5, 8))
    params = _randomize(trace(nets.multi_head_self_attention(_, _, 2), key, x), key)
    m = np.asarray(_normal(key, 2, (2, 5, 5))) > 0
    m[..., 0] = True
    _close(nets.multi_head_self_attention(params, x, 2, _array(m)), _np_mha(params, x, x, x, 2, 2, m))
    pad = np.array([True, True, True, False, True])
    _close(nets.multi_head_self_attention(params, x, 2, padding_mask=_array(pad)), _np_mha(params, x, x, x, 2, 2, np.broadcast_to(pad, (2, 5, 5))))


def test_old_padding_mask_in_mask_is_an_error_that_names_padding_mask(key: jax.Array) -> None:
    x = _ones(2, 5, 8)
    params = trace(nets.multi_head_self_attention(_, _, 2), key, x)
    with pytest.raises(ValueError, match=r"`mask` must broadcast .* got shape \(2, 5\); a padding mask \(2, 5\) goes in `padding_mask`"):
        nets.multi_head_self_attention(params, x, 2, _ones(2, 5, dtype=bool))
    with pytest.raises(ValueError, match=r"`padding_mask` must broadcast \(right-aligned\) to \(\*batch, kv_len\) = \(2, 5\), got shape \(5, 5\)"):
        nets.multi_head_self_attention(params, x, 2, padding_mask=_ones(5, 5, dtype=bool))
    with checking(False), pytest.raises(TypeError, match=r"`padding_mask` must be a boolean array"):
        nets.multi_head_self_attention(params, x, 2, padding_mask=_ones(2, 5))
    with pytest.raises(TypeError, match=r"masks"):  # the old keyword is gone: its meaning changed
        nets.multi_head_self_attention(params, x, 2, masks=_ones(2, 5, dtype=bool))  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # the removed keyword


# ------------------------------------------------------------------------------ rotary positions


def _np_rope(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """Rotate-half RoPE from the formula: x (..., T, H, D), positions broadcast to (..., T)."""
    half = x.shape[-1] // 2
    inv = base ** (-np.arange(half) * 2.0 / x.shape[-1])
    angles = np.asarray(positions, np.float64)[..., :, None, None] * inv  # (..., T, 1, half)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * np.cos(angles) - x2 * np.sin(angles), x2 * np.cos(angles) + x1 * np.sin(angles)], -1)


def _np_rope_mha(
    params: Any, q: Any, kv: Any, num_heads: int, num_kv_heads: int, key_size: int, q_pos: np.ndarray, k_pos: np.ndarray, base: float, causal: bool
) -> np.ndarray:
    q, kv = np.asarray(q, np.float64), np.asarray(kv, np.float64)
    qp = _np_linear(params["query"], q).reshape((*q.shape[:-1], num_heads, key_size))
    kp = _np_linear(params["key"], kv).reshape((*kv.shape[:-1], num_kv_heads, key_size))
    vp = _np_linear(params["value"], kv).reshape((*kv.shape[:-1], num_kv_heads, -1))
    qp, kp = _np_rope(qp, q_pos, base), _np_rope(kp, k_pos, base)
    mask = np.ones((qp.shape[0], num_heads, q.shape[-2], kv.shape[-2]), bool)
    if causal:
        mask = np.broadcast_to(np.tril(np.ones((q.shape[-2], kv.shape[-2]), bool)), mask.shape)
    heads = _np_attention(qp, kp, vp, mask)
    return _np_linear(params["out"], heads.reshape((*heads.shape[:-2], -1)))


@pytest.mark.parametrize("base,num_kv_heads", [(10000.0, 4), (500.0, 2)])
def test_self_attention_with_rope_matches_the_formula(key: jax.Array, base: float, num_kv_heads: int) -> None:
    x = _normal(key, 1, (2, 6, 16))
    att = nets.attention(4, num_kv_heads=num_kv_heads, on_qk=nets.rotary(base))
    net = nets.multi_head_self_attention(_, _, att, None, True)
    params = _randomize(trace(net, key, x), key)
    pos = np.arange(6)
    _close(net(params, x), _np_rope_mha(params, x, x, 4, num_kv_heads, 4, pos, pos, base, True))
    # explicit positions per example (e.g. left padding): (batch, seq)
    explicit = np.array([np.arange(6) + 3, np.arange(6) * 2])
    y = nets.multi_head_self_attention(params, x, att, None, True, positions=_array(explicit))
    _close(y, _np_rope_mha(params, x, x, 4, num_kv_heads, 4, explicit, explicit, base, True))
    # and rope changes the result (it is not silently ignored)
    plain = nets.attention(4, num_kv_heads=num_kv_heads)
    assert not np.allclose(np.asarray(net(params, x)), np.asarray(nets.multi_head_self_attention(params, x, plain, None, True)))


def test_cross_attention_rope_with_query_and_key_positions(key: jax.Array) -> None:
    q, kv = _normal(key, 1, (2, 3, 8)), _normal(key, 2, (2, 5, 8))
    att = nets.attention(2, on_qk=nets.rotary())
    net = nets.multi_head_attention(_, _, _, _, att)
    params = _randomize(trace(net, key, q, kv, kv), key)
    qp, kp = np.array([2, 3, 4]), np.arange(5)
    y = nets.multi_head_attention(params, q, kv, kv, att, positions=_array(qp), kv_positions=_array(kp))
    _close(y, _np_rope_mha(params, q, kv, 2, 2, 4, qp, kp, 10000.0, False))


def test_kv_cache_step_with_rope_equals_full_causal(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 7, 16))
    att = nets.attention(4, num_kv_heads=2, causal=True, on_qk=nets.rotary(100.0))
    params = _randomize(trace(nets.multi_head_self_attention(_, _, att), key, x), key)
    full = nets.multi_head_self_attention(params, x, att)
    cache = nets.init_cache(x, 8, att)
    prefix, cache = nets.step(params, cache, x[:, :3])
    step = _jit(nets.step)  # one program for the four steps
    outputs = [prefix]
    for t in range(3, 7):
        y_t, cache = step(params, cache, x[:, t : t + 1])
        outputs.append(y_t)
    _close(jnp.concatenate(outputs, axis=1), full, 1e-5)


def test_rope_options_checked(key: jax.Array) -> None:
    x = _ones(2, 5, 8)
    params = trace(nets.multi_head_self_attention(_, _, 2), key, x)
    with pytest.raises(ValueError, match=r"multi_head_attention: `positions` are read by the attention's `on_qk` part only"):
        nets.multi_head_self_attention(params, x, 2, positions=_array(np.arange(5)))
    with pytest.raises(ValueError, match=r"rotary: rotates pairs of features: the query head size must be even, got 3"):
        trace(nets.multi_head_self_attention(_, _, nets.attention(2, key_size=3, on_qk=nets.rotary())), key, x)
    rotated = nets.attention(2, on_qk=nets.rotary())
    with pytest.raises(ValueError, match=r"`positions` must broadcast \(right-aligned\) to \(\*batch, seq\) = \(2, 5\), got shape \(4,\)"):
        nets.multi_head_self_attention(params, x, rotated, positions=_array(np.arange(4)))


# ------------------------------------------------------------------------------ logit parts, cache errors


def _np_parts_mha(params: Any, x: Any, num_heads: int, scale: float, cap: float, window: int) -> np.ndarray:
    """Causal self-attention with a logit scale, a tanh soft-cap and a sliding window, float64 numpy."""
    x = np.asarray(x, np.float64)
    seq, hd = x.shape[-2], x.shape[-1] // num_heads
    qp, kp, vp = (_np_linear(params[n], x) for n in ("query", "key", "value"))
    i, j = np.arange(seq)[:, None], np.arange(seq)[None, :]
    visible = (j <= i) & (i - j < window)
    heads = []
    for h in range(num_heads):
        sl = slice(h * hd, (h + 1) * hd)
        logits = qp[..., sl] @ np.swapaxes(kp[..., sl], -1, -2) * scale
        logits = cap * np.tanh(logits / cap)
        heads.append(_np_softmax(np.where(visible, logits, -1e30)) @ vp[..., sl])
    return _np_linear(params["out"], np.concatenate(heads, axis=-1))


def test_logit_parts_and_scale_match_numpy_and_the_cached_step(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 7, 8))
    att = nets.attention(2, causal=True, on_logits=(nets.soft_cap(2.0), nets.sliding_window(3)), scale=0.7)
    params = _randomize(trace(nets.multi_head_self_attention(_, _, att), key, x), key)
    full = nets.multi_head_self_attention(params, x, att)
    _close(full, _np_parts_mha(params, x, 2, 0.7, 2.0, 3))
    cache = nets.init_cache(x, 9, att)
    prefix, cache = nets.step(params, cache, x[:, :4])
    outputs = [prefix]
    for t in range(4, 7):
        y_t, cache = nets.step(params, cache, x[:, t : t + 1])
        outputs.append(y_t)
    _close(jnp.concatenate(outputs, axis=1), full, 1e-5)
    # each part matters: without the window the output differs
    wide = nets.attention(2, causal=True, on_logits=nets.soft_cap(2.0), scale=0.7)
    assert not np.allclose(np.asarray(nets.multi_head_self_attention(params, x, wide)), np.asarray(full))


def test_decoding_past_the_cache_is_an_error_eagerly_and_nan_under_jit(key: jax.Array) -> None:
    x = _normal(key, 1, (1, 6, 8))
    att = nets.attention(2, causal=True)
    params = trace(nets.multi_head_self_attention(_, _, att), key, x)
    cache = nets.init_cache(x, 4, att)
    for t in range(4):
        _y, cache = nets.step(params, cache, x[:, t : t + 1])
    with pytest.raises(ValueError, match=r"step: decoding past the cache's end: max_len 4, length 4 \+ 1 new positions = 5"):
        nets.step(params, cache, x[:, 4:5])
    jitted = _jit(nets.step)
    y, cache = jitted(params, cache, x[:, 4:5])
    assert bool(jnp.all(jnp.isnan(y))) and int(cache.length) == 5
    from jax.experimental import checkify

    def checked(p: Params, c: nets.Cache, x_t: jax.Array) -> jax.Array:
        return nets.step(p, c, x_t)[0]

    error, _out = _jit(checkify.checkify(checked, errors=checkify.float_checks))(params, cache, x[:, 5:6])
    assert error.get() is not None and "division by zero" in str(error.get())  # the 0 / 0 that makes the NaN


def test_cache_length_and_model_errors(key: jax.Array) -> None:
    import dataclasses

    x = _ones(1, 2, 8)
    att = nets.attention(2, causal=True)
    params = trace(nets.multi_head_self_attention(_, _, att), key, x)
    cache = nets.init_cache(x, 4, att)
    with pytest.raises(TypeError, match=r"step: `cache.length` must be an integer array of shape \(\) \(from init_cache\), got"):
        nets.step(params, dataclasses.replace(cache, length=2), x)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(TypeError, match=r"step: `cache.length` must be an integer array"):
        nets.step(params, dataclasses.replace(cache, length=jnp.zeros(())), x)
    with pytest.raises(ValueError, match=r"step: `cache.length` must be >= 0, got -1"):
        nets.step(params, dataclasses.replace(cache, length=jnp.full((), -1, jnp.int32)), x)
    with pytest.raises(ValueError, match=r"init_cache: decoding attends to the past only: the attention must be causal"):
        nets.init_cache(x, 4, nets.attention(2))
    with pytest.raises(TypeError, match=r"step: `cache` must come from nets.init_cache"):
        nets.step(params, {"key": 1}, x)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the bad value under test


@pytest.mark.parametrize("checking_on", [False, True])
def test_params_of_other_head_sizes_name_the_projection(key: jax.Array, checking_on: bool) -> None:
    x = _ones(2, 5, 8)
    params = trace(nets.multi_head_self_attention(_, _, nets.attention(2, key_size=4)), key, x)
    with checking(checking_on):
        with pytest.raises(ValueError, match=r"attention: `params\['query'\]` projects to 2 heads of size 8: .*expected shape \(8, 16\).*got \(8, 8\)"):
            nets.multi_head_self_attention(params, x, nets.attention(2, key_size=8))
        with pytest.raises(ValueError, match=r"attention: `params\['value'\]` projects to 2 heads of size 8: "):
            nets.multi_head_self_attention(params, x, nets.attention(2, key_size=4, value_size=8))
