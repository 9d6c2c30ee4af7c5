"""Explicit state: batch normalization's running statistics live in their own tree.

``trace_with_state`` builds ``(params, state)``; the net takes ``state`` and returns the new
one next to its output. Training threads the state through each step (batch statistics);
evaluation uses the running statistics and leaves them unchanged. The data: scikit-learn's
two moons, shifted and stretched so that normalizing them matters:

    python examples/batchnorm_state.py
    python examples/batchnorm_state.py --help
"""

# jax and optax leave parts of their own signatures untyped (jit's and grad's wrappers):
# strict pyright would flag every use, so these three reports are off here.

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jax import Array
from sklearn.datasets import make_moons  # type: ignore[import-untyped]  # scikit-learn ships no type information

from zephyr import nets, trace_with_state
from zephyr.typing import Params

State = Params
"""The state of ``net``: ``{i: {"mean": (64,), "var": (64,)}}``, one batch norm per hidden layer."""


def net(params: Params, state: State, x: Array, is_training: bool, momentum: float = 0.9) -> tuple[Array, State]:
    """``(batch, 2)`` points to ``(batch, 2)`` logits: (linear, batch norm, relu) x 2, linear."""
    new_state: dict[int, State] = {}
    for i in range(2):
        x = nets.linear(params["hidden"][i], x, 64)
        x, new_state[i] = nets.batch_norm(params["norm"][i], state[i], x, is_training, momentum=momentum)
        x = jax.nn.relu(x)
    return nets.linear(params["out"], x, 2), new_state


def make_step(
    optimizer: optax.GradientTransformation,
) -> Callable[[Params, State, optax.OptState, Array, Array], tuple[Params, State, optax.OptState, Array]]:
    """One jitted step: the loss's gradient with respect to params; the new state as aux."""

    def loss(params: Params, state: State, x: Array, y: Array) -> tuple[Array, State]:
        logits, state = net(params, state, x, True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state

    def step(
        params: Params, state: State, opt_state: optax.OptState, x: Array, y: Array
    ) -> tuple[Params, State, optax.OptState, Array]:
        (value, state), grads = jax.value_and_grad(loss, has_aux=True)(params, state, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # apply_updates is typed as returning any pytree: it is the params' own tree
        return cast(Params, optax.apply_updates(params, updates)), state, opt_state, value

    return jax.jit(step)


def accuracy(params: Params, state: State, x: Array, y: Array) -> float:
    """Evaluation mode: running statistics, state unchanged."""
    logits = net(params, state, x, False)[0]
    return float((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32).mean())


def data(n: int, seed: int) -> tuple[Array, Array]:
    """Two moons, far from the origin and badly scaled: (n, 2) points and (n,) labels."""
    points, labels = make_moons(n, noise=0.15, random_state=seed)  # pyright: ignore[reportUnknownVariableType]  # untyped library
    scaled = np.asarray(points, np.float32) * np.asarray([40.0, 0.5], np.float32) + np.asarray([100.0, -20.0], np.float32)
    return jnp.asarray(scaled), jnp.asarray(np.asarray(labels, np.int32))


def main(argv: list[str] | None = None) -> float:
    """Train, then evaluate with the running statistics; returns the held-out accuracy."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--batch-size", type=int, default=128, help="points per step (default: 128)")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam's initial learning rate, cosine-decayed (default: 1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    train_x, train_y = data(2048, args.seed)
    test_x, test_y = data(512, args.seed + 1)
    params, state = trace_with_state(net, jax.random.key(args.seed), train_x[: args.batch_size], True)
    print("state tree:", jax.tree.map(jnp.shape, state))
    print("running mean of layer 0 at start:", np.round(np.asarray(state[0]["mean"][:4]), 3))

    # The learning rate decays to zero: the running statistics then catch up with the last
    # weights (with a constant rate they lag behind the moving batch statistics).
    optimizer = optax.adam(optax.cosine_decay_schedule(args.learning_rate, args.steps))
    opt_state = optimizer.init(params)
    step = make_step(optimizer)
    rng = np.random.default_rng(args.seed)
    loss = jnp.zeros(())
    for i in range(args.steps):
        batch = rng.choice(len(train_x), args.batch_size, replace=False)
        params, state, opt_state, loss = step(params, state, opt_state, train_x[batch], train_y[batch])
        if (i + 1) % max(1, args.steps // 3) == 0:
            print(f"step {i + 1:4d}: loss {float(loss):.4f}")
    print("running mean of layer 0 after training:", np.round(np.asarray(state[0]["mean"][:4]), 3))

    held_out = accuracy(params, state, test_x, test_y)
    print(f"held-out accuracy (running statistics): {held_out:.1%}")
    return held_out


if __name__ == "__main__":
    main()
