"""Kill a training run and resume it: the loss curve is the one of a run never interrupted.

Every ``--every`` steps the run saves a numbered step with ``zephyr.checkpoint.save``: the
params, the model state (batch norm's running statistics), the optimizer state (Adam's
moments and count) and the data position (which batch comes next) as ``extra``, keeping the
last 2 steps. The script trains once without interruption, then again in a child process
that it SIGKILLs mid-run, then resumes from the latest step (``checkpoint.resume``) and
checks that the two loss curves are the same, float for float.

    python examples/resume_train.py --steps 40 --every 5
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed
from jax import Array

from zephyr import checkpoint, nets, trace_with_state
from zephyr.typing import Params


def model(params: Params, state: Params, x: Array, is_training: bool) -> tuple[Array, Any]:
    """A linear layer, batch norm (running statistics in ``state``), a ReLU and a linear head."""
    h = nets.linear(params["hidden"], x, 16)
    h, state_norm = nets.batch_norm(params["norm"], state["norm"], h, is_training)
    return nets.linear(params["out"], jax.nn.relu(h), 1), {"norm": state_norm}


def batch(seed: int, position: int, size: int) -> tuple[Array, Array]:
    """Batch number ``position`` of the data stream: the same for every run that asks for it."""
    key = jax.random.fold_in(jax.random.key(seed), position)
    x = jax.random.normal(key, (size, 4))
    return x, jnp.sin(x[:, :1] * 2.0) + x[:, 1:2] * x[:, 2:3]


def train(args: argparse.Namespace, directory: str | None, log: str | None) -> list[float]:
    """Train to ``args.steps``, resuming from ``directory``'s latest step if it has one."""
    tx = optax.adam(args.lr)
    x0, _y0 = batch(args.seed, 0, args.batch_size)
    params, state = trace_with_state(model, jax.random.key(args.seed), x0, True)
    opt_state = tx.init(params)
    position, losses = 0, []
    if directory is not None and checkpoint.steps(directory):
        run = checkpoint.resume(directory, params, opt_state, state)
        params, opt_state, state = run.params, run.opt_state, run.state
        position, losses = run.extra["position"], run.extra["losses"]
        print(f"resumed from step {run.step}: {position} batches done")

    def loss_fn(p: Any, s: Any, x: Array, y: Array) -> tuple[Array, Any]:
        prediction, s = model(p, s, x, True)
        return jnp.mean((prediction - y) ** 2), s

    @jax.jit
    def step(p: Any, s: Any, o: optax.OptState, x: Array, y: Array) -> tuple[Any, Any, optax.OptState, Array]:
        (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), s, o, loss

    while position < args.steps:
        params, state, opt_state, loss = step(params, state, opt_state, *batch(args.seed, position, args.batch_size))
        position += 1
        losses.append(float(loss))
        if log is not None:
            with open(log, "a") as f:
                f.write(f"{position}\n")
        if directory is not None and position % args.every == 0:
            extra = {"position": position, "losses": losses}
            checkpoint.save(directory, params, state, opt_state=opt_state, extra=extra, step=position, keep=2)
    return losses


def steps_done(log: str) -> int:
    """How many steps the killed run had logged."""
    return len(pathlib.Path(log).read_text().split()) if os.path.exists(log) else 0


def main(argv: Sequence[str] | None = None) -> tuple[list[float], list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training steps (default 40)")
    parser.add_argument("--every", type=int, default=5, help="save a step every N steps (default 5)")
    parser.add_argument("--kill-after", type=int, default=None, help="SIGKILL the run once it has done "
                        "this many steps (default: about two thirds of --steps)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="checkpoint directory (default: a new temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the run that gets killed
    args = parser.parse_args(argv)
    directory = args.dir or os.path.join(tempfile.mkdtemp(prefix="resume_train_"), "run")
    if args.child:
        train(args, directory, log=directory + ".log")
        return [], []

    straight = train(args, None, None)
    kill_after = args.kill_after if args.kill_after is not None else max(1, 2 * args.steps // 3)
    own = ["--steps", str(args.steps), "--every", str(args.every), "--batch-size", str(args.batch_size),
           "--lr", str(args.lr), "--seed", str(args.seed), "--dir", directory]
    child = subprocess.Popen([sys.executable, __file__, *own, "--child"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while child.poll() is None and time.monotonic() < deadline:
            if steps_done(directory + ".log") >= kill_after:
                break
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    print(f"killed the run after {steps_done(directory + '.log')} steps; saved steps: "
          f"{checkpoint.steps(directory)}")
    resumed = train(args, directory, None)
    for i, (a, b) in enumerate(zip(straight, resumed)):
        if i % max(1, args.steps // 10) == 0 or i == args.steps - 1:
            print(f"step {i + 1:4d}  loss uninterrupted {a:.6f}  killed and resumed {b:.6f}")
    same = json.dumps(straight) == json.dumps(resumed)
    print(f"same loss curve: {same}")
    if not same:
        raise SystemExit("the resumed run's losses differ from the uninterrupted run's")
    return straight, resumed


if __name__ == "__main__":
    main()
