"""Run-time shape checking: on, it names the argument and dims; off, it costs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, TypedDict, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import Array
from jaxtyping import Float, TypeCheckError

from tests.typing.test_signature import typed_linear
from zephyr import nets, trace
from zephyr.typing._checking import CHECKING
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params, checking, is_checking
from zephyr.typing._checking import call_checked as real
from zephyr.typing._checking import signature_memo_key


def test_checking_is_a_switch_and_a_context_manager() -> None:
    outer = is_checking()
    with checking(False):
        assert checking() is False
        with checking(True):
            assert is_checking()
        assert not is_checking()
    assert is_checking() == outer


def test_a_wrong_argument_shape_names_the_argument_and_dims(key: jax.Array) -> None:
    params = trace(typed_linear, key, jnp.ones((2, 5)), 3)
    with checking(True), pytest.raises(TypeCheckError, match=r"(?s)Type-check error.*parameter 'x'.*i32\[2,5\]"):
        typed_linear(params, jnp.ones((2, 5), jnp.int32), 3)  # Float expected


def test_a_wrong_params_leaf_names_the_path_expected_dims_and_actual(key: jax.Array) -> None:
    params = trace(typed_linear, key, jnp.ones((2, 5)), 3)
    bad = {"weights": jnp.ones((5, 4)), "bias": params["bias"]}
    with checking(True), pytest.raises(ValueError, match=r"`typed_linear`: `params\['weights'\]`: expected shape \(5, 3\) \('d_in out_dim'\), got \(5, 4\)"):
        typed_linear(bad, jnp.ones((2, 5)), 3)


@flexible
def bad_return(params: Params, x: Float[Array, "b d"]) -> Float[Array, "b d"]:
    return x[:, :1]


def test_a_wrong_return_shape_is_reported(key: jax.Array) -> None:
    with checking(True), pytest.raises(TypeCheckError, match=r"(?s)return"):
        bad_return({}, jnp.ones((2, 3)))
    with checking(False):
        assert bad_return({}, jnp.ones((2, 3))).shape == (2, 1)


def test_missing_params_leaf_is_named(key: jax.Array) -> None:
    with checking(True), pytest.raises(ValueError, match=r"`typed_linear`: `params\['bias'\]` is missing \(keys at `params`: 'weights'\): the params do not match this model"):
        typed_linear({"weights": jnp.ones((5, 3))}, jnp.ones((2, 5)), 3)


def test_with_checking_off_a_bad_shape_reaches_jax(key: jax.Array) -> None:
    params = trace(typed_linear, key, jnp.ones((2, 5)), 3)
    with checking(False), pytest.raises(TypeError, match=r"dot_general requires contracting dimensions"):
        typed_linear(params, jnp.ones((2, 4)), 3)


def test_under_jit_the_check_runs_while_jit_traces(key: jax.Array) -> None:
    params = trace(nets.linear, key, jnp.ones((2, 5)), 3)
    calls: list[bool] = []

    def spy(p: Params, x: jax.Array) -> jax.Array:
        calls.append(CHECKING.get())
        return nets.linear(p, x, 3)

    with checking(True):
        jitted = jax.jit(spy)
        jitted(params, jnp.ones((2, 5)))
        jitted(params, jnp.ones((2, 5)))
        with pytest.raises(ValueError, match=r"expected shape \(4, 3\)"):
            jitted(params, jnp.ones((2, 4)))
    assert calls == [True, True]  # traced twice (two input shapes), never run in Python again


def test_the_environment_variable_turns_checking_on_at_import() -> None:
    code = "import zephyr.typing as t; print(t.is_checking())"
    env = {**os.environ, "ZEPHYR_TYPECHECK": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    env["ZEPHYR_TYPECHECK"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_checking_leaves_lambdas_and_unannotated_functions_working() -> None:
    from zephyr.functools.partial import placeholder_hole as _

    add = flexible(lambda a, b: a + b)

    def untyped(a, b):  # type: ignore[no-untyped-def]  # deliberately unannotated
        return a * b

    with checking(True):
        assert add(_, 1)(2) == 3
        assert flexible(untyped)(_, 3)(2) == 6


class _HiddenParams(TypedDict):
    hidden: Float[Array, "d_in width"]


@flexible
def _hidden(params: _HiddenParams, x: Float[Array, "b d_in"], width: int) -> Float[Array, "b width"]:
    return x @ params["hidden"]


def test_a_wrong_input_width_names_the_argument_that_bound_the_dim(key: jax.Array) -> None:
    params = trace(_hidden, key, jnp.ones((8, 3)), 32)
    expected = (
        r"`_hidden`: `params\['hidden'\]`: expected shape \(7, 32\) \('d_in width'\), got \(3, 32\): "
        r"`x` \(8, 7\) binds d_in=7; `width=32` binds width=32"
    )
    with checking(True), pytest.raises(ValueError, match=expected):
        _hidden(params, jnp.ones((8, 7)), 32)


def test_a_non_int_where_a_dim_binds_names_the_argument(key: jax.Array) -> None:
    expected = r"argument `width` binds dim `width`: expected an int, got '32'"
    with pytest.raises(ValueError, match=expected):
        trace(_hidden, key, jnp.ones((8, 3)), "32")  # type: ignore[call-overload]  # the mistake under test


def test_checking_is_per_thread_and_a_new_thread_starts_from_the_default() -> None:
    default = CHECKING.get()
    results: list[bool] = []
    token = CHECKING.set(not default)
    try:
        checking(not default)  # the plain call: this thread only
        thread = threading.Thread(target=lambda: results.append(is_checking()))
        thread.start()
        thread.join()
        assert checking() is (not default)
    finally:
        CHECKING.reset(token)
    assert results == [default]  # another thread keeps the process default
    assert checking() is default


def test_a_thread_inherits_the_setting_through_copy_context() -> None:
    import contextvars

    seen: list[bool] = []
    with checking(False):
        context = contextvars.copy_context()
    with checking(True):
        thread = threading.Thread(target=lambda: seen.append(context.run(is_checking)))
        thread.start()
        thread.join()
    assert seen == [False]


def test_overlapping_checking_blocks_in_threads_never_change_each_other() -> None:
    default = is_checking()
    wrong: list[tuple[str, bool]] = []
    stop = threading.Event()
    barrier = threading.Barrier(4)

    def toggler(enabled: bool) -> None:
        barrier.wait()
        for _i in range(400):
            with checking(enabled):
                if is_checking() is not enabled:
                    wrong.append(("inside", enabled))
            if is_checking() is not default:
                wrong.append(("after", enabled))

    def reader() -> None:
        barrier.wait()
        while not stop.is_set():
            if is_checking() is not default:
                wrong.append(("reader", default))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows if there is one
    try:
        for _run in range(5):
            threads = [threading.Thread(target=toggler, args=(e,)) for e in (True, False, True)]
            watcher = threading.Thread(target=reader)
            for t in (*threads, watcher):
                t.start()
            for t in threads:
                t.join()
            stop.set()
            watcher.join()
            stop.clear()
            after: list[bool] = []
            fresh = threading.Thread(target=lambda: after.append(is_checking()))
            fresh.start()
            fresh.join()
            assert after == [default]
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []
    assert is_checking() is default


def test_checking_in_an_asyncio_task_stays_in_the_task() -> None:
    import asyncio

    async def flip() -> bool:
        checking(not default)
        await asyncio.sleep(0)
        return is_checking()

    async def main() -> tuple[bool, bool]:
        inside = await asyncio.create_task(flip())
        return inside, is_checking()

    default = is_checking()
    assert asyncio.run(main()) == (not default, default)


def test_nets_inside_a_checked_net_are_checked_with_it_once_per_signature(key: jax.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(fn: object, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        calls.append(getattr(fn, "__name__", "?"))
        return real(fn, args, kwargs)  # type: ignore[arg-type]

    import weakref

    import zephyr.typing._checking as checking_module

    monkeypatch.setattr("zephyr._flexible.call_checked", counting)
    monkeypatch.setattr(checking_module, "_PASSED", weakref.WeakKeyDictionary())  # no signature passed yet
    x = jnp.ones((2, 4))
    params = trace(nets.mlp(_, _, [8, 8, 3]), key, x)
    with checking(True):
        nets.mlp(params, x, [8, 8, 3])  # a new signature: mlp and the layers it calls are checked
        assert calls == ["mlp", "linear", "linear", "linear"]
        nets.mlp(params, x, [8, 8, 3])  # passed before: one lookup, the layers are not checked again
    assert calls == ["mlp", "linear", "linear", "linear", "mlp"]


def test_a_call_signature_is_checked_once_as_under_jit(key: jax.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    import zephyr.typing._checking as checking_module

    checked: list[tuple[int, ...]] = []
    made = checking_module._checked  # pyright: ignore[reportPrivateUsage]  # the check itself, counted

    def counting(fn: object, layout: object) -> object:
        wrapped = made(fn, layout)  # type: ignore[arg-type]

        def run(*args: object, **kwargs: object) -> object:
            checked.append(tuple(getattr(args[1], "shape", ())))
            return wrapped(*args, **kwargs)

        return run

    monkeypatch.setattr(checking_module, "_checked", counting)
    params = trace(typed_linear, key, jnp.ones((2, 5)), 3)
    with checking(True):
        for _i in range(3):
            typed_linear(params, jnp.ones((2, 5)), 3)  # one signature: one check
        typed_linear(params, jnp.full((2, 5), 7.0), 3)  # other values, same signature
        typed_linear(params, jnp.ones((4, 5)), 3)  # another shape: checked
        with pytest.raises(TypeCheckError, match=r"(?s)parameter 'x'"):
            typed_linear(params, jnp.ones((4, 5), jnp.int32), 3)  # another dtype: checked, and wrong
        with pytest.raises(TypeCheckError, match=r"(?s)parameter 'x'"):
            typed_linear(params, jnp.ones((4, 5), jnp.int32), 3)  # a failed check is not remembered
        with pytest.raises(ValueError, match=r"params\['weights'\]"):
            typed_linear(params, jnp.ones((2, 6)), 3)  # the params no longer fit: checked
    assert checked == [(2, 5), (4, 5), (4, 5), (4, 5)]


def test_call_keys_tell_what_a_check_depends_on() -> None:
    from typing import NamedTuple

    x = jnp.ones((2, 3))
    assert signature_memo_key(({"w": x}, [8, 3])) == signature_memo_key(({"w": jnp.zeros((2, 3))}, [8, 3]))
    assert signature_memo_key(({"w": x},)) != signature_memo_key(({"v": x},))  # structure
    assert signature_memo_key((x,)) != signature_memo_key((x.astype(jnp.int32),))  # dtype
    assert signature_memo_key((x, 3)) != signature_memo_key((x, True))  # type of a plain value
    assert signature_memo_key({"use_bias": True}) != signature_memo_key({"use_bias": False})
    assert signature_memo_key((jax.nn.relu,)) == signature_memo_key((jax.nn.relu,))
    assert signature_memo_key((object(),)) is None  # unknown: always checked

    class Pair(NamedTuple):
        a: jax.Array
        b: jax.Array

    assert signature_memo_key((Pair(x, x),)) is None  # a pytree class of its own


def test_call_keys_tell_one_leaf_of_another_dtype_or_shape_and_where_items_end() -> None:
    x = jnp.ones((2, 3))
    params = {0: {"weights": x, "bias": jnp.ones((3,))}, 1: {"weights": x, "bias": jnp.ones((3,))}}
    same = {0: {"weights": jnp.zeros((2, 3)), "bias": jnp.zeros((3,))}, 1: {"weights": x, "bias": jnp.ones((3,))}}
    other_dtype = {0: params[0], 1: {"weights": x, "bias": jnp.ones((3,), jnp.bfloat16)}}
    other_shape = {0: params[0], 1: {"weights": x, "bias": jnp.ones((4,))}}
    assert signature_memo_key((params, x)) == signature_memo_key((same, x))
    assert signature_memo_key((params, x)) != signature_memo_key((other_dtype, x))
    assert signature_memo_key((params, x)) != signature_memo_key((other_shape, x))
    assert signature_memo_key((params, x)) != signature_memo_key((params, np.ones((2, 3), np.float32)))  # jax vs numpy
    # Each container's length is in the key: items cannot move from one argument to the next.
    assert signature_memo_key([1, 2], [3]) != signature_memo_key([1], [2, 3])
    assert signature_memo_key([[1], 2]) != signature_memo_key([[1, 2]])
    assert signature_memo_key({"a": {"b": 1}, "c": 2}) != signature_memo_key({"a": {"b": 1, "c": 2}})
    assert signature_memo_key(([1], 2), {}) != signature_memo_key(([1, 2],), {})  # a call's (args, kwargs)
    assert signature_memo_key(([1],)) != signature_memo_key(((1,),))  # list or tuple
    assert signature_memo_key({1: x}) != signature_memo_key({"1": x})  # a dict's names: str and int apart
    assert signature_memo_key({True: x}) is None and signature_memo_key({(0, 1): x}) is None  # other names: always checked
    assert signature_memo_key((np.float32(1.0),)) is None  # a numpy scalar: always checked
    assert signature_memo_key((jnp.float32,)) is None  # a scalar type: always checked
    assert signature_memo_key((np.dtype("float32"),)) != signature_memo_key((np.dtype("int32"),))


def test_a_params_leaf_of_another_shape_or_dtype_is_checked_again_and_fails(key: jax.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    import zephyr.typing._checking as checking_module

    checked: list[str] = []
    made = checking_module._checked  # pyright: ignore[reportPrivateUsage]  # the check itself, counted

    def counting(fn: object, layout: object) -> object:
        checked.append(getattr(fn, "__name__", "?"))
        return made(fn, layout)  # type: ignore[arg-type]

    monkeypatch.setattr(checking_module, "_checked", counting)
    monkeypatch.setattr(checking_module, "_PASSED", weakref.WeakKeyDictionary())  # no signature passed yet
    x = jnp.ones((2, 4))
    params = trace(nets.mlp(_, _, [8, 3]), key, x)
    wide_bias = {0: params[0], 1: {"weights": params[1]["weights"], "bias": jnp.zeros((4,))}}
    int_weights = {0: params[0], 1: {"weights": cast(Array, params[1]["weights"]).astype(jnp.int32), "bias": params[1]["bias"]}}
    with checking(True):
        nets.mlp(params, x, [8, 3])
        nets.mlp(params, x, [8, 3])  # the same signature: not checked again
        assert checked == ["mlp", "linear", "linear"]  # the mlp and its two layers
        with pytest.raises(ValueError, match=r"`params\['bias'\]` \(in `linear`.*expected shape \(3,\), got \(4,\)"):
            nets.mlp(wide_bias, x, [8, 3])  # one leaf of another shape: checked again
        assert checked == ["mlp", "linear", "linear", "mlp", "linear"]  # layer 0 passed before
        for _i in range(2):  # one leaf of another dtype: checked again; a failed check is not remembered
            with pytest.raises(TypeError, match=r"linear: `params\['weights'\]` must be a float array"):
                nets.mlp(int_weights, x, [8, 3])
        assert checked == ["mlp", "linear", "linear", "mlp", "linear", *["mlp", "linear"] * 2]
        nets.mlp(params, x, [8, 3])
        assert len(checked) == 9


def test_a_nets_argument_checks_run_once_per_signature_with_checking_on(key: jax.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapped = getattr(nets.linear, "__wrapped__")
    check = wrapped.__zephyr_check__
    seen: list[object] = []

    def counting(*args: object, **kwargs: object) -> None:
        seen.append(args[2])
        check(*args, **kwargs)

    import weakref

    import zephyr.typing._checking as checking_module

    x = jnp.ones((2, 4))
    params = trace(nets.linear(_, _, 3), key, x)  # before counting: trace runs the check too (or is cached)
    monkeypatch.setattr(wrapped, "__zephyr_check__", counting)
    monkeypatch.setattr(checking_module, "_PASSED", weakref.WeakKeyDictionary())  # no signature passed yet
    with checking(True):
        for _i in range(3):
            nets.linear(params, x, 3)
        assert seen == [3]
        not_a_bool: Any = "no"
        for _i in range(2):  # a new plain value: checked, and a failed check is not remembered
            with pytest.raises(TypeError, match=r"linear: `use_bias` must be True or False, got 'no'"):
                nets.linear(params, x, 3, not_a_bool)
        assert seen == [3, 3, 3]


@flexible
def shifted(params: Params, x: Float[Array, " n"], by: int) -> Float[Array, " n"]:
    return x + by


def test_a_function_keeps_its_last_256_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    import zephyr.typing._checking as checking_module

    checked: list[int] = []
    made = checking_module._checked  # pyright: ignore[reportPrivateUsage]  # the check itself, counted

    def counting(fn: object, layout: object) -> object:
        wrapped = made(fn, layout)  # type: ignore[arg-type]

        def run(*args: object, **kwargs: object) -> object:
            checked.append(cast(int, args[2]))
            return wrapped(*args, **kwargs)

        return run

    monkeypatch.setattr(checking_module, "_checked", counting)
    x = jnp.ones((2,))
    with checking(True):
        for by in range(300):
            shifted({}, x, by)
        assert checked == list(range(300))
        shifted({}, x, 299)  # among the last 256: not checked again
        shifted({}, x, 0)  # forgotten: checked again
    assert checked == [*range(300), 0]
    assert len(checking_module._PASSED[getattr(shifted, "__wrapped__")]) == 256  # pyright: ignore[reportPrivateUsage]


class _DenseParams(TypedDict):
    weights: Float[Array, "d_in out_dim"]
    bias: Float[Array, " out_dim"]


@flexible
def _dense(params: _DenseParams, x: Float[Array, "*b d_in"], out_dim: int) -> Float[Array, "*b out_dim"]:
    return x @ params["weights"] + jnp.broadcast_to(params["bias"], (*x.shape[:-1], params["bias"].shape[0]))


@flexible
def _outer(params: Params, x: Float[Array, "*b d"]) -> Float[Array, "*b 5"]:
    return _dense(params["inner"], x, 5)


def test_a_user_net_inside_a_user_net_is_checked(key: jax.Array) -> None:
    params = trace(_outer, key, jnp.ones((2, 3)))
    with checking(True), pytest.raises(ValueError, match=r"`_dense` \(in `_outer`\): `params\['inner'\]\['weights'\]`: expected shape \(7, 5\) \('d_in out_dim'\), got \(3, 5\)"):
        _outer(params, jnp.ones((2, 7)))
    with checking(True):
        assert _outer(params, jnp.ones((2, 3))).shape == (2, 5)


def test_a_user_net_inside_a_net_that_passed_is_not_checked_again(key: jax.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    import zephyr.typing._checking as checking_module

    calls: list[str] = []

    def counting(fn: object, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        calls.append(getattr(fn, "__name__", "?"))
        return real(fn, args, kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("zephyr._flexible.call_checked", counting)
    monkeypatch.setattr(checking_module, "_PASSED", weakref.WeakKeyDictionary())
    params = trace(_outer, key, jnp.ones((2, 3)))
    with checking(True):
        for _i in range(3):
            _outer(params, jnp.ones((2, 3)))
    assert calls == ["_outer", "_dense", "_outer", "_outer"]


# Params that do not match the model: full paths, the net, with checking on.


class _BlockParams(TypedDict):
    dense: _DenseParams
    scale: Float[Array, " out_dim"]


@flexible
def _block(params: _BlockParams, x: Float[Array, "*b d_in"], out_dim: int) -> Float[Array, "*b out_dim"]:
    y = _dense(params["dense"], x, out_dim)
    return y * jnp.broadcast_to(params["scale"], y.shape)


def _dense_params(key: jax.Array) -> dict[str, Any]:
    return cast("dict[str, Any]", trace(_dense, key, jnp.ones((2, 3)), 5))


def test_an_extra_leaf_is_named_with_checking_on(key: jax.Array) -> None:
    params: Any = {**_dense_params(key), "extra": jnp.ones(3)}
    expected = (
        r"`_dense`: `params\['extra'\]` is not in the params annotation `_DenseParams` \(its keys: 'weights', 'bias'; "
        r"extra key at `params`: 'extra'\): the params do not match this model"
    )
    with checking(True), pytest.raises(ValueError, match=expected):
        _dense(params, jnp.ones((2, 3)), 5)


def test_an_extra_leaf_of_a_library_net_is_named_with_checking_on(key: jax.Array) -> None:
    linear: Any = trace(nets.linear(_, _, 5), key, jnp.ones((2, 3)))
    params = {**linear, "scale": jnp.ones(5)}
    with checking(True), pytest.raises(ValueError, match=r"`linear`: `params\['scale'\]` is not in the params annotation `LinearParams`"):
        nets.linear(params, jnp.ones((2, 3)), 5)


def test_an_extra_leaf_in_an_mlp_layer_names_the_layer_and_the_mlp(key: jax.Array) -> None:
    params: Any = trace(nets.mlp(_, _, [8, 3]), key, jnp.ones((2, 4)))
    params[1] = {**params[1], "gain": jnp.ones(3)}
    with checking(True), pytest.raises(ValueError, match=r"`linear` \(in `mlp`\): `params\[1\]\['gain'\]` is not in the params annotation `LinearParams`"):
        nets.mlp(params, jnp.ones((2, 4)), [8, 3])


def test_an_extra_leaf_in_a_nested_typed_level_is_named(key: jax.Array) -> None:
    params: Any = trace(_block, key, jnp.ones((2, 3)), 5)
    params["dense"] = {**params["dense"], "gain": jnp.ones(5)}
    with checking(True), pytest.raises(ValueError, match=r"`_block`: `params\['dense'\]\['gain'\]` is not in the params annotation `_DenseParams` \(its keys: 'weights', 'bias'; extra key at `params\['dense'\]`: 'gain'\)"):
        _block(params, jnp.ones((2, 3)), 5)


def test_extra_leaves_stay_silent_where_documented(key: jax.Array) -> None:
    params: Any = {**_dense_params(key), "extra": jnp.ones(3)}
    with checking(False):  # off: no check at all
        assert _dense(params, jnp.ones((2, 3)), 5).shape == (2, 5)
    traced: Any = trace(nets.mlp(_, _, [8, 3]), key, jnp.ones((2, 4)))
    mlp_params = {**traced, 7: {"weights": jnp.ones((3, 3))}}
    with checking(True):  # mlp's layers are not a TypedDict level: an extra layer is not seen
        assert nets.mlp(mlp_params, jnp.ones((2, 4)), [8, 3]).shape == (2, 3)


def test_a_missing_required_leaf_of_a_nested_net_names_the_full_path(key: jax.Array) -> None:
    params: Any = trace(_outer, key, jnp.ones((2, 3)))
    params["inner"] = {"weights": params["inner"]["weights"]}
    expected = r"`_dense` \(in `_outer`\): `params\['inner'\]\['bias'\]` is missing \(keys at `params\['inner'\]`: 'weights'\)"
    with checking(True), pytest.raises(ValueError, match=expected):
        _outer(params, jnp.ones((2, 3)))


def test_a_subtree_where_a_leaf_is_declared_is_named(key: jax.Array) -> None:
    params: Any = _dense_params(key)
    params["weights"] = {"w": params["weights"]}
    expected = r"`_dense`: `params\['weights'\]` must be an array \(`_DenseParams` declares a leaf\), got a subtree \(keys 'w'\)"
    with checking(True), pytest.raises(TypeError, match=expected):
        _dense(params, jnp.ones((2, 3)), 5)


def test_a_leaf_where_a_subtree_is_declared_is_named_with_its_path(key: jax.Array) -> None:
    params: Any = trace(_outer, key, jnp.ones((2, 3)))
    params["inner"] = jnp.ones((3, 5))
    expected = r"`_dense` \(in `_outer`\): `params\['inner'\]` must be a subtree \(`_DenseParams`: keys 'weights', 'bias'\), got an array of shape \(3, 5\)"
    with checking(True), pytest.raises(TypeError, match=expected):
        _outer(params, jnp.ones((2, 3)))
    block: Any = trace(_block, key, jnp.ones((2, 3)), 5)
    block["dense"] = jnp.ones((3, 5))
    with checking(True), pytest.raises(TypeError, match=r"`_block`: `params\['dense'\]` must be a subtree \(`_DenseParams`"):
        _block(block, jnp.ones((2, 3)), 5)


def test_a_leaf_where_a_subtree_is_expected_is_named_with_checking_off(key: jax.Array) -> None:
    params: Any = trace(_outer, key, jnp.ones((2, 3)))
    params["inner"] = jnp.ones((3, 5))
    expected = r"`_dense`: its params `params\['inner'\]` is a leaf \(an array of shape \(3, 5\)\), and `_dense` indexes it like a subtree"
    with checking(False), pytest.raises(TypeError, match=expected):
        _outer(params, jnp.ones((2, 3)))


class _LeafParams(TypedDict):
    inner: Float[Array, "d 5"]


@flexible
def _leaf_then_net(params: _LeafParams, x: Float[Array, "b d"]) -> Float[Array, "b 5"]:
    return _dense(params["inner"], x, 5)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_leaf_declared_by_an_annotation_and_passed_to_a_net_is_named_during_trace(key: jax.Array, enabled: bool) -> None:
    with checking(enabled), pytest.raises(TypeError, match=r"`params\['inner'\]` is declared as a leaf \(an array of shape \(3, 5\)\)"):
        trace(_leaf_then_net, key, jnp.ones((2, 3)))


# The checked copies: nothing kept alive; partials, methods and callable objects.


def test_a_recursive_closure_is_freed_after_a_checked_call() -> None:
    import gc
    import weakref

    def make() -> Any:
        @flexible
        def countdown(params: Params, x: Float[Array, " n"], depth: int) -> Float[Array, " n"]:
            return x if depth == 0 else countdown(params, x, depth - 1)

        return countdown

    net = make()
    with checking(True):
        net({}, jnp.ones(3), 2)
    gone = weakref.ref(net.__wrapped__)
    del net
    gc.collect()
    assert gone() is None


def test_a_flexible_bound_method_and_its_object_are_freed_after_a_checked_call() -> None:
    import gc
    import weakref

    class Model:
        def apply(self, params: Params, x: Float[Array, " n"]) -> Float[Array, " n"]:
            return x * 2

    model = Model()
    net = flexible(model.apply)
    with checking(True):
        assert net({}, jnp.ones(3)).shape == (3,)
    gone = weakref.ref(model)
    del model, net
    gc.collect()
    assert gone() is None


def _dense_plain(params: _DenseParams, x: Float[Array, "*b d_in"], out_dim: int) -> Float[Array, "*b out_dim"]:
    return x @ params["weights"] + jnp.broadcast_to(params["bias"], (*x.shape[:-1], params["bias"].shape[0]))


class _DenseObject:
    def __call__(self, params: _DenseParams, x: Float[Array, "*b d_in"], out_dim: int) -> Float[Array, "*b out_dim"]:
        return _dense_plain(params, x, out_dim)


def test_a_flexible_partial_traces_and_is_checked(key: jax.Array) -> None:
    import functools

    net = flexible(functools.partial(_dense_plain, out_dim=5))
    params = trace(net, key, jnp.ones((2, 3)))
    assert jax.tree.map(jnp.shape, params) == {"bias": (5,), "weights": (3, 5)}
    with checking(True):
        assert net(params, jnp.ones((2, 3))).shape == (2, 5)
        with pytest.raises(ValueError, match=r"`_dense_plain`: `params\['weights'\]`: expected shape \(4, 5\)"):
            net(params, jnp.ones((2, 4)))
        with pytest.raises(TypeCheckError, match=r"(?s)parameter 'x'"):
            net(params, jnp.ones((2, 3), jnp.int32))


def test_a_flexible_callable_object_traces_and_is_checked(key: jax.Array) -> None:
    net = flexible(_DenseObject())
    params = trace(net, key, jnp.ones((2, 3)), 5)
    assert jax.tree.map(jnp.shape, params) == {"bias": (5,), "weights": (3, 5)}
    with checking(True):
        assert net(params, jnp.ones((2, 3)), 5).shape == (2, 5)
        with pytest.raises(TypeCheckError, match=r"(?s)parameter 'x'"):
            net(params, jnp.ones((2, 3), jnp.int32), 5)


def test_a_flexible_bound_method_traces_and_is_checked(key: jax.Array) -> None:
    net = flexible(_DenseObject().__call__)
    params = trace(net, key, jnp.ones((2, 3)), 5)
    with checking(True), pytest.raises(ValueError, match=r"`__call__`: `params\['weights'\]`: expected shape \(4, 5\)"):
        net(params, jnp.ones((2, 4)), 5)


def test_a_checked_copy_carried_over_by_functools_wraps_is_not_reused() -> None:
    import functools

    def first(params: Params, x: Float[Array, " n"]) -> Float[Array, " n"]:
        return x + 1

    with checking(True):
        flexible(first)({}, jnp.ones(2))

    @functools.wraps(first)  # copies first.__dict__, the checked copy of first among it
    def second(params: Params, x: Float[Array, " n"]) -> Float[Array, " n"]:
        return x * 10

    with checking(True):
        assert flexible(second)({}, jnp.ones(2)).tolist() == [10.0, 10.0]
