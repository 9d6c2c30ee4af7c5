"""A small convolutional network on scikit-learn's handwritten digits (8x8, bundled: no download).

Trains with optax, shows a progress bar with the loss and accuracy, prints the held-out
accuracy, and saves a loss-curve PNG and a checkpoint (restored again to check it):

    python examples/digits_cnn.py             # about 15 s on 2 CPU cores
    python examples/digits_cnn.py --help
"""

# jax, optax and matplotlib leave parts of their own signatures untyped (**kwargs, jit's
# wrapper): strict pyright would flag every use, so these three reports are off here.

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jax import Array
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # scikit-learn ships no type information

from zephyr import checkpoint, nets, trace
from zephyr.typing import Params

matplotlib.use("Agg")  # write PNGs; no display needed
import matplotlib.pyplot as plt  # noqa: E402  # after choosing the backend

NUM_CLASSES = 10
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out", "digits_cnn")


def cnn(params: Params, x: Array) -> Array:
    """``(batch, 8, 8, 1)`` images to ``(batch, 10)`` logits: two conv + max-pool stages, an MLP."""
    x = jax.nn.relu(nets.conv_2d(params["conv"][0], x, 32, 3))  # b 8 8 32
    x = nets.max_pool({}, x, (2, 2), 2)  # b 4 4 32
    x = jax.nn.relu(nets.conv_2d(params["conv"][1], x, 64, 3))  # b 4 4 64
    x = nets.max_pool({}, x, (2, 2), 2)  # b 2 2 64
    x = jnp.reshape(x, (x.shape[0], -1))  # b 256
    return nets.mlp(params["head"], x, [128, NUM_CLASSES])  # b 10


@dataclass(frozen=True)
class Data:
    """Images ``(n, 8, 8, 1)`` in [0, 1] and integer labels ``(n,)``, split train / test."""

    train_x: np.typing.NDArray[np.float32]
    train_y: np.typing.NDArray[np.int32]
    test_x: np.typing.NDArray[np.float32]
    test_y: np.typing.NDArray[np.int32]


def load(test_fraction: float, seed: int, limit: int | None = None) -> Data:
    """scikit-learn's 1797 digits, shuffled and split (stratified by class)."""
    images, labels = load_digits(return_X_y=True)  # pyright: ignore[reportUnknownVariableType]  # untyped library
    x = (np.asarray(images, np.float32) / 16.0).reshape(-1, 8, 8, 1)
    y = np.asarray(labels, np.int32)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = round(len(members) * test_fraction)
        test.extend(members[:n_test].tolist())
        train.extend(members[n_test:].tolist())
    train_idx, test_idx = rng.permutation(train), rng.permutation(test)
    if limit is not None:
        train_idx, test_idx = train_idx[:limit], test_idx[:limit]
    return Data(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


def loss_and_accuracy(params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """Mean cross-entropy and accuracy of ``cnn`` on a batch."""
    logits = cnn(params, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    accuracy = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32).mean()
    return loss, accuracy


def make_step(
    optimizer: optax.GradientTransformation,
) -> Callable[[Params, optax.OptState, Array, Array], tuple[Params, optax.OptState, Array, Array]]:
    """One jitted optimizer step: ``(params, opt_state, x, y) -> (params, opt_state, loss, accuracy)``."""

    def step(params: Params, opt_state: optax.OptState, x: Array, y: Array) -> tuple[Params, optax.OptState, Array, Array]:
        (loss, accuracy), grads = jax.value_and_grad(loss_and_accuracy, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # apply_updates is typed as returning any pytree: it is the params' own tree
        params = cast(Params, optax.apply_updates(params, updates))
        return params, opt_state, loss, accuracy

    return jax.jit(step)


def evaluate(params: Params, x: np.typing.NDArray[np.float32], y: np.typing.NDArray[np.int32]) -> float:
    """Accuracy on a whole split, in one jitted call."""
    _loss, accuracy = jax.jit(loss_and_accuracy)(params, jnp.asarray(x), jnp.asarray(y))
    return float(accuracy)


def save_curve(losses: Sequence[float], steps_per_epoch: int, path: str) -> None:
    """The training loss per step (and its per-epoch mean) as a PNG."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(len(losses)) / steps_per_epoch, losses, lw=0.8, alpha=0.5, label="per step")
    epochs = len(losses) // steps_per_epoch
    if epochs:
        means = np.asarray(losses[: epochs * steps_per_epoch]).reshape(epochs, steps_per_epoch).mean(axis=1)
        ax.plot(np.arange(1, epochs + 1), means, marker="o", ms=3, label="epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.set_title("zephyr: digits CNN, training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass(frozen=True)
class Result:
    """What a run produced."""

    test_accuracy: float
    restored_accuracy: float
    seconds: float
    curve_path: str
    checkpoint_path: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25, help="passes over the training set (default: 25)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per step (default: 64)")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="Adam's learning rate (default: 3e-3)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of each class (default: 0.2)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many train and test images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to save the PNG and checkpoint (default: out/digits_cnn)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Result:
    args = parse_args(argv)
    start = time.perf_counter()
    data = load(args.test_fraction, args.seed, args.limit)
    batch_size = min(args.batch_size, len(data.train_x))
    steps_per_epoch = len(data.train_x) // batch_size

    key = jax.random.key(args.seed)
    params = trace(cnn, key, jnp.asarray(data.train_x[:batch_size]))
    sizes = {name: sum(leaf.size for leaf in jax.tree.leaves(params[name])) for name in ("conv", "head")}
    print(
        f"digits: {len(data.train_x)} train / {len(data.test_x)} test images, 8x8; "
        f"params: {sum(sizes.values()):,} ({', '.join(f'{k} {v:,}' for k, v in sizes.items())})"
    )

    optimizer = optax.adam(args.learning_rate)
    opt_state = optimizer.init(params)
    step = make_step(optimizer)
    rng = np.random.default_rng(args.seed)
    losses: list[float] = []
    columns = (
        TextColumn("epoch {task.fields[epoch]:>2}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.1%}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("train", total=args.epochs * steps_per_epoch, epoch=1, loss=float("nan"), acc=0.0)
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(data.train_x))
            correct = 0.0
            for i in range(steps_per_epoch):
                batch = order[i * batch_size : (i + 1) * batch_size]
                params, opt_state, loss, accuracy = step(
                    params, opt_state, jnp.asarray(data.train_x[batch]), jnp.asarray(data.train_y[batch])
                )
                losses.append(float(loss))
                correct += float(accuracy)
                progress.update(task, advance=1, epoch=epoch, loss=losses[-1], acc=correct / (i + 1))

    test_accuracy = evaluate(params, data.test_x, data.test_y)
    print(f"held-out accuracy: {test_accuracy:.2%} ({len(data.test_x)} images)")

    os.makedirs(args.out, exist_ok=True)
    curve_path = os.path.join(args.out, "loss.png")
    save_curve(losses, steps_per_epoch, curve_path)
    checkpoint_path = os.path.join(os.path.abspath(args.out), "checkpoint")
    checkpoint.save(checkpoint_path, params, overwrite=True)
    restored = checkpoint.restore(checkpoint_path, like=params)
    restored_accuracy = evaluate(restored, data.test_x, data.test_y)
    seconds = time.perf_counter() - start
    print(f"loss curve: {curve_path}")
    print(f"checkpoint: {checkpoint_path} (restored: held-out accuracy {restored_accuracy:.2%})")
    print(f"done in {seconds:.1f} s")
    return Result(test_accuracy, restored_accuracy, seconds, curve_path, checkpoint_path)


if __name__ == "__main__":
    main()
