"""The seed README's examples, written with annotations (checked, never run).

Nets that the seed called with other arguments are called as zephyr's nets are now:
``multi_head_self_attention(params, x, num_heads)``, ``max_pool(params, x, window, stride)``.
Holes in the user's own flexible functions (``encoder(params["encoder"], _)``) type only
through the user's own stubs (``python -m zephyr.typing.stubgen mypkg``): see
``test_typing_snippets.py::test_user_module_stubs``; here ``model`` calls them directly.
"""

# jax's own annotations leave parts of jnp.reshape and jax.jit unknown to pyright strict;
# this opt-out is for this file only (zephyr's own API is fully known).
# pyright: reportUnknownMemberType=false

from typing import cast

import jax
from jax import Array, nn, random
from jax import numpy as jnp

from zephyr import nets, trace, validate
from zephyr.functools.composition import thread_key, thread_params
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.nets import chain, skip
from zephyr.typing import Params


def flatten(x: Array) -> Array:
    return jnp.reshape(x, (x.shape[0], -1))


# Encoder and decoder, step by step and as one chain.
@flexible
def encoder(params: Params, x: Array) -> Array:
    x = nets.mlp(params["mlp"], x, [256, 256, 256])
    x = nets.layer_norm(params["ln"], x, -1)
    x = nets.branch_linear(params["br"], x, 64)
    for i in range(3):
        x = nets.conv_1d(params["conv"][i], x, 64, 5)
        x = nn.relu(x)
        x = nets.max_pool(params, x, 3, 2)
    x = jnp.reshape(x, (x.shape[0], -1))
    return nets.linear(params["linear"], x, 4)


@flexible
def encoder_chained(params: Params, x: Array) -> Array:
    return chain(
        [
            nets.mlp(params["mlp"], _, [256, 256, 256]),
            nets.layer_norm(params["ln"], _, -1),
            nets.branch_linear(params["br"], _, 64),
            *[
                chain([nets.conv_1d(params["conv"][i], _, 64, 5), nn.relu, nets.max_pool(params, _, 3, 2)])
                for i in range(3)
            ],
            flatten,
            nets.linear(params["linear"], _, 4),
        ]
    )(x)


@flexible
def decoder(params: Params, z: Array) -> Array:
    return chain(
        [
            nets.mlp(params["mlp"], _, [256, 256, 256]),
            nets.branch_linear(params["br"], _, 64),
            *[
                chain(
                    [
                        nets.multi_head_self_attention(params["mha"][i], _, 4),
                        skip(nets.mlp(params["attn_mlp"][i], _, [256, 256])),
                        nets.layer_norm(params["attn_ln"][i], _, -1),
                    ]
                )
                for i in range(3)
            ],
            flatten,
            nets.linear(params["linear"], _, 128),
        ]
    )(z)


def model(params: Params, x: Array) -> Array:
    z = encoder(params["encoder"], x)
    return decoder(params["decoder"], z)


def use_model(x: Array) -> Array:
    key = random.key(0)
    params = trace(model, key, x)
    fast_model = jax.jit(model)
    return cast(Array, fast_model(params, x))  # jax.jit's wrapper returns Any


# Making your own parameters.
@flexible
def linear(params: Params, x: Array, out_target: int) -> Array:
    return (lambda w, b: x @ w + b)(
        validate(params["weights"], (x.shape[-1], out_target)),
        validate(params["bias"], (out_target,)),
    )


def use_linear(key: Array, x: Array) -> Array:
    params = trace(linear, key, x, 256)
    return linear(params, x, 256)


# Dealing with random keys.
def block(params: Params, key: Array, x: Array) -> Array:
    return chain([nets.mlp(params["mlp"], _, [256, 256]), nets.dropout(params, key, _, 0.2)])(x)


def keyed_model(params: Params, x: Array, key: Array) -> Array:
    blocks = thread_key(thread_params([block] * 3, params), key)
    return chain([*blocks, nn.relu])(x)


def use_keyed_model(key: Array, x: Array) -> Array:
    trace_key, apply_key = random.split(key)
    params = trace(keyed_model, trace_key, x, apply_key)
    return keyed_model(params, x, apply_key)
