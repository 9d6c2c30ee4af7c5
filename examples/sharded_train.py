"""Data + tensor parallel training on an 8-device CPU mesh with zephyr.trace_sharded.

The mesh is ``(data=2, model=4)``. The batch is split over ``data``; the MLP's first layer
is column-parallel (its weights split over ``model`` by output) and the second row-parallel
(split by input), Megatron style, so the hidden activations never need gathering. Every
parameter is created already sharded: no device ever holds the whole model. The same step
runs unsharded for comparison.

    python examples/sharded_train.py --steps 20 --hidden 64
"""

from __future__ import annotations

import os

# Eight CPU devices; must be set before jax is imported.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import argparse  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed  # noqa: E402
from jax import Array  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from zephyr import nets, trace, trace_sharded, validate  # noqa: E402
from zephyr.typing import Params  # noqa: E402

RULES = {
    "tag:embedding": P(None, "model"),
    "^mlp/0/weights$": P(None, "model"),  # column parallel
    "^mlp/0/bias$": P("model"),
    "^mlp/1/weights$": P("model", None),  # row parallel
}


def model(params: Params, x: Array, hidden: int, out: int) -> Array:
    """An embedding (tagged, sharded by tag) and a two-layer MLP (sharded by path)."""
    embed = validate(params["embed"], (x.shape[-1], hidden), tags="embedding")
    h = jnp.tanh(x @ embed)
    return nets.mlp(params["mlp"], h, [4 * hidden, out], jax.nn.gelu)


def main(argv: Sequence[str] | None = None) -> tuple[list[float], list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="training steps (default 10)")
    parser.add_argument("--batch", type=int, default=32, help="global batch, split over `data` (default 32)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width, split over `model` (default 32)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if len(jax.devices()) < 8:
        parser.error(f"needs 8 devices, found {len(jax.devices())} (XLA_FLAGS was set too late?)")
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
    key = jax.random.key(args.seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (args.batch, 8))
    y = jnp.cos(x[:, :4])

    params = trace_sharded(model, key, mesh, RULES, x, args.hidden, 4)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        shard = leaf.addressable_shards[0].data.shape
        print(f"{jax.tree_util.keystr(path):22s} {str(leaf.shape):10s} {str(leaf.sharding.spec):22s} shard {shard}")

    tx = optax.sgd(args.lr, momentum=0.9)

    def loss_fn(p: Any, xb: Array, yb: Array) -> Array:
        return jnp.mean((model(p, xb, args.hidden, 4) - yb) ** 2)

    @jax.jit
    def step(p: Any, s: optax.OptState, xb: Array, yb: Array) -> tuple[Any, optax.OptState, Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    def train(p: Any, xb: Array, yb: Array) -> list[float]:
        s = tx.init(p)
        losses = []
        for _step in range(args.steps):
            p, s, loss = step(p, s, xb, yb)
            losses.append(float(loss))
        return losses

    data = NamedSharding(mesh, P("data", None))
    sharded = train(params, jax.device_put(x, data), jax.device_put(y, data))
    plain = train(trace(model, key, x, args.hidden, 4), x, y)
    print(f"batch sharding: {data.spec} over {dict(mesh.shape)}")
    for i, (a, b) in enumerate(zip(sharded, plain)):
        print(f"step {i:3d}  loss sharded {a:.6f}  unsharded {b:.6f}")
    return sharded, plain


if __name__ == "__main__":
    main()
