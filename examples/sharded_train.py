"""Data + tensor parallel training on an 8-device CPU mesh with zephyr.trace_sharded.

The mesh is ``(data=2, model=4)``. The batch is split over ``data``; the MLP's first layer
is column-parallel (its weights split over ``model`` by output) and the second row-parallel
(split by input), Megatron style, so the hidden activations never need gathering. Every
parameter is created already sharded: no device ever holds the whole model. The same step
runs unsharded for comparison.

With ``--processes 2`` the script starts two copies of itself on this machine, 4 CPU devices
each, joined by ``jax.distributed`` (JAX's gloo CPU collectives): the same 8-device mesh, each
process holding only its own devices' shards, the same losses. On real machines, run one
process per host with ``--process-id I --coordinator HOST:PORT`` (see the README, "Several hosts").

    python examples/sharded_train.py --steps 20 --hidden 64
    python examples/sharded_train.py --processes 2
"""

from __future__ import annotations

import os

# Eight CPU devices; must be set before jax is imported.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed  # noqa: E402
from jax import Array  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from zephyr import checkpoint, nets, trace, trace_sharded, validate  # noqa: E402
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launch(argv: Sequence[str], processes: int, timeout: float = 300) -> tuple[list[float], list[float]]:
    """Run this script as ``processes`` processes on this machine; process 0's losses."""
    coordinator = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={8 // processes}", JAX_PLATFORMS="cpu")
    children = [
        subprocess.Popen(
            [sys.executable, __file__, *argv, "--processes", str(processes), "--process-id", str(i),
             "--coordinator", coordinator],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        for i in range(processes)
    ]
    try:
        outputs = [child.communicate(timeout=timeout)[0] for child in children]
    finally:
        for child in children:  # never leave a process behind, whatever happened
            child.kill()
            child.wait()
    failed = [i for i, child in enumerate(children) if child.returncode != 0]
    if failed:
        raise RuntimeError(f"process {failed[0]} of {processes} failed (exit code {children[failed[0]].returncode})")
    print(outputs[0], end="")
    result = json.loads(outputs[0].strip().splitlines()[-1].removeprefix("losses: "))
    return result["sharded"], result["plain"]


def main(argv: Sequence[str] | None = None) -> tuple[list[float], list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="training steps (default 10)")
    parser.add_argument("--batch", type=int, default=32, help="global batch, split over `data` (default 32)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width, split over `model` (default 32)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the 8-device mesh (1, 2, 4 or 8)")
    parser.add_argument("--process-id", type=int, default=None, help="this process's index (one per host); "
                        "without it, --processes N starts N local processes")
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (jax.distributed)")
    parser.add_argument("--checkpoint", default=None, help="save the sharded params and optimizer state "
                        "there (a directory every process can reach)")
    args = parser.parse_args(argv)

    if args.processes > 1 and args.process_id is None:
        rest = [a for a in (argv if argv is not None else sys.argv[1:])]
        if "--processes" in rest:
            at = rest.index("--processes")
            del rest[at:at + 2]
        return launch(rest, args.processes)
    if args.process_id is not None:
        if args.coordinator is None:
            parser.error("--process-id needs --coordinator HOST:PORT")
        jax.distributed.initialize(args.coordinator, num_processes=args.processes, process_id=args.process_id)
    if len(jax.devices()) < 8:
        parser.error(f"needs 8 devices, found {len(jax.devices())} (XLA_FLAGS was set too late?)")
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
    key = jax.random.key(args.seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), (args.batch, 8))
    y = jnp.cos(x[:, :4])
    quiet = jax.process_index() != 0  # one process prints

    params = trace_sharded(model, key, mesh, RULES, x, args.hidden, 4)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        shard = leaf.addressable_shards[0].data.shape
        if not quiet:
            print(f"{jax.tree_util.keystr(path):22s} {str(leaf.shape):10s} {str(leaf.sharding.spec):22s} "
                  f"shard {shard}, {len(leaf.addressable_shards)} of {len(leaf.sharding.device_set)} here")

    tx = optax.sgd(args.lr, momentum=0.9)

    def loss_fn(p: Any, xb: Array, yb: Array) -> Array:
        return jnp.mean((model(p, xb, args.hidden, 4) - yb) ** 2)

    @jax.jit
    def step(p: Any, s: optax.OptState, xb: Array, yb: Array) -> tuple[Any, optax.OptState, Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    def train(p: Any, xb: Array, yb: Array) -> tuple[list[float], Any, optax.OptState]:
        s = tx.init(p)
        losses = []
        for _step in range(args.steps):
            p, s, loss = step(p, s, xb, yb)
            losses.append(float(loss))
        return losses, p, s

    data = NamedSharding(mesh, P("data", None))

    def place(a: Array) -> Array:  # every process knows the whole batch; each places its rows
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, data, lambda index: host[index])

    sharded, params, opt_state = train(params, place(x), place(y))
    plain = train(trace(model, key, x, args.hidden, 4), x, y)[0]  # on this process's first device
    if args.checkpoint:  # every process writes its own shards
        checkpoint.save(args.checkpoint, params, opt_state=opt_state, step=args.steps, keep=3)
    if quiet:
        return sharded, plain
    print(f"batch sharding: {data.spec} over {dict(mesh.shape)}, {jax.process_count()} process(es)")
    for i, (a, b) in enumerate(zip(sharded, plain)):
        print(f"step {i:3d}  loss sharded {a:.6f}  unsharded {b:.6f}")
    if args.process_id is not None:
        print("losses: " + json.dumps({"sharded": sharded, "plain": plain}))
    return sharded, plain


if __name__ == "__main__":
    main()
