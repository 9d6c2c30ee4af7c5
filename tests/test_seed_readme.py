"""Every example of the original README, corrected only where it was broken, runs.

Corrections (each marked ``# seed fix`` below):
- the decoder used ``x`` before it existed: it starts from ``z``;
- ``validate`` was not imported;
- ``multi_head_self_attention(params, x, 64, 5)`` passed ``masks=5``: now ``(params, x, 64)``;
- ``max_pool(params, x, (3, 3), 2)`` on ``(batch, length, channels)`` would pool the batch axis:
  a 1-D window ``(3,)`` (pools never touch the channel axis);
- ``trace(model, key)`` had no sample input: ``trace(model, key, x)``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax import Array, jit, nn, random
from jax import numpy as jnp

from zephyr import nets, trace
from zephyr import validate  # seed fix: used below, never imported
from zephyr.functools.composition import thread_key, thread_params
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.nets import chain
from zephyr.typing import Params


def shapes(tree: object) -> Any:
    return jax.tree.map(jnp.shape, tree)


# --- Encoder and decoder -------------------------------------------------------------


@flexible
def encoder_steps(params: Params, x: Array) -> Array:
    x = nets.mlp(params["mlp"], x, [256, 256, 256])  # b 256
    x = nets.layer_norm(params["ln"], x, -1)
    x = nets.branch_linear(params["br"], x, 64)  # b 64 256

    for i in range(3):
        x = nets.conv_1d(params["conv"][i], x, 64, 5)
        x = nn.relu(x)
        x = nets.max_pool(params, x, (3,), 2)  # seed fix: (3, 3) -> (3,)

    x = jnp.reshape(x, [x.shape[0], -1])  # b 512
    x = nets.linear(params["linear"], x, 4)  # b 4
    return x


@flexible
def encoder_chain(params: Params, x: Array) -> Array:
    return chain(
        [
            nets.mlp(params["mlp"], _, [256, 256, 256]),
            nets.layer_norm(params["ln"], _, -1),
            nets.branch_linear(params["br"], _, 64),
            *[
                chain(
                    [
                        nets.conv_1d(params["conv"][i], _, 64, 5),
                        nn.relu,
                        nets.max_pool(params, _, (3,), 2),  # seed fix: (3, 3) -> (3,)
                    ]
                )
                for i in range(3)
            ],
            lambda x: jnp.reshape(x, [x.shape[0], -1]),
            nets.linear(params["linear"], _, 4),
        ]
    )(x)


@flexible
def decoder_steps(params: Params, z: Array) -> Array:
    x = nets.mlp(params["mlp"], z, [256, 256, 256])  # seed fix: starts from z
    x = nets.branch_linear(params["br"], x, 64)  # b 64 256

    for i in range(3):
        x = nets.multi_head_self_attention(params["mha"][i], x, 64)  # seed fix: no masks=5
        x = x + nets.mlp(params["attn_mlp"][i], x, [256, 256])
        x = nets.layer_norm(params["attn_ln"][i], x, -1)

    x = jnp.reshape(x, [x.shape[0], -1])  # b (64 * 256) = b 16384
    x = nets.linear(params["linear"], x, 128)  # b 128
    return x


@flexible
def decoder_chain(params: Params, z: Array) -> Array:
    return chain(
        [
            nets.mlp(params["mlp"], _, [256, 256, 256]),
            nets.branch_linear(params["br"], _, 64),
            *[
                chain(
                    [
                        nets.multi_head_self_attention(params["mha"][i], _, 64),  # seed fix
                        nets.skip(nets.mlp(params["attn_mlp"][i], _, [256, 256])),
                        nets.layer_norm(params["attn_ln"][i], _, -1),
                    ]
                )
                for i in range(3)
            ],
            lambda x: jnp.reshape(x, [x.shape[0], -1]),
            nets.linear(params["linear"], _, 128),  # b 128
        ]
    )(z)  # seed fix: applied to z


def model_steps(params: Params, x: Array) -> Array:
    z = encoder_steps(params["encoder"], x)
    reconstructed_x = decoder_steps(params["decoder"], z)
    return reconstructed_x


def model_chain(params: Params, x: Array) -> Array:
    return chain(
        [
            encoder_chain(params["encoder"], _),
            decoder_chain(params["decoder"], _),
        ]
    )(x)


EXPECTED_ENCODER = {
    "br": {"bias": (16384,), "weights": (256, 16384)},
    "conv": {
        0: {"bias": (64,), "weights": (5, 256, 64)},
        1: {"bias": (64,), "weights": (5, 64, 64)},
        2: {"bias": (64,), "weights": (5, 64, 64)},
    },
    "linear": {"bias": (4,), "weights": (512, 4)},
    "ln": {"offset": (256,), "scale": (256,)},
    "mlp": {
        0: {"bias": (256,), "weights": (8, 256)},
        1: {"bias": (256,), "weights": (256, 256)},
        2: {"bias": (256,), "weights": (256, 256)},
    },
}


def test_encoder_decoder_model_traces_and_runs_in_both_styles() -> None:
    key = random.PRNGKey(0)  # needed to randomly initialize weights
    x = jnp.ones([64, 8])  # sample input batch

    params = trace(model_steps, key, x)  # seed fix: the sample input
    assert shapes(params["encoder"]) == EXPECTED_ENCODER
    decoder = shapes(params["decoder"])
    assert decoder["linear"] == {"bias": (128,), "weights": (16384, 128)}
    assert sorted(decoder["mha"]) == [0, 1, 2] and sorted(decoder["attn_ln"]) == [0, 1, 2]
    assert decoder["attn_mlp"][2] == {
        0: {"bias": (256,), "weights": (256, 256)},
        1: {"bias": (256,), "weights": (256, 256)},
    }

    chained = trace(model_chain, key, x)
    assert shapes(chained) == shapes(params)
    for a, b in zip(jax.tree.leaves(chained), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    fast_model = jit(model_steps)
    sample_outputs = fast_model(params, x)
    assert sample_outputs.shape == (64, 128)
    np.testing.assert_allclose(sample_outputs, model_chain(params, x), rtol=2e-4, atol=2e-4)

    z = encoder_steps(params["encoder"], x)  # model surgery: just the encoder
    assert z.shape == (64, 4)


# --- Making your own parameters ------------------------------------------------------


# The seed's code as written: untyped params (Any) and implicit rank promotion (JAX's
# default; these tests otherwise run with rank promotion set to "raise").


@flexible
def linear(params: Any, x: Any, out_target: int) -> Any:
    validate(params["weights"], (x.shape[-1], out_target))
    validate(params["bias"], (out_target,))
    x = x @ params["weights"] + params["bias"]
    return x


@flexible
def linear_where(params: Any, x: Any, out_target: int) -> Any:
    return (lambda w, b: x @ w + b)(
        validate(params["weights"], (x.shape[-1], out_target)),
        validate(params["bias"], (out_target,)),
    )


def test_custom_linear_in_both_styles() -> None:
    with jax.numpy_rank_promotion("allow"):
        custom_linear_in_both_styles()


def custom_linear_in_both_styles() -> None:
    key = random.PRNGKey(0)
    x = jnp.ones([64, 8])
    for layer in (linear, linear_where):
        model = layer(_, _, 256)
        params = trace(model, key, x)
        assert shapes(params) == {"bias": (256,), "weights": (8, 256)}
        y = model(params, x)
        assert y.shape == (64, 256)
        fast_model = jit(model)
        np.testing.assert_allclose(fast_model(params, x), y, rtol=1e-5, atol=1e-5)


# --- Dealing with random keys --------------------------------------------------------


def dropout_model(params: Params, x: Array, key: Array) -> Array:
    for i in range(3):
        x = nets.mlp(params["mlp"][i], x, [256, 256])
        key, subkey = random.split(key)
        x = nets.dropout(params, subkey, x, 0.2)
    x = nn.sigmoid(x)
    return x


def block(params: Params, key: Array, x: Array) -> Array:
    return chain(
        [
            nets.mlp(params["mlp"], _, [256, 256]),
            nets.dropout(params, key, _, 0.2),
        ]
    )(x)


def threaded_model(params: Params, x: Array, key: Array) -> Array:
    blocks = thread_params([block for _i in range(3)], params)  # each block is block(key, x)
    blocks = thread_key(blocks, key)  # each block is block(x)

    return chain(blocks + [nn.relu])(x)


def test_dropout_models_with_explicit_and_threaded_keys() -> None:
    key = random.PRNGKey(0)
    x = jnp.ones([64, 8])
    trace_key, apply_key_1, apply_key_2, key = random.split(key, 4)  # split the keys ;p

    for model in (dropout_model, threaded_model):
        params = trace(model, trace_key, x, apply_key_1)
        y = model(params, x, apply_key_2)  # use it like this
        assert y.shape == (64, 256)
        fast_model = jit(model)
        np.testing.assert_allclose(fast_model(params, x, apply_key_2), y, rtol=1e-5, atol=1e-5)
        # dropout zeroes some units: another key gives another output
        assert not np.allclose(np.asarray(model(params, x, apply_key_1)), np.asarray(y))

    params = trace(threaded_model, trace_key, x, apply_key_1)
    assert sorted(shapes(params)) == [0, 1, 2]
    assert shapes(params[0]["mlp"]) == {
        0: {"bias": (256,), "weights": (8, 256)},
        1: {"bias": (256,), "weights": (256, 256)},
    }
