"""Sharded trace on the 8-device CPU mesh, abstract trace, and a DP + TP train step."""

from __future__ import annotations

import resource
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed
import pytest
from jax import Array
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from zephyr import nets, tags, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from zephyr.sharding import abstract_trace, abstract_trace_sharded, partition_specs, shardings, trace_sharded
from zephyr.typing import Params
from tests.utils import leaf as leaf_at

RULES = {
    "tag:embedding": P(None, "model"),
    "^body/0/weights$": P(None, "model"),  # column parallel
    "^body/0/bias$": P("model"),
    "^body/1/weights$": P("model", None),  # row parallel
}


def model(params: Params, x: Array) -> Array:
    w = validate(params["embed"], (x.shape[-1], 16), tags="embedding")
    h = jnp.tanh(x @ w)
    return nets.mlp(params["body"], h, [32, 4])


X = jnp.linspace(-1.0, 1.0, 16 * 8, dtype=jnp.float32).reshape(16, 8)
Y = jnp.sin(jnp.arange(16 * 4, dtype=jnp.float32)).reshape(16, 4)


@pytest.fixture(params=[AxisType.Auto, AxisType.Explicit], ids=["auto", "explicit"])
def mesh(request: pytest.FixtureRequest) -> jax.sharding.Mesh:
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(request.param, request.param))


def test_every_leaf_has_the_rule_sharding(key: Array, mesh: jax.sharding.Mesh) -> None:
    params = trace_sharded(model, key, mesh, RULES, X)
    specs = jax.tree.map(lambda a: a.sharding.spec, params)
    assert specs == {
        "embed": P(None, "model"),
        "body": {
            0: {"weights": P(None, "model"), "bias": P("model")},
            1: {"weights": P("model", None), "bias": P()},
        },
    }
    for leaf in jax.tree.leaves(params):
        assert isinstance(leaf.sharding, NamedSharding) and leaf.sharding.mesh == mesh
    w = leaf_at(params, "body", 0, "weights")
    assert {s.data.shape for s in w.addressable_shards} == {(16, 8)}
    # same values as the unsharded trace
    plain = trace(model, key, X)
    jax.tree.map(np.testing.assert_array_equal, params, plain)


def test_partition_specs_and_shardings_by_tag_and_path(mesh: jax.sharding.Mesh) -> None:
    info = tags.leaf_info(model, X)
    specs = partition_specs(info, RULES)
    assert specs["embed"] == P(None, "model") and specs["body"][1]["bias"] == P()
    named = shardings(info, mesh, RULES)
    assert named["body"][1]["weights"] == NamedSharding(mesh, P("model", None))


def test_rule_errors_name_the_leaf(key: Array, mesh: jax.sharding.Mesh) -> None:
    with pytest.raises(ValueError, match=r"`params\['body'\]\[1\]\['bias'\]`: axis 0 of shape \(4,\) has size 4, not divisible by the 8"):
        trace_sharded(model, key, mesh, {"bias$": P(("data", "model"))}, X)
    with pytest.raises(ValueError, match=r"`params\['embed'\]`: the sharding rule .* names mesh axis 'tensor'"):
        trace_sharded(model, key, mesh, {"embed": P("tensor")}, X)
    with pytest.raises(ValueError, match=r"`params\['embed'\]`: the sharding rule gives .* \(3 axes\) to a leaf of shape \(8, 16\)"):
        trace_sharded(model, key, mesh, {"embed": P(None, None, "model")}, X)
    with pytest.raises(TypeError, match="must map to a jax.sharding.PartitionSpec"):
        trace_sharded(model, key, mesh, {"embed": ("model",)}, X)  # type: ignore[dict-item]  # the error under test


def test_leaves_are_created_shard_by_shard(mesh: jax.sharding.Mesh) -> None:
    """The compiled initializer of a sharded leaf only ever holds one shard per device."""
    from zephyr.core._initializers import default_initializer
    from zephyr.core._initializers import _leaf_initializer  # pyright: ignore[reportPrivateUsage]  # the engine's per-leaf jit, inspected on purpose

    shape, sharding = (1024, 1024), NamedSharding(mesh, P(None, "model"))
    init = _leaf_initializer(default_initializer, shape, np.dtype("float32"), sharding)
    jitted: Any = init  # the engine's jitted initializer (typed as a plain callable)
    compiled = jitted.lower(jax.random.key(0), np.uint32(7)).compile()
    text = compiled.as_text()
    assert "1024,1024" not in text and "f32[1024,256]" in text
    stats = compiled.memory_analysis()
    assert stats is not None and stats.output_size_in_bytes == 1024 * 256 * 4


def test_model_bigger_than_one_device_share(key: Array, mesh: jax.sharding.Mesh) -> None:
    """A 32 MiB layer sharded 8 ways: each device holds 4 MiB."""
    net = nets.linear(_, _, 4096, use_bias=False)
    params = trace_sharded(net, key, mesh, {"weights$": P("data", "model")}, jnp.ones((1, 2048)))
    w = leaf_at(params, "weights")
    per_device = {s.device: s.data.nbytes for s in w.addressable_shards}
    assert len(per_device) == 8 and set(per_device.values()) == {w.nbytes // 8}


def test_abstract_trace_allocates_nothing() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    big = nets.mlp(_, _, [65_536, 65_536, 16])  # about 17 GiB of float32
    x = jax.ShapeDtypeStruct((8, 1024), jnp.float32)
    abstract = abstract_trace(big, x)
    info = tags.leaf_info(big, x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = sum(np.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(abstract))
    assert total > 16 * 2**30
    assert (after - before) * 1024 < 200 * 2**20  # ru_maxrss is in KiB on Linux
    assert abstract[1]["weights"] == jax.ShapeDtypeStruct((65_536, 65_536), jnp.float32)
    assert info[1]["weights"].shape == (65_536, 65_536)


def test_abstract_trace_sharded(mesh: jax.sharding.Mesh) -> None:
    abstract = abstract_trace_sharded(model, mesh, RULES, X)
    assert abstract["embed"].shape == (8, 16)
    assert abstract["embed"].sharding == NamedSharding(mesh, P(None, "model"))
    assert abstract["body"][1]["bias"].sharding == NamedSharding(mesh, P())


def _train(params: Any, x: Array, y: Array, steps: int, data_sharding: Any = None) -> list[float]:
    tx = optax.sgd(0.1, momentum=0.9)

    def loss_fn(p: Any, xb: Array, yb: Array) -> Array:
        return jnp.mean((model(p, xb) - yb) ** 2)

    @jax.jit
    def step(p: Any, s: Any, xb: Array, yb: Array) -> tuple[Any, Any, Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    if data_sharding is not None:
        x, y = jax.device_put(x, data_sharding), jax.device_put(y, data_sharding)
    state = tx.init(params)
    losses = []
    for _step in range(steps):
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    if data_sharding is not None:  # the params stay where the rules put them
        assert params["body"][0]["weights"].sharding.spec == P(None, "model")
    return losses


def test_data_and_tensor_parallel_step_matches_unsharded(key: Array) -> None:
    # Auto axes: with Explicit axes the row-parallel matmul needs an `out_sharding` the nets
    # do not take, so a train step would need jax.sharding.auto_axes around the model.
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
    sharded = trace_sharded(model, key, mesh, RULES, X)
    plain = trace(model, key, X)
    losses = _train(sharded, X, Y, 3, NamedSharding(mesh, P("data", None)))
    reference = _train(plain, X, Y, 3)
    np.testing.assert_allclose(losses, reference, rtol=1e-5)
    assert losses[-1] < losses[0]


def test_example_sharded_train_matches_unsharded() -> None:
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "examples" / "sharded_train.py"
    spec = importlib.util.spec_from_file_location("sharded_train", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    sharded, plain = example.main(["--steps", "3"])
    np.testing.assert_allclose(sharded, plain, rtol=1e-5)
