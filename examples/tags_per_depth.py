"""Per-depth learning rates with zephyr.tags and optax.multi_transform.

Each layer ``i`` of an MLP trains with learning rate ``lr * decay**i``; weights get weight
decay, biases and the (tagged) output scale do not. The labels come from the model itself
(paths, depths and tags, without allocating anything), so adding a layer needs no change.

    python examples/tags_per_depth.py --steps 200 --decay 0.5
"""

from __future__ import annotations

import argparse
from collections.abc import Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed
from jax import Array

from zephyr import nets, summary, tags, trace, validate
from zephyr.typing import Params


def model(params: Params, x: Array, widths: Sequence[int]) -> Array:
    """An MLP with a learned output scale tagged ``"scale"``."""
    h = nets.mlp(params["mlp"], x, list(widths), jax.nn.tanh)
    scale = validate(params["scale"], (widths[-1],), jax.nn.initializers.ones, tags="scale")
    return h * jnp.broadcast_to(scale, h.shape)


def label(leaf: tags.Leaf) -> str:
    """``"depth{i}/decay"`` for weights, ``"depth{i}/plain"`` for biases, ``"scale"`` for the scale."""
    if "scale" in leaf.tags:
        return "scale"
    kind = "plain" if leaf.path[-1] == "bias" else "decay"
    return f"depth{leaf.depth}/{kind}"


def main(argv: Sequence[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate of layer 0 (default 0.1)")
    parser.add_argument("--decay", type=float, default=0.5, help="lr factor per layer of depth (default 0.5)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="decay of weights, not biases")
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 16, 1], help="layer widths")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    key = jax.random.key(args.seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (64, 3))
    y = jnp.sin(jnp.sum(x, axis=-1, keepdims=True))

    params = trace(model, key, x, args.widths)
    info = tags.leaf_info(model, x, args.widths)  # paths, depths, tags; no allocation
    summary(info)
    labels = tags.labels(info, label)
    transforms: dict[Hashable, optax.GradientTransformation] = {"scale": optax.sgd(args.lr)}
    for depth in range(len(args.widths)):
        lr = args.lr * args.decay**depth
        transforms[f"depth{depth}/plain"] = optax.sgd(lr, momentum=0.9)
        transforms[f"depth{depth}/decay"] = optax.chain(
            optax.add_decayed_weights(args.weight_decay), optax.sgd(lr, momentum=0.9)
        )
        print(f"layer {depth}: learning rate {lr:g}")
    tx = optax.multi_transform(transforms, labels)
    opt_state = tx.init(params)

    def loss_fn(p: Any) -> Array:
        return jnp.mean((model(p, x, args.widths) - y) ** 2)

    @jax.jit
    def step(p: Any, s: optax.OptState) -> tuple[Any, optax.OptState, Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    losses: list[float] = []
    for i in range(args.steps):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
        if i % max(1, args.steps // 6) == 0 or i == args.steps - 1:
            print(f"step {i:4d}  loss {float(loss):.5f}")
    return losses


if __name__ == "__main__":
    main()
