"""A net called again during trace with the same shapes and hyperparameters is replayed:
its leaves declared again at the new path, its output shapes given, its body not run.
The params are the same, bit for bit, as running every call.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import Array
from jaxtyping import Float

import zephyr._flexible as flexible_module
from zephyr import clear_trace_cache, collect_specs, nets, trace, trace_with_state, validate
from zephyr.functools.partial import flexible
from zephyr.typing import Params

KEY = jax.random.key(0)


def _run_every_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], run: Callable[[], Any]) -> Any:
    return run()


def _both(f: Callable[..., Any], *args: Any) -> tuple[Any, Any, list[Any], list[Any]]:
    """Params and declaration order with replay, then with every call run."""
    clear_trace_cache()
    replayed = trace(f, KEY, *args)
    (replayed_specs,) = collect_specs(f, args, {})
    patch = pytest.MonkeyPatch()
    patch.setattr(flexible_module, "call_during_trace", _run_every_call)
    try:
        clear_trace_cache()
        every = trace(f, KEY, *args)
        (every_specs,) = collect_specs(f, args, {})
    finally:
        patch.undo()
        clear_trace_cache()
    return replayed, every, list(replayed_specs.values()), list(every_specs.values())


def _assert_same(f: Callable[..., Any], *args: Any) -> Any:
    replayed, every, replayed_specs, every_specs = _both(f, *args)
    assert replayed_specs == every_specs  # paths, shapes, dtypes, tags, initializers, in order
    assert jax.tree.map(jnp.shape, replayed) == jax.tree.map(jnp.shape, every)
    jax.tree.map(np.testing.assert_array_equal, replayed, every)
    return replayed


@pytest.fixture
def calls() -> Iterator[list[int]]:
    found: list[int] = []
    yield found


def test_a_loop_of_64_identical_blocks_runs_one_block(calls: list[int]) -> None:
    @flexible
    def block(params: Params, x: Array, hidden: int) -> Array:
        calls.append(1)
        return x + nets.mlp(params["mlp"], nets.layer_norm(params["norm"], x), [hidden, x.shape[-1]])

    def deep(params: Params, x: Array) -> Array:
        for i in range(64):
            x = block(params["blocks"][i], x, 8)
        return x

    params = _assert_same(deep, jnp.ones((2, 4)))
    assert len(params["blocks"]) == 64
    calls.clear()
    clear_trace_cache()
    trace(deep, KEY, jnp.ones((2, 4)))
    assert len(calls) == 1


def test_blocks_that_differ_by_a_hyperparameter_or_a_shape_each_run(calls: list[int]) -> None:
    @flexible
    def block(params: Params, x: Array, width: int) -> Array:
        calls.append(width)
        return nets.linear(params, x, width)

    def net(params: Params, x: Array) -> Array:
        for i, width in enumerate([4, 4, 8, 8, 4]):
            x = block(params[i], x, width)
        return x

    params = _assert_same(net, jnp.ones((2, 3)))
    assert [params[i]["weights"].shape for i in range(5)] == [(3, 4), (4, 4), (4, 8), (8, 8), (8, 4)]
    calls.clear()
    clear_trace_cache()
    trace(net, KEY, jnp.ones((2, 3)))
    assert calls == [4, 4, 8, 8, 4]  # every input shape differs: no call repeats another


def test_a_unet_of_different_blocks_at_different_resolutions() -> None:
    @flexible
    def conv_block(params: Params, x: Array, channels: int) -> Array:
        x = jax.nn.relu(nets.conv_2d(params[0], x, channels, 3))
        return jax.nn.relu(nets.conv_2d(params[1], x, channels, 3))

    def unet(params: Params, x: Array) -> Array:
        skips = []
        for i, channels in enumerate([4, 8]):
            x = conv_block(params["down"][i], x, channels)
            skips.append(x)
            x = nets.max_pool(params, x, (2, 2), 2)
        x = conv_block(params["middle"], x, 16)
        for i, channels in enumerate([8, 4]):
            x = nets.conv_transpose_2d(params["up"][i], x, channels, 2, 2)
            x = conv_block(params["merge"][i], jnp.concatenate([x, skips.pop()], -1), channels)
        return nets.conv_2d(params["out"], x, 1, 1)

    _assert_same(unet, jnp.ones((1, 8, 8, 1)))


def test_weight_tying_inside_a_repeated_block() -> None:
    @flexible
    def tied(params: Params, x: Array) -> Array:
        w = validate(params["w"], (x.shape[-1], x.shape[-1]))
        h = jnp.tanh(x @ w)
        return h @ validate(params["w"], (x.shape[-1], x.shape[-1])).T  # the same leaf again

    def net(params: Params, x: Array) -> Array:
        for i in range(6):
            x = tied(params[i], x)
        return x

    params = _assert_same(net, jnp.ones((2, 3)))
    assert sorted(params) == list(range(6)) and all(sorted(params[i]) == ["w"] for i in range(6))


def test_a_block_sharing_a_leaf_outside_its_params_through_an_argument_runs_each_time(calls: list[int]) -> None:
    @flexible
    def block(params: Params, x: Array, shared: Params) -> Array:
        calls.append(1)
        return x @ validate(shared["w"], (x.shape[-1], x.shape[-1])) + nets.linear(params, x, x.shape[-1])

    def net(params: Params, x: Array) -> Array:
        for i in range(3):
            x = block(params["blocks"][i], x, params["shared"])
        return x

    params = _assert_same(net, jnp.ones((2, 3)))
    assert sorted(params) == ["blocks", "shared"]
    calls.clear()
    clear_trace_cache()
    trace(net, KEY, jnp.ones((2, 3)))
    assert len(calls) == 3  # a second params node among the arguments: never replayed


def test_a_block_declaring_into_a_captured_state_runs_each_time() -> None:
    def net(params: Params, state: Params, x: Array) -> tuple[Array, Params]:
        @flexible
        def counted(p: Params, h: Array) -> Array:
            validate(state["count"], (), jax.nn.initializers.zeros, dtype=jnp.int32)
            return nets.linear(p, h, h.shape[-1])

        for i in range(3):
            x = counted(params[i], x)
        return x, state

    params, state = trace_with_state(net, KEY, jnp.ones((2, 3)))
    assert sorted(params) == [0, 1, 2] and sorted(state) == ["count"]


def test_the_seed_model_traces_to_the_same_params() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "seed_model.py"
    spec = importlib.util.spec_from_file_location("seed_model_for_replay", path)
    assert spec is not None and spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    _assert_same(seed.model, jnp.ones((4, 8)))


def test_replayed_outputs_keep_structure_and_non_array_leaves() -> None:
    @flexible
    def two(params: Params, x: Array) -> tuple[Array, dict[str, Any]]:
        y = nets.linear(params, x, 5)
        return y, {"width": 5, "mean": jnp.mean(y, axis=-1)}

    def net(params: Params, x: Array) -> Array:
        total = jnp.zeros(x.shape[:-1])
        for i in range(3):
            y, info = two(params[i], x)
            assert info["width"] == 5 and y.shape == (*x.shape[:-1], 5)
            total = total + info["mean"]
        return total

    _assert_same(net, jnp.ones((2, 3)))


def test_a_call_that_differs_by_dtype_or_by_keyword_hyperparameter_runs_again(calls: list[int]) -> None:
    @flexible
    def block(params: Params, x: Array, *, scale: float = 1.0, use_bias: bool | int = True) -> Array:
        calls.append(1)
        return nets.linear(params, x, x.shape[-1], use_bias=bool(use_bias)) * scale

    def net(params: Params, x: Array) -> Array:
        x = block(params[0], x)
        x = block(params[1], x.astype(jnp.bfloat16)).astype(jnp.float32)  # another dtype
        x = block(params[2], x, scale=2.0)  # another keyword value
        x = block(params[3], x, use_bias=1)  # 1 == True, but another type
        x = block(params[4], x, use_bias=False)
        return block(params[5], x)  # the first call again: replayed

    params = _assert_same(net, jnp.ones((2, 3)))
    assert "bias" not in params[4] and "bias" in params[3]
    calls.clear()
    clear_trace_cache()
    trace(net, KEY, jnp.ones((2, 3)))
    assert len(calls) == 5


def test_a_replay_of_a_call_that_replayed_calls_inside_it() -> None:
    @flexible
    def inner(params: Params, x: Array) -> Array:
        return nets.layer_norm(params["norm"], nets.linear(params["linear"], x, x.shape[-1]))

    @flexible
    def outer(params: Params, x: Array) -> Array:
        for i in range(3):  # inner calls 1 and 2 replay call 0
            x = inner(params["inner"][i], x)
        return x

    def net(params: Params, x: Array) -> Array:
        for name in ("a", "b", "c"):  # outer "b" and "c" replay "a", whose record holds replays
            x = outer(params[name], x)
        x = outer(params["b"], x)  # replayed onto its own leaves (tying)
        # Onto a path that holds one of its leaves already: one by one, its inner replays too.
        validate(params["d"]["inner"][0]["linear"]["weights"], (x.shape[-1], x.shape[-1]))
        return outer(params["d"], x)

    params = _assert_same(net, jnp.ones((2, 4)))
    assert sorted(params) == ["a", "b", "c", "d"]
    assert all(sorted(params[name]["inner"]) == [0, 1, 2] for name in params)


def test_a_replay_where_leaves_exist_already_declares_them_one_by_one() -> None:
    @flexible
    def block(params: Params, x: Array) -> Array:
        return jnp.tanh(nets.linear(params, x, x.shape[-1]))

    def shared(params: Params, x: Array) -> Array:
        validate(params["tied"]["weights"], (x.shape[-1], x.shape[-1]))  # declared before the block
        x = block(params["first"], x)
        x = block(params["tied"], x)  # a replay onto a path that holds a leaf: its leaves one by one
        return block(params["tied"], x)  # and onto its own leaves: the same arrays (tying)

    params = _assert_same(shared, jnp.ones((2, 3)))
    assert sorted(params) == ["first", "tied"] and sorted(params["tied"]) == ["bias", "weights"]


def test_a_replay_onto_a_path_that_conflicts_raises_as_running_the_call_does() -> None:
    @flexible
    def block(params: Params, x: Array) -> Array:
        return nets.linear(params, x, 4)

    def different_shape(params: Params, x: Array) -> Array:
        validate(params[1]["weights"], (3, 5))
        return block(params[1], block(params[0], x)[..., :3])

    def at_a_leaf(params: Params, x: Array) -> Array:
        node = params[1]  # a node taken before its path became a leaf
        validate(params[1], (2,))
        return block(node, block(params[0], x)[..., :3])

    def below_a_leaf(params: Params, x: Array) -> Array:
        node = params[1]["below"]
        validate(params[1], (2,))
        return block(node, block(params[0], x)[..., :3])

    cases = (
        (different_shape, "declared twice with different shapes"),
        (at_a_leaf, "is a leaf, so `params\\[1\\]\\['weights'\\]`"),
        (below_a_leaf, "is a leaf, so `params\\[1\\]\\['below'\\]\\['weights'\\]`"),
    )
    for net, message in cases:
        errors = []
        for replay in (True, False):
            patch = pytest.MonkeyPatch()
            if not replay:
                patch.setattr(flexible_module, "call_during_trace", _run_every_call)
            try:
                clear_trace_cache()
                with pytest.raises(ValueError, match=message) as raised:
                    trace(net, KEY, jnp.ones((2, 3)))
                errors.append(str(raised.value))
            finally:
                patch.undo()
        assert errors[0] == errors[1]
    clear_trace_cache()


class _ScaleParams(TypedDict):
    scale: Float[Array, " d"]


@flexible
def _scale(params: _ScaleParams, x: Float[Array, "*b d"]) -> Array:
    return x * params["scale"][None]  # declared by the signature only


def test_a_signature_leaf_of_a_replayed_call_can_still_be_refined() -> None:
    def net(params: Params, x: Array) -> Array:
        for i in range(3):
            x = _scale(params[i], x)
        # An explicit validate refines a leaf declared by a signature only: its initializer wins.
        validate(params[2]["scale"], (x.shape[-1],), jax.nn.initializers.ones, tags="refined")
        return x

    params = _assert_same(net, jnp.ones((2, 3)))
    np.testing.assert_array_equal(np.asarray(params[2]["scale"]), np.ones(3, np.float32))
    (specs,) = collect_specs(net, (jnp.ones((2, 3)),), {})
    assert [spec.tags for spec in specs.values()] == [(), (), ("refined",)]


def test_a_replayed_call_does_not_run_its_argument_checks_again() -> None:
    from zephyr._checks import checked_by

    checked: list[int] = []

    def count_width(params: Any, x: Any, width: int) -> None:
        checked.append(width)
        if width < 1:
            raise ValueError(f"dense: `width` must be >= 1, got {width}")

    @flexible
    @checked_by(count_width)
    def dense(params: Params, x: Float[Array, "*b d"], width: int) -> Array:
        return x @ validate(params["w"], (x.shape[-1], width))

    def model(params: Params, x: Array) -> Array:
        for i in range(4):
            x = dense(params[i], x, 8)
        return x

    clear_trace_cache()
    params = trace(model, jax.random.key(0), jnp.ones((2, 8)))
    assert sorted(params) == [0, 1, 2, 3]
    assert checked == [8]  # the first block ran (and checked); the other three replayed it
    def bad_second(params: Params, x: Array) -> Array:
        return dense(params[1], dense(params[0], x, 8), 0)

    with pytest.raises(ValueError, match="`width` must be >= 1, got 0"):
        trace(bad_second, jax.random.key(0), jnp.ones((2, 8)))
