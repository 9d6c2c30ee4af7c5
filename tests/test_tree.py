"""zephyr.tree: merge (the inverse of tags.partition) and map_with_path."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import pytest
from jax import Array

from zephyr import nets, tags, trace, tree


def test_merge_is_the_inverse_of_partition(key: Array) -> None:
    params = trace(nets.mlp, key, jnp.ones((2, 3)), [4, 2])
    a, b = tags.partition(params, "bias$")
    merged = tree.merge(a, b)
    assert str(jax.tree.structure(merged)) == str(jax.tree.structure(params))
    assert all(x is y for x, y in zip(jax.tree.leaves(merged), jax.tree.leaves(params)))
    assert tree.merge() == {}


def test_merge_does_not_change_its_inputs() -> None:
    a: dict[str | int, Any] = {"x": {"w": 1}}
    merged = tree.merge(a, {"x": {"b": 2}})
    assert a == {"x": {"w": 1}} and merged == {"x": {"w": 1, "b": 2}}


def test_merge_rejects_overlaps() -> None:
    with pytest.raises(ValueError, match=r"`params\['x'\]\['w'\]` is in more than one tree"):
        tree.merge({"x": {"w": 1}}, {"x": {"w": 2}})
    with pytest.raises(ValueError, match=r"`params\['x'\]` is in more than one tree"):
        tree.merge({"x": 1}, {"x": {"w": 2}})


def test_map_with_path_gives_plain_keys() -> None:
    out = tree.map_with_path(lambda path, leaf, other: (path, leaf + other), {"a": {0: 1}, "b": 2}, {"a": {0: 10}, "b": 20})
    assert out == {"a": {0: (("a", 0), 11)}, "b": (("b",), 22)}
