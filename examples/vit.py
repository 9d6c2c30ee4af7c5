"""A small vision transformer (ViT) on scikit-learn's 8x8 digits, from the built-in nets.

Patches by a strided ``nets.conv_2d`` (2x2 patches of the 8x8 images: 16 tokens), a learned
class token, learned positions (``nets.positional_embed``), then ``nets.transformer`` with
dropout on the residual branches and the attention weights (a key per step in training; at
evaluation the block of ``nets.without_dropout``), and a linear head on the class token:

    python examples/vit.py
    python examples/vit.py --epochs 30 --d 64
    python examples/vit.py --help
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jax import Array
from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # scikit-learn ships no type information

from zephyr import nets, trace, validate
from zephyr.typing import Params

NUM_CLASSES = 10


@dataclass(frozen=True)
class Config:
    """The model's hyperparameters."""

    d: int
    num_layers: int
    num_heads: int
    patch: int
    dropout: float


def vit(params: Params, images: Array, key: Array | None, config: Config) -> Array:
    """Class logits ``(batch, 10)`` of images ``(batch, 8, 8, 1)``; dropout when ``key`` is given."""
    patches = nets.conv_2d(params["patches"], images, config.d, config.patch, config.patch, "VALID")
    tokens = patches.reshape((patches.shape[0], -1, config.d))  # (batch, 16, d)
    cls = validate(params["cls"], (1, 1, config.d), jax.nn.initializers.zeros)
    x = jnp.concatenate([jnp.broadcast_to(cls, (tokens.shape[0], 1, config.d)), tokens], axis=1)
    x = nets.positional_embed(params["positions"], x, x.shape[1])
    block = nets.block(
        nets.attention(config.num_heads, dropout_rate=config.dropout),
        nets.feed_forward(2 * config.d),
        residual_dropout=config.dropout,
    )
    if key is None:  # evaluation
        block = nets.without_dropout(block)
    x = nets.transformer(params["transformer"], x, config.num_layers, block, key=key)
    return nets.linear(params["head"], x[:, 0], NUM_CLASSES)


@dataclass(frozen=True)
class Data:
    train_x: np.typing.NDArray[np.float32]
    train_y: np.typing.NDArray[np.int32]
    test_x: np.typing.NDArray[np.float32]
    test_y: np.typing.NDArray[np.int32]


def load(seed: int, limit: int | None) -> Data:
    """scikit-learn's 1797 digits as examples/digits_cnn.py loads them, split 80/20."""
    images, labels = load_digits(return_X_y=True)  # pyright: ignore[reportUnknownVariableType]  # untyped library
    x = np.asarray(np.asarray(images) / 16.0, np.float32).reshape(-1, 8, 8, 1)
    y = np.asarray(labels, np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    if limit is not None:
        train, test = train[:limit], test[:limit]
    return Data(x[train], y[train], x[test], y[test])


def make_step(
    config: Config, optimizer: optax.GradientTransformation
) -> Callable[[Params, optax.OptState, Array, Array, Array], tuple[Params, optax.OptState, Array]]:
    def loss(params: Params, x: Array, y: Array, key: Array) -> Array:
        logits = vit(params, x, key, config)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def step(params: Params, opt_state: optax.OptState, x: Array, y: Array, key: Array) -> tuple[Params, optax.OptState, Array]:
        value, grads = jax.value_and_grad(loss)(params, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return cast(Params, optax.apply_updates(params, updates)), opt_state, value

    return jax.jit(step)


def main(argv: list[str] | None = None) -> float:
    """Train, then return the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training set (default: 15)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument("--d", type=int, default=48, help="model width (default: 48)")
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks (default: 2)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default: 4)")
    parser.add_argument("--dropout", type=float, default=0.1, help="residual and attention dropout (default: 0.1)")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="Adam's learning rate (default: 2e-3)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many train and test images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    data = load(args.seed, args.limit)
    config = Config(args.d, args.layers, args.heads, 2, args.dropout)
    key = jax.random.key(args.seed)

    def model(params: Params, images: Array) -> Array:
        return vit(params, images, None, config)

    params = trace(model, key, jnp.asarray(data.train_x[:2]))
    print(f"digits: {len(data.train_y)} train, {len(data.test_y)} test; params: {sum(a.size for a in jax.tree.leaves(params)):,}")
    optimizer = optax.adamw(args.learning_rate)
    opt_state = optimizer.init(params)
    step = make_step(config, optimizer)
    evaluate = jax.jit(model)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(data.train_y))
        loss = jnp.zeros(())
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            key, step_key = jax.random.split(key)
            params, opt_state, loss = step(params, opt_state, jnp.asarray(data.train_x[batch]), jnp.asarray(data.train_y[batch]), step_key)
        print(f"epoch {epoch + 1:3d}: loss {float(loss):.3f} ({time.perf_counter() - start:.0f} s)")
    predictions = np.asarray(jnp.argmax(evaluate(params, jnp.asarray(data.test_x)), axis=-1))
    accuracy = float(np.mean(predictions == data.test_y))
    print(f"test accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
