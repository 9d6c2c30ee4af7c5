"""zephyr.checkpoint: bit-exact round trips (int keys, bf16, state, sharded) and mismatch errors."""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import Array
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from zephyr import abstract_trace, abstract_trace_with_state, checkpoint, nets, tags, trace, trace_with_state, validate
from jax.nn.initializers import zeros
from zephyr.sharding import abstract_trace_sharded, trace_sharded
from zephyr.typing import Params


def model(params: Params, x: Array) -> Array:
    h = nets.mlp(params["body"], x, [8, 4])
    scale = validate(params["scale"], (4,), dtype=jnp.bfloat16, tags="norm")
    return h * jnp.broadcast_to(scale.astype(h.dtype), h.shape)


def stateful(params: Params, state: Params, x: Array) -> tuple[Array, Any]:
    y = nets.linear(params[0], x, 3)
    count = validate(state["count"], (), zeros, dtype=jnp.int32)
    mean = validate(state["mean"], (3,), zeros)
    return y, {"count": count + 1, "mean": mean}


X = jnp.ones((2, 5))


def _assert_same(a: Any, b: Any) -> None:
    assert str(jax.tree.structure(a)) == str(jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_int_keys_and_bf16_bit_for_bit(key: Array, tmp_path: pathlib.Path) -> None:
    params: Any = trace(model, key, X)  # changed in place below
    params["scale"] = jax.random.normal(key, (4,), jnp.bfloat16)
    checkpoint.save(tmp_path / "ck", params)
    for like in (params, abstract_trace(model, X), tags.leaf_info(model, X), None):
        restored = checkpoint.restore(tmp_path / "ck", like=like)
        _assert_same(restored, params)
        assert sorted(restored["body"]) == [0, 1]  # int keys stay ints
        assert restored["scale"].dtype == jnp.bfloat16
        # bit for bit, bf16 included
        np.testing.assert_array_equal(
            np.asarray(restored["scale"]).view(np.uint16), np.asarray(params["scale"]).view(np.uint16)
        )


def test_round_trip_with_state(key: Array, tmp_path: pathlib.Path) -> None:
    params, traced_state = trace_with_state(stateful, key, X)
    state: Any = traced_state  # changed in place below
    state["count"] = jnp.array(7, jnp.int32)
    checkpoint.save(tmp_path / "ck", params, state)
    p, s = checkpoint.restore_with_state(tmp_path / "ck", params, state)
    _assert_same(p, params)
    _assert_same(s, state)
    assert s["count"].tolist() == 7
    p, s = checkpoint.restore_with_state(tmp_path / "ck", *abstract_trace_with_state(stateful, X))
    _assert_same(s, state)
    with pytest.raises(ValueError, match="has no `state`"):
        checkpoint.save(tmp_path / "ck2", params)
        checkpoint.restore_with_state(tmp_path / "ck2")


def test_sharded_round_trip_keeps_the_sharding(key: Array, tmp_path: pathlib.Path) -> None:
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    rules = {"weights$": P(None, "model"), "scale": P("model")}
    params = trace_sharded(model, key, mesh, rules, X)
    checkpoint.save(tmp_path / "ck", params)
    restored = checkpoint.restore(tmp_path / "ck", like=abstract_trace_sharded(model, mesh, rules, X))
    _assert_same(restored, params)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(params)):
        assert a.sharding == b.sharding
    assert restored["body"][0]["weights"].sharding == NamedSharding(mesh, P(None, "model"))
    # a sharded checkpoint restores onto another layout too
    other = checkpoint.restore(tmp_path / "ck", like=abstract_trace_sharded(model, mesh, {"1/weights$": P("data")}, X))
    assert other["body"][1]["weights"].sharding.spec == P("data")
    _assert_same(other, params)


def test_mismatch_names_every_path(key: Array, tmp_path: pathlib.Path) -> None:
    params = trace(model, key, X)
    checkpoint.save(tmp_path / "ck", params)

    def changed(p: Params, x: Array) -> Array:
        h = nets.mlp(p["body"], x, [8, 6])  # layer 1 is wider
        scale = validate(p["scale"], (4,))  # float32, not bf16
        extra = validate(p["extra"], (2,))
        return h[..., :4] * jnp.broadcast_to(scale, h[..., :4].shape) + jnp.sum(extra)

    with pytest.raises(ValueError) as info:
        checkpoint.restore(tmp_path / "ck", like=abstract_trace(changed, X))
    message = str(info.value)
    assert "missing from the checkpoint: `params['extra']` (float32[2])" in message
    assert "shape: `params['body'][1]['weights']` is (8, 4) in the checkpoint, (8, 6) in the model" in message
    assert "shape: `params['body'][1]['bias']` is (4,) in the checkpoint, (6,) in the model" in message
    assert "dtype: `params['scale']` is bfloat16 in the checkpoint, float32 in the model" in message
    smaller = {"body": params["body"]}
    with pytest.raises(ValueError, match=r"not in the model: `params\['scale'\]` \(bfloat16\[4\]\)"):
        checkpoint.restore(tmp_path / "ck", like=smaller)


def test_save_and_restore_errors(key: Array, tmp_path: pathlib.Path) -> None:
    params: Any = trace(model, key, X)  # changed in place below
    checkpoint.save(tmp_path / "ck", params)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save(tmp_path / "ck", params)
    params["scale"] = jnp.ones(4, jnp.bfloat16)
    checkpoint.save(tmp_path / "ck", params, overwrite=True)
    np.testing.assert_array_equal(checkpoint.restore(tmp_path / "ck")["scale"], params["scale"])
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.restore(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="is not a zephyr checkpoint"):
        checkpoint.restore(tmp_path / "plain")
    with pytest.raises(TypeError, match=r"`params\['n'\]` must be an array, got str"):
        checkpoint.save(tmp_path / "bad", {"n": "text"})
