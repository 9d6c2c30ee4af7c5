"""zephyr.checkpoint survives SIGKILL at any point of a save: the last complete save restores bit for bit.

One helper process imports JAX, orbax and zephyr once (no JAX backend yet), then forks a child
per trial. The child saves in a loop (``params(i)`` for i = 0, 1, ...) and appends ``i`` to a
progress file after each save returns; the test SIGKILLs it after a random delay and checks the
directory: the newest checkpoint is ``params(last)`` or ``params(last + 1)``, bit for bit,
never missing once a save has returned. Three loops: overwriting one path, saving fresh paths,
and numbered steps with ``keep=2``.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The same function in the helper and here: the params of save number i.
PARAMS_SOURCE = """
def params(i):
    import jax.numpy as jnp
    return {
        "w": jnp.arange(4096, dtype=jnp.float32) * 0.5 + i,
        "b": jnp.full((64,), i, jnp.bfloat16),
        "layers": {0: jnp.full((3, 5), i, jnp.int32), 1: jnp.full((7,), -i, jnp.int8)},
    }
"""
namespace: dict[str, Any] = {}
exec(PARAMS_SOURCE, namespace)  # noqa: S102 - the helper runs the same source
params = namespace["params"]

HELPER = PARAMS_SOURCE + textwrap.dedent(
    """
    import os, sys, time
    import jax, jax.numpy as jnp, orbax.checkpoint
    from zephyr import checkpoint  # imported once; the backend starts in each forked child

    def loop(mode, path, progress):
        deadline = time.monotonic() + 30  # never outlive a test that died
        i = 0
        while time.monotonic() < deadline:
            if mode == "overwrite":
                checkpoint.save(path, params(i), overwrite=True)
            elif mode == "fresh":
                checkpoint.save(os.path.join(path, str(i)), params(i))
            else:
                checkpoint.save(path, params(i), step=i, keep=2)
            with open(progress, "a") as f:
                f.write(f"{i}\\n")
            i += 1

    print("ready", flush=True)
    for line in sys.stdin:
        mode, path, progress = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                loop(mode, path, progress)
            finally:
                os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
    """
)


def _same(a: Any, b: Any) -> bool:
    flat_a, flat_b = _leaves(a), _leaves(b)
    return flat_a.keys() == flat_b.keys() and all(
        flat_a[k].dtype == flat_b[k].dtype and np.asarray(flat_a[k]).tobytes() == np.asarray(flat_b[k]).tobytes()
        for k in flat_a
    )


def _leaves(tree: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(tree, dict):
        out: dict[tuple[Any, ...], Any] = {}
        for key, value in tree.items():  # pyright: ignore[reportUnknownVariableType]  # any tree
            out.update(_leaves(value, prefix + (key,)))
        return out
    return {prefix: tree}


def _completed(progress: pathlib.Path) -> int | None:
    if not progress.exists():
        return None
    lines = progress.read_text().split()
    return int(lines[-1]) if lines else None


def _never_written(error: Exception) -> bool:
    """What restore says of a path whose first save was killed before it completed."""
    text = str(error)
    return "no checkpoint at" in text or text.endswith("is not a zephyr checkpoint: it is empty")


def _check_overwrite(path: pathlib.Path, last: int | None) -> str:
    try:
        restored = checkpoint.restore(path)
    except (FileNotFoundError, ValueError) as error:
        assert last is None, f"save {last} had returned, yet no checkpoint is left: {error}"
        assert _never_written(error), error
        return "none yet"
    candidates = [0] if last is None else [last, last + 1]
    assert any(_same(restored, params(i)) for i in candidates), f"the checkpoint is none of saves {candidates}"
    return "restored"


def _check_fresh(path: pathlib.Path, last: int | None) -> str:
    done = -1 if last is None else last
    for i in range(done + 1):
        assert _same(checkpoint.restore(path / str(i)), params(i))
    try:
        restored = checkpoint.restore(path / str(done + 1))
    except (FileNotFoundError, ValueError) as error:
        assert _never_written(error), error
        return "interrupted"
    assert _same(restored, params(done + 1))
    return "restored"


def _check_steps(path: pathlib.Path, last: int | None) -> str:
    saved = checkpoint.steps(path)
    if not saved:
        assert last is None
        return "none yet"
    latest = saved[-1]
    assert latest in ([0] if last is None else [last, last + 1]) and len(saved) <= 3
    for step in saved:
        assert _same(checkpoint.restore(path, step=step), params(step))
    return "restored"


def _wait_for(progress: pathlib.Path, count: int, deadline: float) -> float:
    """Poll until ``count`` saves have returned; the time then (at once for ``count == 0``)."""
    while count:
        done = _completed(progress)
        if done is not None and done + 1 >= count:
            break
        assert time.monotonic() < deadline, f"the saving child did not finish {count} saves in time"
        time.sleep(0.005)
    return time.monotonic()


CHECKS = {"overwrite": _check_overwrite, "fresh": _check_fresh, "steps": _check_steps}


def _trial(helper: subprocess.Popen[str], mode: str, path: pathlib.Path, progress: pathlib.Path,
           rng: random.Random, timing: dict[str, float], children: list[int]) -> str:
    """Fork a saving child, SIGKILL it at a random point, check what is left."""
    assert helper.stdin is not None and helper.stdout is not None
    helper.stdin.write(f"{mode} {path} {progress}\n")
    helper.stdin.flush()
    children.append(int(helper.stdout.readline()))
    # Kill during save number `after` (0: the first, to a fresh path), at a random point of
    # it: the durations are measured as the trials go (the machine's load varies).
    after, start = rng.choice([0, 1, 2]), time.monotonic()
    first_done = _wait_for(progress, min(after, 1), start + 60)
    done_at = _wait_for(progress, after, start + 60)
    if after:
        timing["first"] = 0.7 * timing["first"] + 0.3 * (first_done - start)
    if after > 1:
        timing["next"] = 0.7 * timing["next"] + 0.3 * (done_at - first_done) / (after - 1)
    time.sleep(rng.uniform(0, timing["first"] if after == 0 else timing["next"]))
    os.kill(children[-1], signal.SIGKILL)
    assert helper.stdout.readline().strip() == "reaped"
    children.pop()
    return CHECKS[mode](path, _completed(progress))


def test_sigkill_at_random_points_never_loses_a_checkpoint(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    rng = random.Random(15)
    trials = [mode for mode in CHECKS for _trial in range(8)]  # 24 kills
    rng.shuffle(trials)
    outcomes: dict[str, list[str]] = {mode: [] for mode in CHECKS}
    timing = {"first": 1.0, "next": 0.3}  # seconds; updated from what the children do
    children: list[int] = []
    with open(tmp_path / "helper.log", "w") as log, subprocess.Popen(
        [sys.executable, "-c", HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
        text=True, env=env, cwd=tmp_path,
    ) as helper:
        try:
            assert helper.stdout is not None
            assert helper.stdout.readline().strip() == "ready", (tmp_path / "helper.log").read_text()
            for n, mode in enumerate(trials):
                path, progress = tmp_path / f"{mode}{n}", tmp_path / f"progress{n}"
                outcomes[mode].append(_trial(helper, mode, path, progress, rng, timing, children))
        finally:
            for child in children:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            helper.kill()
            helper.wait(timeout=10)
    print(outcomes)
    assert sum(len(v) for v in outcomes.values()) >= 24
    # the saves were killed at different points: some before any save returned, some later
    assert "restored" in outcomes["overwrite"] and "interrupted" in outcomes["fresh"]


@pytest.mark.parametrize("mode", sorted(CHECKS))
def test_the_checks_can_fail(tmp_path: pathlib.Path, mode: str) -> None:
    """A checkpoint that is not the last save's is caught by each check."""
    if mode == "fresh":
        checkpoint.save(tmp_path / "0", params(1))
    else:
        checkpoint.save(tmp_path, params(5), step=5)
    with pytest.raises(AssertionError):
        CHECKS[mode](tmp_path, 2)
    assert jnp.asarray(params(1)["b"]).dtype == jnp.bfloat16
