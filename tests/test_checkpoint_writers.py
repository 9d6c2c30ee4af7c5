"""zephyr.checkpoint with several processes on one directory: no completed save is ever lost.

Two writer processes import JAX, orbax and zephyr once, then take one run after another: both
save steps into one new directory (a restarted job while the old one still runs), or one saves
with ``keep=1`` while this process reads beside it. Each
writer appends ``writer step`` to its log after every save that returned, and ``refused ...``
for a save that raised; the test then checks the directory: every save that returned is there
and restores bit for bit (step, params and the writer recorded in ``extra``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pathlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from zephyr import checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A read that fails because retention removed its step leaves orbax's other pending reads as
# coroutines that are never awaited; collect them here, where the complaint is expected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_orbax_leftovers() -> Iterator[None]:
    yield
    gc.collect()

# The same function in the writers and here: the params that writer w saves as step s.
PARAMS_SOURCE = """
def params(w, s):
    import jax.numpy as jnp
    return {"w": jnp.arange(256, dtype=jnp.float32) + 1000 * w + s, "b": jnp.full((3,), s, jnp.int32)}
"""
namespace: dict[str, Any] = {}
exec(PARAMS_SOURCE, namespace)  # noqa: S102 - the writers run the same source
params = namespace["params"]

WORKER = PARAMS_SOURCE + textwrap.dedent(
    """
    import sys, time
    import jax, jax.numpy as jnp
    from zephyr import checkpoint

    w = int(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        path, log, saves, keep = line.split()
        for attempt in range(int(saves)):
            try:
                saved = checkpoint.steps(path)
                s = saved[-1] + 1 if saved else 0
                checkpoint.save(path, params(w, s), step=s, keep=None if keep == "-" else int(keep), extra={"writer": w})
                line = f"{w} {s}"
            except Exception as error:  # what each failed save raised, for the test to judge
                line = "refused " + type(error).__name__ + ": " + str(error).replace("\\n", " ")
            with open(log, "a") as f:
                f.write(line + "\\n")
        print("done", flush=True)
    """
)


class Writers:
    """Writer processes started once (JAX and orbax imported once); ``start`` gives them a run."""

    def __init__(self, processes: list[subprocess.Popen[str]]) -> None:
        self.processes = processes

    def start(self, path: pathlib.Path, log: pathlib.Path, writers: int, saves: int, keep: int | None) -> None:
        for w, process in enumerate(self.processes[:writers]):
            assert process.stdin is not None
            process.stdin.write(f"{path} {log}.{w} {saves} {'-' if keep is None else keep}\n")
            process.stdin.flush()

    def wait(self, writers: int) -> None:
        for process in self.processes[:writers]:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "done"


@pytest.fixture(scope="module")
def writers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Writers]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    logs = tmp_path_factory.mktemp("writers")
    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(subprocess.Popen(
                [sys.executable, "-c", WORKER, str(w)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stack.enter_context(open(logs / f"writer{w}.log", "w")), text=True, env=env, cwd=logs,
            ))
            for w in range(2)
        ]
        try:
            for w, process in enumerate(processes):
                assert process.stdout is not None
                assert process.stdout.readline().strip() == "ready", (logs / f"writer{w}.log").read_text()
            yield Writers(processes)
        finally:
            for process in processes:
                process.kill()
                process.wait(timeout=10)


def _bits(tree: Any) -> dict[str, bytes]:
    return {name: np.asarray(value).tobytes() for name, value in tree.items()}


def _log(log: pathlib.Path, writers: int) -> tuple[list[tuple[int, int]], list[str]]:
    """The saves that returned ``(writer, step)`` and the messages of those that raised."""
    completed: list[tuple[int, int]] = []
    refused: list[str] = []
    for w in range(writers):
        file = pathlib.Path(f"{log}.{w}")
        for line in file.read_text().splitlines() if file.exists() else []:
            if line.startswith("refused "):
                refused.append(line)
            else:
                writer, step = line.split()
                completed.append((int(writer), int(step)))
    return completed, refused


def _audit(path: pathlib.Path, completed: list[tuple[int, int]]) -> tuple[int, bool]:
    """``(lost, unreadable)``: completed saves missing or not bit for bit; the directory unlistable."""
    try:
        saved = checkpoint.steps(path)
    except (ValueError, FileNotFoundError):
        return len(completed), True
    lost = 0
    for writer, step in completed:
        if step not in saved:
            lost += 1
            continue
        try:
            run = checkpoint.resume(path, step=step)
        except (ValueError, FileNotFoundError):
            lost += 1
            continue
        if run.extra != {"writer": writer} or _bits(run.params) != _bits(params(writer, step)):
            lost += 1
    return lost, False


# Refusals a second writer may meet: the step the other writer took, or one behind its latest.
NAMED = ("FileExistsError: checkpoint.save(", "ValueError: checkpoint.save(")


def test_two_writers_never_lose_a_completed_save(writers: Writers, tmp_path: pathlib.Path) -> None:
    runs, totals = 20, {"completed": 0, "lost": 0, "unreadable": 0, "refused": 0}
    for run in range(runs):
        path, log = tmp_path / f"ckpt{run}", tmp_path / f"log{run}"
        writers.start(path, log, writers=2, saves=2, keep=None)
        writers.wait(2)
        completed, refused = _log(log, 2)
        lost, unreadable = _audit(path, completed)
        totals["completed"] += len(completed)
        totals["lost"] += lost
        totals["unreadable"] += unreadable
        totals["refused"] += len(refused)
        assert all(line.startswith(tuple("refused " + named for named in NAMED)) for line in refused), refused
        assert sorted(os.listdir(path)) == [".zephyr-lock"] + sorted(str(step) for step in checkpoint.steps(path))
    print(totals)
    assert totals["lost"] == 0 and totals["unreadable"] == 0
    assert totals["completed"] >= runs * 2  # at least one writer's saves in every run


def test_a_reader_beside_a_keep_1_writer_reads_whole_steps_or_is_told_they_were_removed(
    writers: Writers, tmp_path: pathlib.Path
) -> None:
    path, log = tmp_path / "ckpt", tmp_path / "log"
    writers.start(path, log, writers=1, saves=25, keep=1)
    outcomes = {"read": 0, "removed": 0, "latest": 0, "other": 0}
    others: list[str] = []
    deadline = time.monotonic() + 60
    while not pathlib.Path(f"{log}.0").exists() and time.monotonic() < deadline:  # the first save
        time.sleep(0.01)
    while (len(pathlib.Path(f"{log}.0").read_text().splitlines()) < 25) and time.monotonic() < deadline:
        try:
            saved = checkpoint.steps(path)
        except ValueError as error:
            outcomes["other"] += 1
            others.append(f"steps: {error}")
            continue
        for step in saved[-1:]:
            try:
                restored = checkpoint.restore(path, step=step)
                assert _bits(restored) == _bits(params(0, step))
                outcomes["read"] += 1
            except (FileNotFoundError, ValueError) as error:
                named = f"step {step} was removed by retention" in str(error)
                outcomes["removed" if named else "other"] += 1
                if not named:
                    others.append(str(error))
        try:
            run = checkpoint.resume(path)  # the latest complete step, retried if it is removed
            assert _bits(run.params) == _bits(params(0, run.step))
            outcomes["latest"] += 1
        except (FileNotFoundError, ValueError) as error:
            outcomes["other"] += 1
            others.append(f"resume: {error}")
    writers.wait(1)
    print(outcomes, others[:3])
    completed, refused = _log(log, 1)
    assert not refused and len(completed) == 25
    assert outcomes["other"] == 0, others[:5]
    assert outcomes["read"] + outcomes["latest"] > 0
