"""zephyr.checkpoint's lock, retention and readers beside a writer, one process, deterministic."""

from __future__ import annotations

import fcntl
import gc
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from zephyr import _checkpoint, checkpoint

# A read that fails because its step was removed leaves orbax's other pending reads as
# coroutines that are never awaited; collect them here, where the complaint is expected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_orbax_leftovers() -> Iterator[None]:
    yield
    gc.collect()


def params(i: int) -> dict[str, Any]:
    return {"w": jnp.full((3,), i, jnp.float32)}


def _hold(path: pathlib.Path, record: str = "pid 4242 on elsewhere\n") -> int:
    """Take the lock as another save would (a second open file: flock excludes it even here)."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / ".zephyr-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, record.encode())
    return fd


# --- the lock ---------------------------------------------------------------------------------------


def test_a_second_writer_times_out_naming_the_directory_and_the_holder(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0)
    fd = _hold(path)
    try:
        start = time.monotonic()
        message = (
            r"checkpoint.save\(`.*ck`\): another save holds the lock on `.*ck` \(held by pid 4242 on "
            r"elsewhere\) and did not release it within lock_timeout=0.2 s; nothing was changed"
        )
        with pytest.raises(checkpoint.CheckpointLockTimeout, match=message):
            checkpoint.save(path, params(1), step=1, lock_timeout=0.2)
        assert 0.2 <= time.monotonic() - start < 5
    finally:
        os.close(fd)
    assert checkpoint.steps(path) == [0]
    assert issubclass(checkpoint.CheckpointLockTimeout, TimeoutError)


def test_a_holder_that_did_not_record_its_pid_is_said_so(tmp_path: pathlib.Path) -> None:
    fd = _hold(tmp_path / "ck", record="")
    try:
        with pytest.raises(TimeoutError, match=r"\(its holder did not record its pid\)"):
            checkpoint.save(tmp_path / "ck", params(0), lock_timeout=0)
    finally:
        os.close(fd)


def test_a_waiting_save_goes_on_once_the_lock_is_released(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    fd = _hold(path)
    threading.Timer(0.3, os.close, (fd,)).start()
    start = time.monotonic()
    checkpoint.save(path, params(7), step=7, lock_timeout=30)
    assert time.monotonic() - start >= 0.3
    assert checkpoint.restore(path)["w"].tolist() == [7, 7, 7]
    assert (path / ".zephyr-lock").read_text() == ""  # the holder's record is cleared on release


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    path.mkdir()
    source = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid %d' % os.getpid())\n"
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", source, str(path / ".zephyr-lock")], stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(checkpoint.CheckpointLockTimeout, match=f"held by pid {holder.pid}"):
        checkpoint.save(path, params(0), lock_timeout=0.05)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    checkpoint.save(path, params(0), lock_timeout=5)  # at once: the kernel released the flock
    assert checkpoint.steps(path) == [0]


def test_a_leftover_is_removed_only_once_no_save_holds_the_lock(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0)
    in_progress = path / "1.orbax-checkpoint-tmp-123"  # another save's half-written step
    in_progress.mkdir()
    fd = _hold(path)
    with pytest.raises(checkpoint.CheckpointLockTimeout):
        checkpoint.save(path, params(2), step=2, lock_timeout=0.1)
    assert in_progress.exists()  # never removed under a live save
    os.close(fd)  # that save died without cleaning up: its folder is a leftover now
    checkpoint.save(path, params(2), step=2)
    assert sorted(os.listdir(path)) == [".zephyr-lock", "0", "2"]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("10", TypeError, "`lock_timeout` must be a number of seconds, got str: '10'"),
        (True, TypeError, "`lock_timeout` must be a number of seconds, got bool: True"),
        (-1, ValueError, "`lock_timeout` must be >= 0 seconds, got -1"),
        (float("nan"), ValueError, "`lock_timeout` must be >= 0 seconds, got nan"),
    ],
)
def test_a_bad_lock_timeout_is_named(tmp_path: pathlib.Path, value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        checkpoint.save(tmp_path / "ck", params(0), lock_timeout=value)
    assert not (tmp_path / "ck").exists()


def test_the_lock_file_is_part_of_a_checkpoint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    path.mkdir()
    (path / ".zephyr-lock").write_text("")
    assert checkpoint.steps(path) == []
    with pytest.raises(ValueError, match="is not a zephyr checkpoint: it is empty"):
        checkpoint.restore(path)
    checkpoint.save(path, params(1))
    assert checkpoint.steps(path) == [0]


# --- retention never deletes what zephyr did not write --------------------------------------------


def test_retention_keeps_a_users_file_and_warns(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run"
    checkpoint.save(path, params(0), step=0, keep=1)
    (path / "0" / "eval_results.json").write_text('{"accuracy": 0.9}')
    message = (
        r"checkpoint.save\(`.*run`\): step 0 was removed, but its folder `.*run/0` is kept: it holds "
        r"`eval_results.json`, which zephyr did not write"
    )
    with pytest.warns(checkpoint.RetentionWarning, match=message):
        checkpoint.save(path, params(1), step=1, keep=1)
    assert sorted(os.listdir(path / "0")) == ["eval_results.json"]
    assert (path / "0" / "eval_results.json").read_text() == '{"accuracy": 0.9}'
    assert checkpoint.steps(path) == [1]
    assert checkpoint.restore(path)["w"].tolist() == [1, 1, 1]
    with pytest.raises(FileNotFoundError, match=r"no step 0 in `.*run` \(its steps: \[1\]\)"):
        checkpoint.restore(path, step=0)
    checkpoint.save(path, params(2), step=2, keep=1)  # the kept folder is left alone, silently
    assert sorted(os.listdir(path)) == [".zephyr-lock", "0", "2"]


def test_overwrite_keeps_a_users_file_too(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0))
    (path / "0" / "notes").mkdir()
    (path / "0" / "notes" / "a.txt").write_text("mine")
    with pytest.warns(checkpoint.RetentionWarning, match=r"it holds `notes`"):
        checkpoint.save(path, params(1), overwrite=True)
    assert (path / "0" / "notes" / "a.txt").read_text() == "mine"
    assert checkpoint.steps(path) == [1]


def test_a_kept_folder_is_never_saved_into(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(3), step=3)
    (path / "3" / "eval.json").write_text("{}")
    with pytest.warns(checkpoint.RetentionWarning):
        checkpoint.save(path, params(1), step=1, overwrite=True)
    assert checkpoint.steps(path) == [1]
    with pytest.raises(FileExistsError, match=r"`.*ck/3` is the folder of a removed step, kept because it holds files zephyr did not write"):
        checkpoint.save(path, params(3), step=3)
    checkpoint.save(path, params(9), overwrite=True)  # step=None: after the kept folder too
    assert checkpoint.steps(path) == [4]
    assert (path / "3" / "eval.json").exists()


def test_only_kept_folders_is_no_checkpoint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    (path / "5").mkdir(parents=True)
    (path / "5" / "eval.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at `.*ck`: it holds only the folders of removed steps \[5\]"):
        checkpoint.restore(path)


def test_a_removal_the_file_system_refuses_warns_after_the_save(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0, keep=1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(shutil, "rmtree", refuse)  # the module zephyr removes folders with
    with pytest.warns(checkpoint.RetentionWarning, match=r"`.*ck/0.zephyr-deleting` could not be removed \(PermissionError: \[Errno 13\] Permission denied\); remove it by hand"):
        checkpoint.save(path, params(1), step=1, keep=1)  # returns: the step is saved
    assert checkpoint.steps(path) == [1]
    assert checkpoint.restore(path)["w"].tolist() == [1, 1, 1]
    monkeypatch.undo()
    checkpoint.save(path, params(2), step=2, keep=1)  # the next save finishes the removal
    assert sorted(os.listdir(path)) == [".zephyr-lock", "2"]


def test_a_half_removed_step_with_a_users_file_is_finished_and_kept(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0)
    (path / "0" / "eval.json").write_text("{}")
    os.rename(path / "0", path / "0.zephyr-deleting")  # a save killed while it removed step 0
    assert checkpoint.steps(path) == []
    with pytest.warns(checkpoint.RetentionWarning, match="step 0 was removed, but its folder"):
        checkpoint.save(path, params(1), step=1)
    assert sorted(os.listdir(path / "0")) == ["eval.json"]
    assert checkpoint.steps(path) == [1]


# --- readers beside a writer ----------------------------------------------------------------------


def _remove_while_reading(monkeypatch: pytest.MonkeyPatch, path: pathlib.Path, times: int) -> list[int]:
    """Make each of the next ``times`` reads find its step removed (and a newer one saved) mid-read."""
    read = _checkpoint._read_trees  # pyright: ignore[reportPrivateUsage]  # the read beside which a save runs
    seen: list[int] = []

    def removed_meanwhile(ocp: Any, root: str, number: int, *args: Any) -> Any:
        seen.append(number)
        if len(seen) <= times:
            checkpoint.save(path, params(number + 1), step=number + 1, keep=1)
        return read(ocp, root, number, *args)

    monkeypatch.setattr(_checkpoint, "_read_trees", removed_meanwhile)
    return seen


def test_a_step_removed_while_it_is_read_is_named(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0, keep=1)
    _remove_while_reading(monkeypatch, path, times=1)
    with pytest.raises(FileNotFoundError, match=re.escape("step 0 was removed by retention (a save with `keep` or `overwrite` beside this call) while it was read; the steps now: [1]")):
        checkpoint.restore(path, step=0)


def test_reading_the_latest_step_retries_the_newest(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0, keep=1)
    seen = _remove_while_reading(monkeypatch, path, times=2)
    run = checkpoint.resume(path)
    assert seen == [0, 1, 2] and run.step == 2 and run.params["w"].tolist() == [2, 2, 2]
    assert checkpoint.restore(path)["w"].tolist() == [2, 2, 2]


def test_reading_the_latest_step_gives_up_after_five_removals(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, params(0), step=0, keep=1)
    _remove_while_reading(monkeypatch, path, times=5)
    with pytest.raises(FileNotFoundError, match=r"step 4 was removed by retention .* \(newer steps were removed 5 times in a row\)"):
        checkpoint.restore(path)


def test_real_damage_is_still_called_damage(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ck"
    checkpoint.save(path, {"w": jnp.arange(1000.0)}, step=0, keep=1)
    for file in (path / "0" / "params" / "ocdbt.process_0" / "d").iterdir():
        data = bytearray(file.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 8):
            data[i] ^= 0xFF
        file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"`params\['w'\]` in step 0 does not match its checksum"):
        checkpoint.restore(path)
    np.testing.assert_array_equal(checkpoint.steps(path), [0])


def test_a_listing_under_a_rename_starts_again(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename during ``listdir`` may hide both names; the step there all along is not missed."""
    path = tmp_path / "ck"
    checkpoint.save(path, params(1), step=1)
    listdir = os.listdir
    calls: list[int] = []

    def during_a_rename(directory: Any) -> list[str]:
        calls.append(1)
        if os.fspath(directory) == str(path) and len(calls) == 1:
            return ["1.zephyr-deleting", ".zephyr-lock"]  # step 1 seen mid-rename: gone when looked at
        return listdir(directory)

    monkeypatch.setattr(os, "listdir", during_a_rename)
    assert checkpoint.steps(path) == [1]
    assert len(calls) == 2
