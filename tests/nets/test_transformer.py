"""transformer_block and transformer: a hand-written reference, scan == loop, remat, causality."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.nets._random import close as _close
from tests.nets._random import normal as _normal
from tests.nets._random import perturb as _randomize
from zephyr import nets, trace, validate
from zephyr.functools.partial import placeholder_hole as _
from tests.utils import leaf, shapes
from zephyr.typing import Params, checking





def _grad(f: Callable[[Params], jax.Array], params: Params) -> Params:
    return cast(Params, jax.grad(f)(params))  # pyright: ignore[reportUnknownMemberType]  # partially unknown in jax's types


def _leaf(params: Params, *path: str | int) -> jax.Array:
    node = params
    for key in path:
        node = node[key]
    return validate(node, tuple(getattr(node, "shape")))


def _reference_block(params: Params, x: jax.Array, num_heads: int, hidden: int) -> jax.Array:
    """Pre-norm, written out: x + mha(ln(x)); then x + w2 gelu(w1 ln(x) + b1) + b2."""

    def ln(p: Params, h: jax.Array) -> jax.Array:
        mean = h.mean(-1, keepdims=True)
        var = ((h - mean) ** 2).mean(-1, keepdims=True)
        return (h - mean) / jnp.sqrt(var + 1e-5) * _leaf(p, "scale") + _leaf(p, "offset")

    x = x + nets.multi_head_self_attention(params["attention"], ln(params["attention_norm"], x), num_heads)
    h = ln(params["mlp_norm"], x)
    h = jax.nn.gelu(h @ _leaf(params, "mlp", 0, "weights") + _leaf(params, "mlp", 0, "bias"))
    assert _leaf(params, "mlp", 0, "weights").shape[-1] == hidden
    return x + h @ _leaf(params, "mlp", 1, "weights") + _leaf(params, "mlp", 1, "bias")


def test_transformer_block_matches_reference(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    net = nets.transformer_block(_, _, nets.block(2, nets.feed_forward(12)))
    params = _randomize(trace(net, key, x), key)
    with jax.numpy_rank_promotion("allow"):
        _close(net(params, x), _reference_block(params, x, 2, 12))


def test_mlp_dim_defaults_to_four_times_d(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = trace(nets.transformer(_, _, 3, 2), key, x)
    validate(params["layers"]["mlp"][0]["weights"], (3, 8, 32))
    validate(params["layers"]["attention"]["query"]["weights"], (3, 8, 8))
    validate(params["final_norm"]["scale"], (8,))


def _stack_layers(layers: Params, num_layers: int) -> Params:
    def stack(*leaves: jax.Array) -> jax.Array:
        return jnp.stack(leaves)

    stacked: Params = jax.tree.map(stack, *[layers[i] for i in range(num_layers)])
    return stacked


def _unstack_layers(stacked: Params, num_layers: int) -> dict[int, Params]:
    def layer(i: int) -> Params:
        def take(a: jax.Array) -> jax.Array:
            return a[i]

        result: Params = jax.tree.map(take, stacked)
        return result

    return {i: layer(i) for i in range(num_layers)}


def test_scan_and_loop_give_the_same_output(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    causal = nets.block(nets.attention(2, causal=True))
    looped = trace(nets.transformer(_, _, 3, causal, scan=False), key, x)
    assert sorted(looped["layers"]) == [0, 1, 2]
    stacked = {"layers": _stack_layers(looped["layers"], 3), "final_norm": looped["final_norm"]}
    y_loop = nets.transformer(looped, x, 3, causal, scan=False)
    y_scan = nets.transformer(stacked, x, 3, causal, scan=True)
    _close(y_loop, y_scan)
    # and the loop is thread_params over transformer_block, then the final norm
    h = x
    for i in range(3):
        h = nets.transformer_block(looped["layers"][i], h, causal)
    _close(nets.layer_norm(looped["final_norm"], h), y_loop)


def test_the_unrolled_loop_traces_one_block_and_declares_every_layer(key: jax.Array) -> None:
    calls: list[int] = []

    def counted_gelu(h: jax.Array) -> jax.Array:
        calls.append(1)
        return jax.nn.gelu(h)

    x = _normal(key, 1, (2, 5, 8))
    counted = nets.block(2, nets.feed_forward(None, counted_gelu))
    params = trace(nets.transformer(_, _, 4, counted, scan=False), key, x)
    assert len(calls) == 1  # one block traced for four layers

    def hand_loop(p: Params, x: jax.Array) -> jax.Array:  # the loop: blocks after the first are replayed
        for i in range(4):
            x = nets.transformer_block(p["layers"][i], x, counted)
        return nets.layer_norm(p["final_norm"], x)

    expected = trace(hand_loop, key, x)
    assert len(calls) == 2  # the hand-written loop runs one block too (zephyr.core._replay)
    assert shapes(params) == shapes(expected)
    jax.tree.map(np.testing.assert_array_equal, params, expected)
    first, last = leaf(params, "layers", 0, "mlp", 0, "weights"), leaf(params, "layers", 3, "mlp", 0, "weights")
    assert not np.array_equal(first, last)


def test_remat_gives_the_same_output_and_gradients(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = trace(nets.transformer(_, _, 2, 2), key, x)
    for scan in (True, False):
        if not scan:
            params = {"layers": _unstack_layers(params["layers"], 2), "final_norm": params["final_norm"]}

        def loss(p: Params, remat: bool, scan: bool = scan) -> jax.Array:
            return jnp.sum(nets.transformer(p, x, 2, 2, scan=scan, remat=remat) ** 2)

        _close(loss(params, True), loss(params, False))
        plain, rematted = _grad(lambda p: loss(p, False), params), _grad(lambda p: loss(p, True), params)
        for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(rematted)):
            _close(a, b, 1e-4)


def test_causal_transformer_output_at_t_ignores_later_inputs(key: jax.Array) -> None:
    x = _normal(key, 1, (1, 6, 8))
    net = nets.transformer(_, _, 2, nets.block(nets.attention(2, num_kv_heads=1, causal=True)))
    params = trace(net, key, x)
    y = net(params, x)
    changed = x.at[:, 3:].set(_normal(key, 2, (1, 3, 8)))
    _close(net(params, changed)[:, :3], y[:, :3])


def test_final_norm_false_has_no_final_norm_params(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    params = trace(nets.transformer(_, _, 1, 2, final_norm=False), key, x)
    assert sorted(params) == ["layers"]


def test_bad_input(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    with pytest.raises(ValueError, match=r"`num_heads` \(3\) must divide the model size"):
        trace(nets.transformer_block(_, _, 3), key, x)
    with pytest.raises(ValueError, match=r"transformer: `num_layers` must be a positive int, got 0"):
        trace(nets.transformer(_, _, 0, 2), key, x)
    with pytest.raises(ValueError, match=r"feed_forward: `hidden` must be a positive int or None, got 0"):
        nets.feed_forward(0)
    with pytest.raises(ValueError, match=r"transformer: a pattern of 2 blocks repeats a whole number of times: `num_layers` \(3\) must be a multiple of 2"):
        trace(nets.transformer(_, _, 3, (nets.block(2), nets.block(2))), key, x)
    with checking(False), pytest.raises(ValueError, match=r"transformer_block: `x` must have at least 2 axes"):
        trace(nets.transformer_block(_, _, 2), key, x[0, 0])


def _local_global_pattern() -> tuple[nets.Block, nets.Block]:
    def layer(window: int | None) -> nets.Block:
        on_logits = None if window is None else nets.sliding_window(window)
        return nets.block(nets.attention(2, causal=True, on_qk=nets.rotary(), on_logits=on_logits))

    return layer(2), layer(None)


def test_a_pattern_of_blocks_scanned_in_groups_equals_the_loop_of_its_layers(key: jax.Array) -> None:
    x = _normal(key, 1, (2, 5, 8))
    pattern = _local_global_pattern()
    stacked = _randomize(trace(nets.transformer(_, _, 4, pattern), key, x), key)
    assert sorted(stacked["layers"]) == [0, 1]  # one stacked tree per slot of the pattern
    validate(stacked["layers"][1]["attention"]["query"]["weights"], (2, 8, 8))  # 4 layers: 2 groups
    y = nets.transformer(stacked, x, 4, pattern)
    h = x
    for i in range(4):  # layer i: slot i % 2, group i // 2
        layer = jax.tree.map(lambda a, g=i // 2: a[g], stacked["layers"][i % 2])
        h = nets.transformer_block(layer, h, pattern[i % 2])
    _close(y, nets.layer_norm(stacked["final_norm"], h))
    looped = {"layers": {i: jax.tree.map(lambda a, g=i // 2: a[g], stacked["layers"][i % 2]) for i in range(4)}, "final_norm": stacked["final_norm"]}
    _close(nets.transformer(looped, x, 4, pattern, scan=False), y)
    # the local layers see a window: the pattern is not the global stack
    globals_only = (pattern[1], pattern[1])
    assert not np.allclose(np.asarray(nets.transformer(stacked, x, 4, globals_only)), np.asarray(y))
