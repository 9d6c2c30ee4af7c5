"""The original README's encoder/decoder model, corrected, traced and run.

The encoder and the decoder are written twice, as the original README wrote them: step by
step on ``x``, and as one ``chain`` of holed nets. Both trace to the same params (same
paths, same initial values) and compute the same outputs. The corrections to the original:

- the decoder used ``x`` before it existed: it starts from ``z``;
- ``multi_head_self_attention(params, x, 64, 5)`` passed ``masks=5``: now ``(params, x, 64)``;
- ``max_pool(params, x, (3, 3), 2)`` on ``(batch, length, channels)`` would have pooled the
  batch axis too: a 1-D window ``(3,)``;
- ``trace(model, key)`` had no sample input: ``trace(model, key, x)``.

Run:

    python examples/seed_model.py
    python examples/seed_model.py --batch 4
"""

# jax leaves parts of its own signatures untyped (jit's wrapper): strict pyright would
# flag every use, so these three reports are off here.

from __future__ import annotations

import argparse

import jax
import numpy as np
from jax import Array, jit, nn, random
from jax import numpy as jnp

from zephyr import nets, summary, trace
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.nets import chain
from zephyr.typing import Params


@flexible
def encoder(params: Params, x: Array) -> Array:
    x = nets.mlp(params["mlp"], x, [256, 256, 256])  # b 256
    x = nets.layer_norm(params["ln"], x, -1)
    x = nets.branch_linear(params["br"], x, 64)  # b 64 256

    for i in range(3):
        x = nets.conv_1d(params["conv"][i], x, 64, 5)
        x = nn.relu(x)
        x = nets.max_pool(params, x, (3,), 2)  # fixed: a 1-D window

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
                        nets.max_pool(params, _, (3,), 2),
                    ]
                )
                for i in range(3)
            ],
            lambda x: jnp.reshape(x, [x.shape[0], -1]),
            nets.linear(params["linear"], _, 4),
        ]
    )(x)


@flexible
def decoder(params: Params, z: Array) -> Array:
    x = nets.mlp(params["mlp"], z, [256, 256, 256])  # fixed: starts from z; b 256
    x = nets.branch_linear(params["br"], x, 64)  # b 64 256

    for i in range(3):
        x = nets.multi_head_self_attention(params["mha"][i], x, 64)  # fixed: no masks=5
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
                        nets.multi_head_self_attention(params["mha"][i], _, 64),
                        nets.skip(nets.mlp(params["attn_mlp"][i], _, [256, 256])),
                        nets.layer_norm(params["attn_ln"][i], _, -1),
                    ]
                )
                for i in range(3)
            ],
            lambda x: jnp.reshape(x, [x.shape[0], -1]),
            nets.linear(params["linear"], _, 128),  # b 128
        ]
    )(z)  # fixed: applied to z


def model(params: Params, x: Array) -> Array:
    z = encoder(params["encoder"], x)
    reconstructed_x = decoder(params["decoder"], z)
    return reconstructed_x


def model_chain(params: Params, x: Array) -> Array:
    # `encoder_chain(params["encoder"], _)` works too (it is @flexible), but type checkers
    # see holes only in zephyr's own nets (their stubs): lambdas keep this file typed.
    return chain(
        [
            lambda x: encoder_chain(params["encoder"], x),
            lambda z: decoder_chain(params["decoder"], z),
        ]
    )(x)


def main(argv: list[str] | None = None) -> dict[str, tuple[int, ...]]:
    """Trace, summarize and run both forms; returns the output shapes by name."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="sample batch size (default: 64)")
    parser.add_argument("--features", type=int, default=8, help="input features (default: 8)")
    args = parser.parse_args(argv)

    key = random.PRNGKey(0)  # needed to randomly initialize weights
    x = jnp.ones([args.batch, args.features])  # sample input batch

    params = trace(model, key, x)  # fixed: the sample input
    summary(params, max_depth=2)  # parameter counts per subtree

    chained = trace(model_chain, key, x)
    same_params = summary(chained, show=False) == summary(params, show=False) and all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(chained), jax.tree.leaves(params))
    )
    print(f"the chain form traces to the same params: {same_params}")

    fast_model = jit(model)  # trace the plain function; jit for the fast calls
    outputs = fast_model(params, x)
    z = jit(encoder)(params["encoder"], x)  # model surgery: just the encoder
    chain_outputs = jit(model_chain)(params, x)
    difference = float(np.max(np.abs(np.asarray(outputs) - np.asarray(chain_outputs))))
    shapes = {"x": x.shape, "z": z.shape, "model(params, x)": outputs.shape, "model_chain(params, x)": chain_outputs.shape}
    for name, shape in shapes.items():
        print(f"{name:>24}: {shape}")
    print(f"max |model - model_chain|: {difference:.2e}")
    return shapes


if __name__ == "__main__":
    main()
