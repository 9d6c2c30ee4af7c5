"""An LSTM (or GRU) learns delayed recall: at each step, output the symbol seen ``delay`` steps ago.

The sequences are random symbols, one-hot; the targets are the same sequences shifted by
``delay``. A net must carry what it saw in its recurrent state to do better than chance
(1 / num_symbols):

    python examples/lstm_sequence.py
    python examples/lstm_sequence.py --cell gru --delay 5
    python examples/lstm_sequence.py --help
"""

# jax and optax leave parts of their own signatures untyped (jit's and grad's wrappers):
# strict pyright would flag every use, so these three reports are off here.

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Literal, cast

import jax
import jax.numpy as jnp
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jax import Array

from zephyr import nets, trace
from zephyr.typing import Params


def recall_net(params: Params, x: Array, hidden_size: int, cell: Literal["lstm", "gru"]) -> Array:
    """``(batch, time, symbols)`` one-hot to ``(batch, time, symbols)`` logits."""
    recurrent = nets.lstm if cell == "lstm" else nets.gru
    h = recurrent(params["rnn"], x, hidden_size)  # b t hidden
    return nets.linear(params["out"], h, x.shape[-1])  # b t symbols


def batch(key: Array, batch_size: int, length: int, num_symbols: int, delay: int) -> tuple[Array, Array, Array]:
    """One-hot sequences ``(b, t, s)``, targets ``(b, t)`` and a mask of the steps with a target."""
    symbols = jax.random.randint(key, (batch_size, length), 0, num_symbols)
    x = jax.nn.one_hot(symbols, num_symbols)
    targets = jnp.roll(symbols, delay, axis=1)  # target[t] = symbol[t - delay]
    mask = jnp.broadcast_to(jnp.arange(length) >= delay, (batch_size, length))
    return x, targets, mask


def make_step(
    net: Callable[[Params, Array], Array], optimizer: optax.GradientTransformation
) -> Callable[[Params, optax.OptState, Array, Array, Array], tuple[Params, optax.OptState, Array, Array]]:
    """One jitted step of masked cross-entropy; returns the loss and the accuracy too."""

    def loss(params: Params, x: Array, targets: Array, mask: Array) -> tuple[Array, Array]:
        logits = net(params, x)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        weights = mask.astype(jnp.float32)
        correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
        return jnp.sum(losses * weights) / jnp.sum(weights), jnp.sum(correct * weights) / jnp.sum(weights)

    def step(
        params: Params, opt_state: optax.OptState, x: Array, targets: Array, mask: Array
    ) -> tuple[Params, optax.OptState, Array, Array]:
        (value, accuracy), grads = jax.value_and_grad(loss, has_aux=True)(params, x, targets, mask)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # apply_updates is typed as returning any pytree: it is the params' own tree
        return cast(Params, optax.apply_updates(params, updates)), opt_state, value, accuracy

    return jax.jit(step)


def main(argv: list[str] | None = None) -> float:
    """Train; returns the accuracy on fresh sequences."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="the recurrent net (default: lstm)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--hidden-size", type=int, default=64, help="recurrent units (default: 64)")
    parser.add_argument("--length", type=int, default=24, help="sequence length (default: 24)")
    parser.add_argument("--symbols", type=int, default=8, help="alphabet size (default: 8)")
    parser.add_argument("--delay", type=int, default=5, help="how far back to recall (default: 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step (default: 64)")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam's learning rate (default: 1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    cell: Literal["lstm", "gru"] = args.cell

    key = jax.random.key(args.seed)

    def net(params: Params, x: Array) -> Array:
        return recall_net(params, x, args.hidden_size, cell)

    x, targets, mask = batch(key, args.batch_size, args.length, args.symbols, args.delay)
    params = trace(net, key, x)
    print(f"{cell}: params {jax.tree.map(jnp.shape, params)}")

    optimizer = optax.adam(args.learning_rate)
    opt_state = optimizer.init(params)
    step = make_step(net, optimizer)
    for i in range(args.steps):
        key, data_key = jax.random.split(key)
        x, targets, mask = batch(data_key, args.batch_size, args.length, args.symbols, args.delay)
        params, opt_state, loss, accuracy = step(params, opt_state, x, targets, mask)
        if (i + 1) % max(1, args.steps // 4) == 0:
            print(f"step {i + 1:4d}: loss {float(loss):.4f}, accuracy {float(accuracy):.1%}")

    x, targets, mask = batch(jax.random.key(args.seed + 1), 512, args.length, args.symbols, args.delay)
    correct = (jnp.argmax(net(params, x), axis=-1) == targets) & mask
    fresh = float(jnp.sum(correct) / jnp.sum(mask))
    print(f"recall {args.delay} steps back on fresh sequences: {fresh:.1%} (chance {1 / args.symbols:.1%})")
    return fresh


if __name__ == "__main__":
    main()
