"""The trace engine: abstract forward, path-keyed initialization, the cases the seed allows."""

from __future__ import annotations

import gc
import resource
import threading
from typing import Any

import jax
import jax.numpy as jnp
from jax import core
import numpy as np
import pytest

from zephyr import default_initializer, nets, stack, trace, trace_with_state, validate
from zephyr.core._paths import path_hash
from zephyr.core._initializers import leaf_key
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from tests.utils import abstract, leaf, shapes
from zephyr.typing import Params, checking


def two_layers(params: Params, x: jax.Array) -> jax.Array:
    x = nets.linear(params["first"], x, 4)
    return nets.linear(params["second"], x, 2)


def test_trace_returns_plain_nested_dicts(key: jax.Array) -> None:
    params = trace(two_layers, key, jnp.ones((3, 5)))
    assert type(params) is dict
    assert shapes(params) == {
        "first": {"bias": (4,), "weights": (5, 4)},
        "second": {"bias": (2,), "weights": (4, 2)},
    }
    for leaf in jax.tree.leaves(params):
        assert isinstance(leaf, jax.Array)


def test_trace_is_deterministic_per_key_and_differs_across_keys(key: jax.Array) -> None:
    x = jnp.ones((3, 5))
    a, b = trace(two_layers, key, x), trace(two_layers, key, x)
    c = trace(two_layers, jax.random.key(1), x)
    for left, right in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(left), np.asarray(right))
    assert not np.array_equal(np.asarray(a["first"]["weights"]), np.asarray(c["first"]["weights"]))


def test_raw_uint32_keys_work(key: jax.Array) -> None:
    params = trace(two_layers, jax.random.PRNGKey(0), jnp.ones((3, 5)))
    assert shapes(params)["first"]["weights"] == (5, 4)


def test_adding_a_layer_leaves_other_initial_values_unchanged(key: jax.Array) -> None:
    def three_layers(params: Params, x: jax.Array) -> jax.Array:
        x = nets.linear(params["extra"], x, 5)
        return two_layers(params, x)

    x = jnp.ones((3, 5))
    small, large = trace(two_layers, key, x), trace(three_layers, key, x)
    for name in ("first", "second"):
        np.testing.assert_array_equal(
            np.asarray(small[name]["weights"]), np.asarray(large[name]["weights"])
        )


def test_leaves_with_the_same_shape_get_different_values(key: jax.Array) -> None:
    def twins(params: Params, x: jax.Array) -> jax.Array:
        return nets.linear(params["a"], x, 5) + nets.linear(params["b"], x, 5)

    params = trace(twins, key, jnp.ones((2, 5)))
    assert not np.array_equal(np.asarray(params["a"]["weights"]), np.asarray(params["b"]["weights"]))


def test_forward_runs_abstractly_without_flops_or_allocation(key: jax.Array) -> None:
    # The forward multiplies two 20000x20000 matrices (a real run: minutes and 3 GB) and has a
    # host callback that would fire if anything ran for real. Neither happens during trace.
    executed: list[int] = []

    def heavy(params: Params, x: jax.Array) -> jax.Array:
        y = x @ x.T @ x
        jax.debug.callback(lambda: executed.append(1))
        return nets.linear(params["head"], y, 2)

    x = abstract((20000, 20000))
    params = trace(heavy, key, x)
    assert shapes(params)["head"]["weights"] == (20000, 2)
    assert executed == []
    small = jnp.ones((3, 4))
    heavy(trace(heavy, key, small), small)  # the same callback does fire on a real call
    assert executed == [1]


def test_loops_integer_keys_and_fixed_size_recursion(key: jax.Array) -> None:
    def recursive(params: Params, x: jax.Array, depth: int) -> jax.Array:
        if depth == 0:
            return x
        x = nets.linear(params["layer"][depth], x, x.shape[-1])
        return recursive(params, x, depth - 1)

    params = trace(recursive, key, jnp.ones((2, 3)), 3)
    assert sorted(shapes(params)["layer"]) == [1, 2, 3]
    assert recursive(params, jnp.ones((2, 3)), 3).shape == (2, 3)


def test_weight_tying_shares_one_array(key: jax.Array) -> None:
    def tied(params: Params, x: jax.Array) -> jax.Array:
        x = nets.linear(params["shared"], x, 3)
        return nets.linear(params["shared"], x, 3)

    params = trace(tied, key, jnp.ones((2, 3)))
    assert shapes(params) == {"shared": {"bias": (3,), "weights": (3, 3)}}


def test_declaring_one_path_with_two_shapes_names_the_path(key: jax.Array) -> None:
    def clash(params: Params, x: jax.Array) -> jax.Array:
        x = nets.linear(params["shared"], x, 3)
        return nets.linear(params["shared"], x, 4)

    with pytest.raises(ValueError, match=r"`params\['shared'\]\['weights'\]`: declared twice with different shapes: first \(5, 3\) float32, then \(3, 4\) float32"):
        trace(clash, key, jnp.ones((2, 5)))


def test_a_leaf_cannot_also_be_a_subtree(key: jax.Array) -> None:
    def clash(params: Params, x: jax.Array) -> jax.Array:
        validate(params["a"]["b"], (2,))
        return validate(params["a"], (2,))

    with pytest.raises(ValueError, match=r"`params\['a'\]` cannot be declared as a leaf: `params\['a'\]\['b'\]` is declared below it \(a subtree\): one path is either an array or a subtree"):
        trace(clash, key, jnp.ones(2))

    def clash_the_other_way(params: Params, x: jax.Array) -> jax.Array:
        validate(params["a"], (2,))
        return validate(params["a"]["b"], (2,))

    expected = (
        r"`params\['a'\]` is declared as a leaf \(an array of shape \(2,\)\) and then indexed like a subtree "
        r"\(JAX does not support string indexing; got idx='b'\): one path is either an array or a subtree"
    )
    with pytest.raises(TypeError, match=expected):
        trace(clash_the_other_way, key, jnp.ones(2))


def test_a_declared_leaf_indexed_like_a_subtree_in_a_nested_net_names_its_path(key: jax.Array) -> None:
    @flexible
    def inner(params: Params, x: jax.Array) -> jax.Array:
        return x * validate(params["scale"], (2,))

    def model(params: Params, x: jax.Array) -> jax.Array:
        validate(params["block"], (2,))
        return inner(params["block"], x)

    with pytest.raises(TypeError, match=r"`inner`: its params `params\['block'\]` is declared as a leaf \(an array of shape \(2,\)\)"):
        trace(model, key, jnp.ones(2))


def test_a_missing_param_is_a_key_error_and_a_value_error_naming_the_path_and_the_nets(key: jax.Array) -> None:
    from zephyr._flexible import MissingParam

    def plain(params: Params, x: jax.Array) -> jax.Array:  # not @flexible: the path is still found
        return nets.linear(params["stage"]["proj"], x, 3)

    @flexible
    def model(params: Params, x: jax.Array) -> jax.Array:
        return plain(params["body"], x)

    params: Any = trace(model, key, jnp.ones((2, 4)))
    del params["body"]["stage"]["proj"]["bias"]
    expected = (
        r"`params\['body'\]\['stage'\]\['proj'\]\['bias'\]` is missing \(asked for by `linear` in `model`; "
        r"keys at `params\['body'\]\['stage'\]\['proj'\]`: 'weights'\): the params do not match this model"
    )
    with checking(False), pytest.raises(MissingParam, match=expected) as raised:
        model(params, jnp.ones((2, 4)))
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, ValueError)


def test_mixed_key_kinds_in_one_dict_are_a_clear_error(key: jax.Array) -> None:
    def mixed(params: Params, x: jax.Array) -> jax.Array:
        validate(params[0], (2,))
        return validate(params["a"], (2,))

    with pytest.raises(TypeError, match=r"`params` mixes int and str keys"):
        trace(mixed, key, jnp.ones(2))


def test_reading_a_parameter_before_declaring_it_names_the_path(key: jax.Array) -> None:
    def careless(params: Any, x: jax.Array) -> Any:
        return x @ params["encoder"]["w"]

    with pytest.raises(TypeError, match=r"`params\['encoder'\]\['w'\]` is used as an array before it is declared"):
        trace(careless, key, jnp.ones((2, 3)))


def test_a_value_dependent_branch_gets_a_note_explaining_abstract_tracing(key: jax.Array) -> None:
    def branchy(params: Params, x: jax.Array) -> jax.Array:
        if x.sum() > 0:
            return x
        return x

    with pytest.raises(jax.errors.TracerBoolConversionError) as info:
        trace(branchy, key, jnp.ones(2))
    assert any("runs the forward like jax.eval_shape" in note for note in info.value.__notes__)


def test_a_leaked_tracer_gets_a_clear_note(key: jax.Array) -> None:
    kept: list[jax.Array] = []

    def leaky(params: Params, x: jax.Array) -> jax.Array:
        if kept:
            return x + kept[0]
        kept.append(x)
        return x

    with checking(True), pytest.raises(ValueError, match=r"trace: `leaky` kept an abstract value from its trace \(a tracer leaked\)(.|\n)*kept"):
        trace(leaky, key, jnp.ones(2))
    kept.clear()
    with checking(False):  # leak checking is part of the debug mode: off, it costs nothing
        trace(leaky, key, jnp.ones((3,)))
    assert len(kept) == 1


@pytest.mark.parametrize("bad", [0, 1.5, "key", np.zeros(3, np.uint32), np.zeros(2, np.float32)])
def test_a_non_key_as_key_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"trace: `key` must be a JAX random key"):
        trace(two_layers, bad, jnp.ones((3, 5)))


def test_a_hole_as_sample_argument_is_a_type_error(key: jax.Array) -> None:
    with pytest.raises(TypeError, match=r"an argument of `two_layers` is the placeholder `_`"):
        trace(two_layers, key, _)  # type: ignore[call-overload]  # the mistake under test


def test_hyperparameters_pass_through_unchanged(key: jax.Array) -> None:
    seen: list[Any] = []

    def net(params: Params, x: jax.Array, width: int, name: str, act: Any = None) -> jax.Array:
        seen.append((width, name, act))
        return nets.linear(params, x, width)

    params = trace(net, key, jnp.ones((2, 3)), 7, "n", act=jax.nn.relu)
    assert seen == [(7, "n", jax.nn.relu)]
    assert shapes(params)["weights"] == (3, 7)


def test_jitted_function_traces(key: jax.Array) -> None:
    params = trace(jax.jit(two_layers), key, jnp.ones((3, 5)))
    assert shapes(params)["second"]["weights"] == (4, 2)


def test_jit_inside_the_net_sees_the_params(key: jax.Array) -> None:
    inner = jax.jit(nets.linear, static_argnums=2)

    def net(params: Params, x: jax.Array) -> jax.Array:
        y: jax.Array = inner(params["inner"], x, 3)
        return y

    params = trace(net, key, jnp.ones((2, 4)))
    assert shapes(params) == {"inner": {"bias": (3,), "weights": (4, 3)}}
    np.testing.assert_allclose(net(params, jnp.ones((2, 4))), nets.linear(params["inner"], jnp.ones((2, 4)), 3))


def test_vmap_and_grad_inside_the_net_trace(key: jax.Array) -> None:
    def net(params: Params, xs: jax.Array) -> jax.Array:
        per_example: jax.Array = jax.vmap(lambda x: nets.linear(params["lin"], x, 2))(xs)
        grad_x: jax.Array = jax.grad(lambda x: jnp.sum(nets.linear(params["lin"], x, 2)))(xs)
        return per_example + grad_x[..., :2]

    params = trace(net, key, jnp.ones((3, 4)))
    assert shapes(params) == {"lin": {"bias": (2,), "weights": (4, 2)}}
    assert net(params, jnp.ones((3, 4))).shape == (3, 2)


def test_params_work_with_jit_grad_and_vmap(key: jax.Array) -> None:
    x = jnp.ones((3, 5))
    params = trace(two_layers, key, x)
    np.testing.assert_allclose(jax.jit(two_layers)(params, x), two_layers(params, x), rtol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(two_layers(p, x)))(params)
    assert shapes(grads) == shapes(params)
    batched = jax.vmap(two_layers, in_axes=(None, 0))(params, jnp.ones((4, 3, 5)))
    assert batched.shape == (4, 3, 2)


def test_trace_inside_a_trace_keeps_each_its_own_params(key: jax.Array) -> None:
    inner_results: list[Any] = []

    def outer(params: Params, x: jax.Array) -> jax.Array:
        inner_results.append(trace(nets.linear(_, _, 7), key, jnp.ones((1, 2))))
        return nets.linear(params["outer"], x, 3)

    params = trace(outer, key, jnp.ones((2, 4)))
    assert shapes(params) == {"outer": {"bias": (3,), "weights": (4, 3)}}
    assert shapes(inner_results[0]) == {"bias": (7,), "weights": (2, 7)}


def test_a_trace_inside_jit_with_a_concrete_key_gives_concrete_params(key: jax.Array) -> None:
    inner: list[Any] = []

    @jax.jit
    def outer(x: jax.Array) -> jax.Array:
        params = trace(nets.linear(_, _, 3), key, x)
        inner.append(params)
        return nets.linear(params, x, 3)

    out = outer(jnp.ones((2, 4)))
    assert not isinstance(inner[0]["weights"], core.Tracer)
    np.testing.assert_array_equal(inner[0]["weights"], trace(nets.linear(_, _, 3), key, jnp.ones((2, 4)))["weights"])
    assert out.shape == (2, 3)


def test_a_traced_key_stages_the_initialization(key: jax.Array) -> None:
    @jax.jit
    def init(k: jax.Array) -> Any:
        return trace(nets.linear(_, _, 3), k, jnp.ones((2, 4)))

    staged = init(key)
    np.testing.assert_array_equal(staged["weights"], trace(nets.linear(_, _, 3), key, jnp.ones((2, 4)))["weights"])


def test_a_new_kind_of_leaf_compiles_one_program_with_no_folded_constants(key: jax.Array) -> None:
    # Regression: initializing under `ensure_compile_time_eval` constant-folded the random
    # bit counters of each initializer: a second compiled program per kind of leaf, and its
    # result embedded in the first.
    def fresh_initializer(k: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.normal(k, shape, dtype)

    def net(params: Params, x: jax.Array) -> jax.Array:
        return x @ validate(params["w"], (x.shape[-1], 29), fresh_initializer)

    x = jnp.ones((2, 37))
    compiles: list[float] = []

    def listener(event: str, duration_secs: float, **_: str | int) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration_secs)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        params = trace(net, key, x)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert shapes(params) == {"w": (37, 29)}
    assert len(compiles) == 1


def test_two_threads_tracing_at_once_each_get_their_own_params(key: jax.Array) -> None:
    results: dict[int, Any] = {}
    barrier = threading.Barrier(2)

    def width_net(width: int) -> Any:
        def net(params: Params, x: jax.Array) -> jax.Array:
            barrier.wait(timeout=10)  # both traces are inside their forward at once
            for i in range(3):
                x = nets.linear(params[i], x, width)
            return x

        return net

    def run(width: int) -> None:
        results[width] = trace(width_net(width), key, jnp.ones((1, 2)))

    threads = [threading.Thread(target=run, args=(w,)) for w in (3, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shapes(results[3])[2]["weights"] == (3, 3)
    assert shapes(results[5])[2]["weights"] == (5, 5)
    assert len(results[3]) == len(results[5]) == 3


def test_a_thousand_traces_do_not_grow_memory(key: jax.Array) -> None:
    from zephyr import clear_trace_cache

    x = jnp.ones((2, 5))
    for _warm in range(50):  # warm JAX's own caches
        clear_trace_cache()
        trace(two_layers, key, x)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _run in range(1000):
        clear_trace_cache()  # the whole path each time: abstract run and initialization
        trace(two_layers, key, x)
    gc.collect()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000


def test_jax_initializers_work(key: jax.Array) -> None:
    def net(params: Params, x: jax.Array) -> jax.Array:
        w = validate(params["w"], (3, 4), jax.nn.initializers.orthogonal())
        b = validate(params["b"], (4,), jax.nn.initializers.constant(0.5))
        o = validate(params["o"], (2, 2), jax.nn.initializers.ones, dtype=jnp.bfloat16)
        return x @ w + b[None] + jnp.sum(o.astype(jnp.float32))

    params = trace(net, key, jnp.ones((2, 3)))
    w = np.asarray(params["w"])
    np.testing.assert_allclose(w @ w.T, np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(params["b"]), np.full(4, 0.5, np.float32))
    assert leaf(params, "o").dtype == jnp.bfloat16


def test_default_initializer_is_fan_in_truncated_normal_and_zeros(key: jax.Array) -> None:
    def net(params: Params, x: jax.Array) -> jax.Array:
        w = validate(params["w"], (400, 300))
        b = validate(params["b"], (300,))
        return x @ w + b[None]

    params = trace(net, key, jnp.ones((1, 400)))
    w = np.asarray(params["w"])
    assert abs(w.std() - (1 / 400) ** 0.5) < 0.005
    assert np.abs(w).max() <= 2 * (1 / 400) ** 0.5 / 0.8796 + 1e-6  # truncated at 2 stddev
    np.testing.assert_array_equal(np.asarray(params["b"]), np.zeros(300, np.float32))


def test_an_initializer_returning_the_wrong_shape_names_the_path(key: jax.Array) -> None:
    def bad_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jnp.zeros((1,), dtype)

    def net(params: Params, x: jax.Array) -> jax.Array:
        return validate(params["w"], (2, 2), bad_init)

    with pytest.raises(ValueError, match=r"`params\['w'\]`: the initializer bad_init returned shape \(1,\), expected \(2, 2\)"):
        trace(net, key, jnp.ones(2))


def test_trace_with_state_builds_both_trees(key: jax.Array) -> None:
    def counter(params: Params, state: Params, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        y = nets.linear(params["lin"], x, 2)
        count = validate(state["count"], (), jax.nn.initializers.zeros, dtype=jnp.int32)
        return y, {"count": count + 1}

    params, state = trace_with_state(counter, key, jnp.ones((1, 3)))
    assert shapes(params) == {"lin": {"bias": (2,), "weights": (3, 2)}}
    assert leaf(state, "count").dtype == jnp.int32 and int(leaf(state, "count")) == 0


def test_state_paths_are_named_as_state(key: jax.Array) -> None:
    def clash(params: Params, state: Params, x: jax.Array) -> jax.Array:
        validate(state["mean"], (2,))
        return validate(state["mean"], (3,))

    with pytest.raises(ValueError, match=r"`state\['mean'\]`: declared twice"):
        trace_with_state(clash, key, jnp.ones(2))


def test_stack_scans_over_independently_initialized_layers(key: jax.Array) -> None:
    deep = stack(nets.linear(_, _, 4), 5)
    x = jax.random.normal(key, (2, 4))
    params = trace(deep, key, x)
    assert shapes(params) == {"bias": (5, 4), "weights": (5, 4, 4)}
    assert not np.array_equal(np.asarray(params["weights"][0]), np.asarray(params["weights"][1]))
    expected = x
    for i in range(5):
        layer = jax.tree.map(lambda leaf: leaf[i], params)
        expected = nets.linear(layer, expected, 4)
    np.testing.assert_allclose(deep(params, x), expected, rtol=1e-5, atol=1e-6)


def _uniform(k: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.uniform(k, shape, dtype)


def _one_uniform_leaf(params: Params, x: jax.Array) -> jax.Array:
    return x @ validate(params["block"]["w"], (x.shape[-1], 6), _uniform)


@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey], ids=["typed", "raw"])
def test_a_default_key_draws_each_leaf_with_threefry4x32_from_its_folded_key(make_key: Any) -> None:
    key = make_key(3)
    params = trace(_one_uniform_leaf, key, jnp.ones((2, 5)))
    k = leaf_key(key, np.uint32(path_hash(("block", "w"))))
    assert str(jax.random.key_impl(k)) == "threefry4x32"
    folded = jax.random.fold_in(key, path_hash(("block", "w")))
    np.testing.assert_array_equal(jax.random.key_data(k), jax.random.key_data(jax.random.split(folded)).ravel())
    np.testing.assert_array_equal(params["block"]["w"], _uniform(k, (5, 6), jnp.float32))


def test_a_key_of_another_generator_is_used_as_it_is() -> None:
    key = jax.random.key(3, impl="rbg")
    params = trace(_one_uniform_leaf, key, jnp.ones((2, 5)))
    folded = jax.random.fold_in(key, path_hash(("block", "w")))
    np.testing.assert_array_equal(params["block"]["w"], _uniform(folded, (5, 6), jnp.float32))


def test_stacked_leaves_are_each_layer_drawn_from_its_split_key() -> None:
    deep = stack(nets.linear(_, _, 4), 3)
    x = jnp.ones((2, 4))
    for key in (jax.random.key(1), jax.random.key(1, impl="rbg")):  # by vmap, by lax.map
        params = trace(deep, key, x)
        k = leaf_key(key, np.uint32(path_hash(("weights",))))
        layers = [default_initializer(layer_key, (4, 4), jnp.float32) for layer_key in jax.random.split(k, 3)]
        np.testing.assert_array_equal(params["weights"], jnp.stack(layers))


def test_stack_rejects_a_layer_that_changes_the_shape(key: jax.Array) -> None:
    with pytest.raises(ValueError, match=r"each layer must map x to the same shape"):
        trace(stack(nets.linear(_, _, 3), 2), key, jnp.ones((2, 4)))


def test_a_net_declaring_nothing_gives_empty_params(key: jax.Array) -> None:
    assert trace(lambda params, x: x * 2, key, jnp.ones(2)) == {}


@flexible
def _identity(params: Params, x: jax.Array) -> jax.Array:
    return x


def test_shape_dtype_structs_are_accepted_as_sample_inputs(key: jax.Array) -> None:
    params = trace(two_layers, key, abstract((3, 5)))
    assert shapes(params)["first"]["weights"] == (5, 4)
    assert trace(_identity, key, abstract((3,))) == {}


def test_a_warm_trace_skips_the_forward_but_not_the_initialization(key: jax.Array) -> None:
    from zephyr import clear_trace_cache

    runs: list[int] = []

    def counted(params: Params, x: jax.Array, width: int) -> jax.Array:
        runs.append(width)
        return nets.linear(params, x, width)

    x = jnp.ones((2, 3))
    first = trace(counted, key, x, 4)
    second = trace(counted, jax.random.key(1), x, 4)
    assert runs == [4]
    assert not np.array_equal(np.asarray(first["weights"]), np.asarray(second["weights"]))
    trace(counted, key, x, 5)  # another hyperparameter
    trace(counted, key, jnp.ones((2, 7)), 4)  # another input shape
    trace(counted, key, x.astype(jnp.bfloat16), 4)  # another dtype
    assert runs == [4, 5, 4, 4]
    clear_trace_cache()
    trace(counted, key, x, 4)
    assert runs == [4, 5, 4, 4, 4]


def test_a_holed_net_built_twice_is_recognised(key: jax.Array) -> None:
    from zephyr.core._cache import function_key

    assert function_key(nets.linear(_, _, 3)) == function_key(nets.linear(_, _, 3))
    assert function_key(nets.linear(_, _, 3)) != function_key(nets.linear(_, _, 4))
    assert function_key(nets.linear(jnp.ones(2), _, 3)) is None  # an array argument: no key


def test_changing_what_collect_specs_returned_does_not_change_the_cache(key: jax.Array) -> None:
    from zephyr import collect_specs

    x = jnp.ones((2, 3))
    (specs,) = collect_specs(two_layers, (x,), {})
    specs.clear()
    assert shapes(trace(two_layers, key, x))["first"]["weights"] == (3, 4)
