"""zephyr.tags: tags from validate/Annotated/path rules, depth, masks, labels for optax."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed
import pytest
from jax import Array
from jaxtyping import Float

from zephyr import flexible, nets, stack, tags, trace, tree, validate
from jax.nn.initializers import ones, zeros
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params


class NormParams(TypedDict):
    scale: Annotated[Float[Array, " d"], ones, "norm", "no_decay"]
    offset: Annotated[Float[Array, " d"], zeros, "norm"]


@flexible
def scale_norm(params: NormParams, x: Float[Array, "*b d"]) -> Float[Array, "*b d"]:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    y = x - jnp.broadcast_to(mean, x.shape)
    return y * jnp.broadcast_to(params["scale"], x.shape) + jnp.broadcast_to(params["offset"], x.shape)


def model(params: Params, x: Array) -> Array:
    h = nets.linear(params["embed"], x, 8)
    gate = validate(params["gate"], (8,), ones, tags=("gate", "frozen"))
    h = jnp.broadcast_to(gate, h.shape) * h
    h = nets.mlp(params["body"], h, [8, 8])
    return scale_norm(params["norm"], h)


X = jnp.ones((4, 5))


def test_tags_from_validate_annotated_and_rules() -> None:
    info = tags.leaf_info(model, X)
    t = tags.tags(info)
    assert t["gate"] == ("gate", "frozen")
    assert t["norm"] == {"scale": ("norm", "no_decay"), "offset": ("norm",)}
    assert t["embed"]["weights"] == ()
    info = tags.tag(info, {"bias$": "no_decay", "^body/": "body"})
    t = tags.tags(info)
    assert t["body"][0]["bias"] == ("no_decay", "body")
    assert t["norm"]["scale"] == ("norm", "no_decay")  # not duplicated


def test_paths_depths_and_leaf_fields() -> None:
    info = tags.leaf_info(model, X)
    assert tags.paths(info)["body"][1]["weights"] == "body/1/weights"
    leaf = info["body"][1]["weights"]
    assert (leaf.path, leaf.shape, leaf.dtype, leaf.depth, leaf.layers, leaf.size) == (
        ("body", 1, "weights"), (8, 8), np.dtype("float32"), 1, 0, 64,
    )
    assert leaf.name == "params['body'][1]['weights']"
    assert info["embed"]["weights"].depth is None


def test_stacked_leaves_know_their_layer_axis() -> None:
    deep = stack(nets.linear(_, _, 4), 3)
    info = tags.leaf_info(deep, jnp.ones((2, 4)))
    assert info["weights"].layers == 3 and info["weights"].depth is None


def test_leaf_info_allocates_nothing_and_matches_trace(key: Array) -> None:
    params = trace(model, key, X)
    info = tags.leaf_info(model, X)
    assert str(jax.tree.structure(params)) == str(jax.tree.structure(info, is_leaf=lambda n: isinstance(n, tags.Leaf)))
    jax.tree.map(lambda a, leaf: None if a.shape == leaf.shape else pytest.fail(leaf.name), params, info)


def test_mask_select_partition_merge(key: Array) -> None:
    params = trace(model, key, X)
    info = tags.leaf_info(model, X)
    m = tags.mask(info, "tag:norm", "bias$")
    assert m["norm"] == {"scale": True, "offset": True} and m["body"][0] == {"bias": True, "weights": False}
    chosen = tags.select(params, "tag:frozen", info=info)
    assert list(chosen) == ["gate"]
    with pytest.raises(ValueError, match="is in `params` but not in `info`"):
        tags.select(params, "tag:frozen", info=tags.leaf_info(nets.linear, X, 8))
    a, b = tags.partition(params, "^body/")
    assert list(a) == ["body"] and "body" not in b
    merged = tree.merge(a, b)
    assert str(jax.tree.structure(merged)) == str(jax.tree.structure(params))
    with pytest.raises(ValueError, match=r"`params\['gate'\]` is in more than one tree"):
        tree.merge(params, {"gate": 1})


def test_selector_errors() -> None:
    info = tags.leaf_info(model, X)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        tags.mask(info, "(")
    with pytest.raises(TypeError, match="a selector is"):
        tags.mask(info, 3)  # type: ignore[arg-type]  # the error under test
    with pytest.raises(ValueError, match=r"no rule matches .*`params\['embed'\]\['bias'\]`"):
        tags.labels(info, {"weights$": "w", "tag:norm": "n", "gate": "g"})


def test_labels_per_tag_rules_apply_in_optax(key: Array) -> None:
    """Frozen leaves do not move; decayed weights shrink with zero gradients; biases do not."""
    params: Any = trace(model, key, X)  # changed in place below
    params["body"][0]["bias"] = jnp.ones(8)
    info = tags.leaf_info(model, X)
    labels = tags.labels(info, {"tag:frozen": "frozen", "tag:norm": "plain", "bias$": "plain"}, default="decay")
    assert labels["gate"] == "frozen" and labels["body"][0] == {"bias": "plain", "weights": "decay"}
    tx = optax.multi_transform(
        {"frozen": optax.set_to_zero(), "plain": optax.sgd(0.1), "decay": optax.chain(optax.add_decayed_weights(0.5), optax.sgd(0.1))},
        labels,
    )
    opt_state = tx.init(params)
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    ones_grads = jax.tree.map(jnp.ones_like, params)
    updates, opt_state = tx.update(zero_grads, opt_state, params)
    new: Any = optax.apply_updates(params, updates)  # optax types trees as a wide union
    np.testing.assert_array_equal(new["body"][0]["bias"], params["body"][0]["bias"])  # no decay
    w_old, w_new = params["body"][0]["weights"], new["body"][0]["weights"]
    np.testing.assert_allclose(w_new, w_old * (1 - 0.1 * 0.5), rtol=1e-6)  # decayed
    updates, opt_state = tx.update(ones_grads, opt_state, new)
    newer: Any = optax.apply_updates(new, updates)
    np.testing.assert_array_equal(newer["gate"], params["gate"])  # frozen
    np.testing.assert_allclose(newer["norm"]["scale"], new["norm"]["scale"] - 0.1)


def test_learning_rate_scaled_by_depth(key: Array) -> None:
    x = jnp.ones((2, 3))
    net = nets.mlp(_, _, [3, 3, 3])
    params = trace(net, key, x)
    info = tags.leaf_info(net, x)
    labels = tags.labels(info, lambda leaf: leaf.depth)
    tx = optax.multi_transform({d: optax.sgd(0.5**d) for d in range(3)}, labels)
    grads = jax.tree.map(jnp.ones_like, params)
    updates: Any
    updates, _state = tx.update(grads, tx.init(params), params)
    for d in range(3):
        np.testing.assert_allclose(updates[d]["weights"], -(0.5**d) * np.ones((3, 3)))


def test_example_tags_per_depth_trains() -> None:
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "examples" / "tags_per_depth.py"
    spec = importlib.util.spec_from_file_location("tags_per_depth", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    losses = example.main(["--steps", "20"])
    assert len(losses) == 20 and losses[-1] < losses[0]


def test_scale_by_depth_numbered_and_stacked_layers(key: Array) -> None:
    x = jnp.ones((2, 3))

    def net(params: Params, x: Array) -> Array:
        h = nets.mlp(params["mlp"], x, [3, 3])
        h = stack(nets.linear(_, _, 3), 4)(params["deep"], h)
        return nets.linear(params["head"], h, 1)

    params = trace(net, key, x)
    tx = optax.chain(optax.sgd(1.0), tags.scale_by_depth(tags.leaf_info(net, x), lambda d: 0.1 * (d + 1), default=7.0))
    updates: Any
    updates, _state = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params))
    np.testing.assert_allclose(updates["mlp"][1]["weights"], -0.2 * np.ones((3, 3)), rtol=1e-6)
    np.testing.assert_allclose(updates["deep"]["weights"][:, 0, 0], [-0.1, -0.2, -0.3, -0.4], rtol=1e-6)
    np.testing.assert_allclose(updates["head"]["bias"], [-7.0])
