"""``trace`` draws each leaf while the forward still runs (issue 26): as soon as a leaf's
shape, dtype and initializer are final. The params are the same, bit for bit, as drawing
every leaf after the forward (``collect_specs`` then ``initialize``); a trace that fails
keeps nothing it drew and raises what it raised before.
"""

from __future__ import annotations

import gc
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

import zephyr.core._api as core_api
import zephyr.core._initializers as core_initializers
from zephyr import clear_trace_cache, collect_specs, initialize, nets, trace, validate
from zephyr.core._trace import _ACTIVE  # pyright: ignore[reportPrivateUsage]  # whether a forward is running
from zephyr.functools.partial import flexible
from zephyr.typing import Params

KEY = jax.random.key(0)


@pytest.fixture
def draws() -> Iterator[list[tuple[tuple[Any, ...], bool]]]:
    """Each leaf ``initialize_leaf`` draws: its path, and whether a forward was running."""
    found: list[tuple[tuple[Any, ...], bool]] = []
    real = core_initializers.initialize_leaf

    def recording(leaf: Any, key: Array, sharding: Any = None) -> Array:
        found.append((leaf.path, bool(_ACTIVE.get())))
        return real(leaf, key, sharding)

    patch = pytest.MonkeyPatch()
    patch.setattr(core_initializers, "initialize_leaf", recording)
    patch.setattr(core_api, "initialize_leaf", recording)
    clear_trace_cache()
    yield found
    patch.undo()
    clear_trace_cache()


def _same_as_after_the_forward(f: Callable[..., Any], *args: Any) -> Any:
    """``trace(f, KEY, *args)``, checked bit for bit against ``initialize(collect_specs(...))``."""
    clear_trace_cache()
    params = trace(f, KEY, *args)
    (specs,) = collect_specs(f, args, {})
    after = initialize(specs, KEY)
    assert jax.tree.structure(params) == jax.tree.structure(after)
    jax.tree.map(np.testing.assert_array_equal, params, after)
    return params


def _seed_model() -> Callable[..., Any]:
    path = Path(__file__).resolve().parents[1] / "examples" / "seed_model.py"
    spec = importlib.util.spec_from_file_location("seed_model_for_drawing", path)
    assert spec is not None and spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    model: Callable[..., Any] = seed.model
    return model


def test_the_seed_model_draws_every_leaf_during_its_forward(draws: list[tuple[tuple[Any, ...], bool]]) -> None:
    model = _seed_model()
    params = trace(model, KEY, jnp.ones((4, 8)))
    leaves = len(jax.tree.leaves(params))
    assert len(draws) == leaves and all(during for _path, during in draws)
    draws.clear()
    _same_as_after_the_forward(model, jnp.ones((4, 8)))


def test_a_loop_of_64_blocks_draws_every_leaf_once_during_its_forward(draws: list[tuple[tuple[Any, ...], bool]]) -> None:
    @flexible
    def block(params: Params, x: Array, hidden: int) -> Array:
        return x + nets.mlp(params["mlp"], nets.layer_norm(params["norm"], x), [hidden, x.shape[-1]])

    def deep(params: Params, x: Array) -> Array:
        for i in range(64):
            x = block(params["blocks"][i], x, 8)
        return x

    params = trace(deep, KEY, jnp.ones((2, 4)))
    paths = [path for path, _during in draws]
    assert len(paths) == len(set(paths)) == len(jax.tree.leaves(params)) == 64 * 6
    assert all(during for _path, during in draws)
    _same_as_after_the_forward(deep, jnp.ones((2, 4)))


def test_a_tied_leaf_is_drawn_once(draws: list[tuple[tuple[Any, ...], bool]]) -> None:
    def tied(params: Params, x: Array) -> Array:
        w = validate(params["w"], (x.shape[-1], x.shape[-1]))
        h = jnp.tanh(x @ w)
        return h @ validate(params["w"], (x.shape[-1], x.shape[-1]), tags="decay").T  # the same leaf again

    params = trace(tied, KEY, jnp.ones((2, 3)))
    assert draws == [(("w",), True)]
    _same_as_after_the_forward(tied, jnp.ones((2, 3)))
    assert sorted(params) == ["w"]


def test_a_signature_leaf_refined_by_validate_is_drawn_with_the_refinement(
    draws: list[tuple[tuple[Any, ...], bool]],
) -> None:
    def net(params: Params, x: Array) -> Array:
        x = _scale(params["kept"], x)
        x = _scale(params["refined"], x)
        validate(params["refined"]["scale"], (x.shape[-1],), jax.nn.initializers.ones, dtype=jnp.bfloat16)
        return x

    params = trace(net, KEY, jnp.ones((2, 3)))
    assert draws == [(("refined", "scale"), True), (("kept", "scale"), False)]  # the signature's leaf after the forward
    assert params["refined"]["scale"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(params["refined"]["scale"], np.float32), np.ones(3, np.float32))
    _same_as_after_the_forward(net, jnp.ones((2, 3)))


class _ScaleParams(TypedDict):
    scale: Float[Array, " d"]


@flexible
def _scale(params: _ScaleParams, x: Float[Array, "*b d"]) -> Array:
    return x * params["scale"][None]  # declared by the signature only: final when the forward ends


def _live_arrays() -> int:
    gc.collect()
    return len(jax.live_arrays())


def test_a_trace_that_fails_halfway_keeps_nothing_and_raises_as_before() -> None:
    def halfway(params: Params, x: Array) -> Array:
        x = nets.linear(params["first"], x, 64)
        x = nets.linear(params["second"], x, 64)
        raise RuntimeError("stop here")

    x = jnp.ones((2, 64))
    before = _live_arrays()
    with pytest.raises(RuntimeError, match="stop here") as drawing:
        trace(halfway, KEY, x)
    notes = drawing.value.__notes__
    assert _live_arrays() == before  # the exception still alive: it holds no drawn leaf
    del drawing
    assert _live_arrays() == before
    patch = pytest.MonkeyPatch()
    patch.setattr(core_api, "LeafDraws", lambda key, check: None)  # type: ignore[arg-type]  # drawing off
    try:
        with pytest.raises(RuntimeError, match="stop here") as after:
            trace(halfway, KEY, x)
    finally:
        patch.undo()
    assert after.value.__notes__ == notes


def _failing_initializer(key: Array, shape: tuple[int, ...], dtype: Any = None) -> Array:
    raise ArithmeticError("no values for this leaf")


def test_a_failing_initializer_raises_after_the_forward_as_before(draws: list[tuple[tuple[Any, ...], bool]]) -> None:
    def net(params: Params, x: Array) -> Array:
        w = validate(params["w"], (x.shape[-1], 2), _failing_initializer)
        return nets.linear(params["after"], x @ w, 2)

    with pytest.raises(ArithmeticError, match="no values") as error:
        trace(net, KEY, jnp.ones((2, 3)))
    # The note of initialize alone, not that of an error raised inside the forward.
    assert [note for note in error.value.__notes__ if note.startswith("zephyr.")] == [
        "zephyr.trace: raised by the initializer of `params['w']` (_failing_initializer, shape (3, 2), dtype float32)."
    ]
    assert draws[0] == (("w",), True) and draws[-1] == (("w",), False)  # drawing stopped, tried again after


def test_a_leaf_too_large_for_the_device_is_refused_before_any_other_is_drawn(
    draws: list[tuple[tuple[Any, ...], bool]],
) -> None:
    def net(params: Params, x: Array) -> Array:
        validate(params["small"], (3,))
        validate(params["huge"], (2**40, 2**20))
        return x

    with pytest.raises(ValueError, match=r"`params\['huge'\]` of shape"):
        trace(net, KEY, jnp.ones((2, 3)))
    assert draws == [(("small",), True)]
