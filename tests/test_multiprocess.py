"""Two processes, one model: jax.distributed on 127.0.0.1, 4 CPU devices each, an 8-device mesh.

The pair trains data + tensor parallel with the losses of one process, each holding only its
shards; a checkpoint saved from both restores bit for bit into a fresh pair and into this
(one) process. Ports are picked free, every child is killed whatever happens.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap
from types import ModuleType
from typing import Any

import jax
import numpy as np
import pytest

from zephyr import checkpoint
from zephyr.sharding import abstract_trace_sharded

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sharded_train.py"
TIMEOUT = 120  # seconds for one pair; the whole test takes well under a minute on 2 cores


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zephyr_example_sharded_train_mp", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Run by each process of a fresh pair: restore the checkpoint onto the 2-process mesh and
# compare it, gathered, with what this (one) process restored, bit for bit.
WORKER = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType
    from zephyr import checkpoint
    from zephyr.sharding import abstract_trace_sharded

    directory, coordinator, pid, example = sys.argv[1:5]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=2, process_id=int(pid))
    spec = __import__("importlib.util").util.spec_from_file_location("ex", example)
    ex = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    like = abstract_trace_sharded(ex.model, mesh, ex.RULES, np.ones((8, 8), np.float32), 8, 4)
    restored = checkpoint.restore(directory + "/ckpt", like=like)  # checksums checked: as saved
    weights = restored["mlp"][0]["weights"]
    gathered = multihost_utils.process_allgather(restored, tiled=True)
    expected = np.load(directory + "/expected.npz")
    flat = jax.tree_util.tree_flatten_with_path(gathered)[0]
    same = len(flat) == len(expected.files) and all(
        np.asarray(v).dtype == expected[jax.tree_util.keystr(k)].dtype
        and np.asarray(v).tobytes() == expected[jax.tree_util.keystr(k)].tobytes()
        for k, v in flat
    )
    report = {"devices": len(jax.devices()), "local": len(jax.local_devices()), "same": same,
              "shards_here": len(weights.addressable_shards), "fully_addressable": weights.is_fully_addressable,
              "spec": str(weights.sharding.spec)}
    print("report: " + json.dumps(report), flush=True)
    """
)


def _pair(directory: pathlib.Path) -> list[dict[str, object]]:
    """Run WORKER as a pair of processes; each one's report."""
    example = _example()
    coordinator = f"127.0.0.1:{example.free_port()}"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), coordinator, str(i), str(EXAMPLE)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(2)
    ]
    try:
        outputs = [child.communicate(timeout=TIMEOUT) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    reports = []
    for i, (child, (out, err)) in enumerate(zip(children, outputs)):
        assert child.returncode == 0, f"process {i} failed:\n{err[-3000:]}"
        reports.append(json.loads(out.strip().splitlines()[-1].removeprefix("report: ")))
    return reports


def test_two_processes_train_like_one_and_their_checkpoint_restores_anywhere(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _example()
    argv = ["--steps", "3", "--batch", "8", "--hidden", "8"]
    with jax.numpy_dtype_promotion("standard"):
        one, _plain = example.main(argv)
    # two processes, each holding half of the shards, save a checkpoint together
    two, plain_two = example.main([*argv, "--processes", "2", "--checkpoint", str(tmp_path / "ckpt")])
    out = capsys.readouterr().out
    assert "2 process(es)" in out and "shard (8, 2), 4 of 8 here" in out
    assert len(two) == 3
    np.testing.assert_allclose(two, one, rtol=1e-6)
    np.testing.assert_allclose(plain_two, one, rtol=1e-6)
    assert checkpoint.steps(tmp_path / "ckpt") == [3]

    # this one process restores it on its own 8 devices (the checksums say: as saved)
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    like = abstract_trace_sharded(example.model, mesh, example.RULES, np.ones((8, 8), np.float32), 8, 4)
    restored = checkpoint.restore(tmp_path / "ckpt", like=like)
    assert restored["mlp"][0]["weights"].sharding.spec == jax.sharding.PartitionSpec(None, "model")
    flat = jax.tree_util.tree_flatten_with_path(restored)[0]
    assert len(flat) == 5
    arrays: dict[str, Any] = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
    np.savez(tmp_path / "expected.npz", **arrays)

    # and a fresh pair restores it onto the 2-process mesh: the same bits
    for report in _pair(tmp_path):
        assert report["devices"] == 8 and report["local"] == 4
        assert report["shards_here"] == 4 and report["fully_addressable"] is False
        assert report["same"] is True and report["spec"] == "P(None, 'model')"
