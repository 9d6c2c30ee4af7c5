"""Checkpoints of params, state and optimizer state with orbax-checkpoint; nothing is ever half-lost.

A checkpoint is a directory of numbered steps, each one orbax composite checkpoint::

    ckpt/
      0/                                 params, state, opt_state (orbax PyTreeSave: tensorstore
      10/                                OCDBT, sharded arrays written shard by shard) and zephyr
                                         (JSON: every leaf's path, shape and dtype, the step, extra)
      11.orbax-checkpoint-tmp-1712345/   a save killed half way: ignored, removed by the next save
      3.zephyr-deleting/                 a step being removed: ignored, removed by the next save
      2/eval_results.json                a user's file in a step retention removed: kept, warned
      .zephyr-lock                       held (flock) by the save under way, if any

orbax writes a step beside its final name and renames it into place once complete, so a step
is whole or absent; zephyr never writes into a step that exists, and removes a step by first
renaming it out of the way. Replacing a checkpoint (``overwrite=True``) writes a new step and
only then removes the old ones: at every instant the directory holds a complete checkpoint.
Anything in the directory that zephyr did not write is an error, never deleted.

Several writers: a save holds an exclusive lock on ``.zephyr-lock`` from before it reads the
directory until its retention is done, so it never sees another save's half-written step, and
leftovers it finds can only be those of a save that died. Readers take no lock: a step removed
while it is read is named as such, and a read of the latest step retries the newest one.

Restoring trusts nothing it reads: the metadata's form, the stored arrays' own shapes and
dtypes (orbax's tree metadata, then the arrays as read, never cast) and the model ``like``
are checked against each other. orbax writes dict keys as strings; the JSON is what gives
``params[0]`` back as an int key.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import numbers
import operator
import os
import re
import shutil
import socket
import time
import warnings
from collections.abc import Generator, Mapping
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from ._tree import flatten_with_paths, is_leaf_record, path_of
from .core._paths import nest
from .core._types import Path, format_path

FORMAT = "zephyr-checkpoint"
VERSION = 2
ROOTS = ("params", "state", "opt_state")

_STEP = re.compile(r"^[0-9]+$")
_LEFTOVER = re.compile(r"^[0-9]+\.(orbax-checkpoint-tmp.*|zephyr-deleting)$")
_DELETING = ".zephyr-deleting"
LOCK_FILE = ".zephyr-lock"
"""The file in a checkpoint directory that a save locks (``fcntl.flock``) while it runs."""
_WRITTEN = frozenset({"zephyr", "_CHECKPOINT_METADATA", "commit_success.txt", *ROOTS})
"""What orbax and zephyr write at the top of a step; retention removes these and nothing else."""
_SCAN_TRIES = 20
"""How many times a listing starts again when an entry vanished under it (a save beside it)."""
_READ_TRIES = 5
"""How many times a read of the latest step moves on to the newest one after retention removed it."""


class CheckpointLockTimeout(TimeoutError):
    """A save waited ``lock_timeout`` seconds for another save to the same directory to finish.

    Example:
        >>> from zephyr import checkpoint
        >>> issubclass(checkpoint.CheckpointLockTimeout, TimeoutError)
        True
    """


class RetentionWarning(UserWarning):
    """Retention (``keep=``, ``overwrite=True``) kept or could not remove part of an old step.

    The new step is saved either way; the warning names the folder and why it is still there
    (files zephyr did not write, or the error the file system gave).

    Example:
        >>> import warnings
        >>> from zephyr import checkpoint
        >>> warnings.simplefilter("ignore", checkpoint.RetentionWarning)  # e.g. in a sweep
    """

Entry = tuple[tuple[int, ...], np.dtype[Any]]
"""A leaf as stored or described: ``(shape, dtype)``."""


def _orbax() -> Any:
    """``orbax.checkpoint``, imported when first used (it is slow to import)."""
    with warnings.catch_warnings():
        # jax 0.12 deprecates jax.sharding.SingleDeviceSharding (for
        # make_single_device_sharding / is_single_device_sharding); orbax-checkpoint 0.12.8,
        # the newest, still names it when imported. Only that warning, only from orbax.
        warnings.filterwarnings(
            "ignore",
            message=r"jax\.sharding\.SingleDeviceSharding is deprecated",
            category=DeprecationWarning,
            module=r"orbax\.",
        )
        import orbax.checkpoint as ocp  # type: ignore[import-untyped]  # orbax ships no py.typed
    return ocp


# ---------------------------------------------------------------------------------------------
# Trees in, trees out: paths and keys that round-trip


def _unsortable(node: object) -> bool:
    """Whether ``node`` is a dict whose keys cannot be sorted (jax.tree_util sorts them)."""
    if not isinstance(node, dict):
        return False
    try:
        sorted(cast("dict[Any, object]", node))
    except TypeError:
        return True
    return False


def _flatten(tree: object, root: str, who: str, *, saving: bool) -> tuple[dict[Path, Any], Any]:
    """``{path: leaf}`` and the treedef; keys that would not come back as they are refused."""
    try:
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf_record)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax's KeyPath is untyped
    except (TypeError, ValueError) as error:
        # Flattened again with those dicts as leaves: the first is the one to name.
        found = [(path, node) for path, node in flatten_with_paths(tree, _unsortable)[0] if _unsortable(node)]
        if not found:
            raise
        raise TypeError(
            f"{who}: `{format_path(found[0][0], root)}` has keys {list(found[0][1])} that cannot be sorted; "
            "jax.tree_util sorts dict keys: use one kind of key (str or int) per dict"
        ) from error
    out: dict[Path, Any] = {}
    leaves: list[tuple[tuple[Any, ...], Any]] = flat  # pyright: ignore[reportUnknownVariableType]  # same
    for key_path, value in leaves:
        for depth, entry in enumerate(key_path):
            key = entry.key if isinstance(entry, jax.tree_util.DictKey) else 0
            if isinstance(key, bool) or not isinstance(key, str | int):
                parent = format_path(path_of(key_path[:depth]), root)
                raise TypeError(f"{who}: `{parent}[{key!r}]`: a saved key must be a str or an int, got {type(key).__name__}")
        path = path_of(key_path)
        name = format_path(path, root)
        if saving:
            if not isinstance(value, jax.Array | np.ndarray | np.generic):
                raise TypeError(f"{who}: `{name}` must be an array, got {type(value).__name__}")
            if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # numpy's generic dtype
                raise TypeError(
                    f"{who}: `{name}` is a typed PRNG key, which orbax cannot store; "
                    "save `jax.random.key_data(key)` and rebuild it with `jax.random.wrap_key_data`"
                )
            value = jnp.asarray(value)  # pyright: ignore[reportUnknownMemberType]  # jax types `device` partially
        elif not (hasattr(value, "shape") and hasattr(value, "dtype")):  # a Leaf has both too
            raise TypeError(
                f"{who}: `{name}` must be an array, a jax.ShapeDtypeStruct or a zephyr.tags.Leaf, got {type(value).__name__}"
            )
        out[path] = value
    return out, treedef  # pyright: ignore[reportUnknownVariableType]  # jax's PyTreeDef is untyped


def _bits(x: jax.Array) -> jax.Array:
    """The array's bits as uint32 (a trailing axis of 2 for 64-bit dtypes)."""
    if x.dtype == np.dtype(bool):
        return x.astype(jnp.uint8).astype(jnp.uint32)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        return jnp.stack([_bits(jnp.real(x)), _bits(jnp.imag(x))], axis=-1)
    width = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[np.dtype(x.dtype).itemsize]
    return jax.lax.bitcast_convert_type(x, width).astype(jnp.uint32)


def _checksum(x: jax.Array) -> jax.Array:
    """A position-weighted sum of the bits, mod 2**32: any one changed element changes it."""
    bits = _bits(x)
    index = jax.lax.iota(jnp.uint32, bits.size).reshape(bits.shape)  # the row-major position, mod 2**32
    weights = index * jnp.uint32(0x3C6EF362) + jnp.uint32(1)  # even times index, plus one: odd, so invertible mod 2**32
    return jnp.sum(bits * weights, dtype=jnp.uint32)


_checksums_jit: Any = jax.jit(lambda leaves: [_checksum(x) for x in leaves])  # pyright: ignore[reportUnknownMemberType, reportUnknownLambdaType, reportUnknownArgumentType, reportUnknownVariableType]  # jax.jit is partially typed


def _checksums(leaves: list[jax.Array]) -> list[int]:
    """Each leaf's checksum: one compiled program for a whole tree; shards stay where they are."""
    return [int(c) for c in _checksums_jit(leaves)]


def _stored(path: Path) -> tuple[str, ...]:
    """The path as orbax stores it: every key a string."""
    return tuple(str(key) for key in path)


def _check_names(flat: Mapping[Path, Any], root: str, who: str) -> None:
    """orbax names a leaf by its keys joined with '.': two paths must not give one name."""
    seen: dict[str, Path] = {}
    for path in flat:
        name = ".".join(_stored(path))
        if name in seen:
            raise ValueError(
                f"{who}: `{format_path(seen[name], root)}` and `{format_path(path, root)}` would be "
                f"stored under the same name `{name}` (orbax joins keys with '.'): rename one"
            )
        seen[name] = path


def _check_extra(extra: Mapping[str, Any] | None, who: str) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
        raise TypeError(f"{who}: `extra` must be a dict of JSON (or None), got {type(extra).__name__}: {extra!r}")
    try:
        text = json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{who}: `extra` must be JSON (dicts with str keys, lists, numbers, str): {error}") from error
    if json.loads(text) != extra:
        raise TypeError(
            f"{who}: `extra` would not come back as it is from JSON (int dict keys become str, "
            f"tuples become lists): {extra!r}"
        )
    return dict(extra)


# ---------------------------------------------------------------------------------------------
# The directory: steps, leftovers, and nothing else


class _Listing(NamedTuple):
    steps: list[int]  # complete steps, ascending
    leftovers: list[str]  # half-written or half-removed steps
    kept: list[int]  # folders of removed steps that hold files zephyr did not write


def _dangling(path: str) -> str | None:
    """``path``'s target if it is a symbolic link to nothing."""
    if os.path.islink(path) and not os.path.exists(path):
        return os.readlink(path)
    return None


def _scan(root: str, who: str, tries: int = _SCAN_TRIES) -> _Listing:
    """The steps in ``root``; anything zephyr did not write there is an error naming it.

    Entries that vanish while they are listed (a step renamed into place, or out of the way
    by the retention of a save beside this call) are skipped, never called foreign; the
    listing then starts again (at most ``tries`` times): a rename may hide both its
    names, and a step there all along (the new one renamed in before the old one was
    removed) must not be missed.
    """
    if not os.path.lexists(root):
        return _Listing([], [], [])
    target = _dangling(root)
    if target is not None:
        raise ValueError(
            f"{who}: `{root}` is a dangling symbolic link (to `{target}`, which does not exist), not a "
            "zephyr checkpoint; nothing was changed"
        )
    if not os.path.isdir(root):
        raise ValueError(f"{who}: `{root}` is a file, not a zephyr checkpoint; nothing was changed")
    listing, vanished = _Listing([], [], []), False
    foreign: list[str] = []
    for name in sorted(os.listdir(root)):
        full = os.path.join(root, name)
        plain_dir = os.path.isdir(full) and not os.path.islink(full)
        if name == LOCK_FILE and os.path.isfile(full) and not os.path.islink(full):
            continue
        if _STEP.match(name) and plain_dir and os.path.isdir(os.path.join(full, "zephyr")):
            listing.steps.append(int(name))
        elif not os.path.lexists(full):  # renamed meanwhile: into place, or out of the way
            vanished = True
        elif _STEP.match(name) and plain_dir:
            listing.kept.append(int(name))
        elif _LEFTOVER.match(name) and plain_dir:
            listing.leftovers.append(name)
        else:
            target = _dangling(full)
            foreign.append(f"`{name}`" + ("" if target is None else f" (a dangling symbolic link to `{target}`)"))
    if vanished and tries > 1:
        return _scan(root, who, tries - 1)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ValueError(
            f"{who}: `{root}` is not a zephyr checkpoint: it holds {foreign[0]}{more}, which "
            "zephyr did not write; nothing was changed"
        )
    listing.steps.sort()
    listing.kept.sort()
    return listing


def steps(directory: str | os.PathLike[str]) -> list[int]:
    """The complete steps saved in ``directory``, oldest first (``[]`` if nothing is there).

    A save that was interrupted leaves no step: its half-written files are ignored here and
    removed by the next :func:`save`. Neither is the folder of a removed step that retention
    kept because it holds your files. Listing takes no lock: a step saved or removed meanwhile
    is in the list or not, never an error.

    Args:
        directory: a checkpoint directory written by :func:`save`.

    Returns:
        The step numbers, ascending.

    Raises:
        ValueError: ``directory`` holds files that zephyr did not write.

    Example:
        >>> import jax.numpy as jnp, tempfile, os
        >>> from zephyr import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run")
        >>> checkpoint.steps(path)
        []
        >>> for step in (100, 200, 300):
        ...     checkpoint.save(path, {"w": jnp.ones(2) * step}, step=step, keep=2)
        >>> checkpoint.steps(path)
        [200, 300]
    """
    root, who = _where("steps", directory)
    return _scan(root, who).steps


def _barrier(name: str) -> None:
    if jax.process_count() > 1:  # pyright: ignore[reportUnknownMemberType]  # jax types `backend` partially
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _where(function: str, directory: object) -> tuple[str, str]:
    """The absolute directory and the call's name for messages; a directory of another type is refused."""
    given = f"{type(directory).__name__}: {directory!r}"
    path = os.fspath(cast("os.PathLike[str]", directory)) if isinstance(directory, os.PathLike) else directory
    if not isinstance(path, str):  # bytes, or a PathLike of bytes
        raise TypeError(f"checkpoint.{function}: `directory` must be a str or an os.PathLike of str, got {given}")
    if not path:
        raise ValueError(f"checkpoint.{function}: `directory` is the empty string (it would mean the current directory); name it")
    return os.path.abspath(path), f"checkpoint.{function}(`{path}`)"


@contextlib.contextmanager
def _locked(root: str, timeout: float, who: str) -> Generator[None]:
    """Hold the exclusive lock on ``root``'s lock file; wait at most ``timeout`` seconds for it.

    ``fcntl.flock`` rather than the ``filelock`` package: fcntl is in the standard library (no
    new dependency), and an flock is advisory and belongs to the open file, so the kernel
    releases it when the process exits however it exits: a SIGKILLed writer never leaves a
    stale lock behind (the file stays; only a held flock means "a save is under way"). On NFS,
    Linux maps flock to the server's byte-range locks, so writers on several hosts exclude
    each other too. The holder writes its pid and host into the file for the timeout message.
    """
    fd = os.open(os.path.join(root, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, pause = time.monotonic() + timeout, 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                    raise CheckpointLockTimeout(
                        f"{who}: another save holds the lock on `{root}` ("
                        + (f"held by {holder}" if holder else "its holder did not record its pid")
                        + f") and did not release it within lock_timeout={timeout:g} s; nothing was changed. "
                        "Wait for that save, or stop its process (the lock is released when it exits)"
                    ) from None
                time.sleep(min(pause, left))
                pause = min(2 * pause, 0.1)  # quick for a short wait, light on the (NFS) lock server for a long one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _remove(root: str, name: str, who: str) -> None:
    """Remove a step or a leftover; what it cannot remove is warned about, never raised.

    A step is first renamed out of the way (atomically: readers see it whole or not at all),
    then only what zephyr and orbax wrote in it is removed: an empty folder is removed, one
    that still holds files zephyr did not write is renamed back to its number (no step: it has
    no metadata) and kept, with a :class:`RetentionWarning`. An orbax temporary folder is
    orbax's alone and removed whole. This runs after the new step is saved: a file system that
    refuses must not turn a completed save into an error.
    """
    path = os.path.join(root, name)
    number = name.split(".")[0]
    try:
        if not _STEP.match(name) and not name.endswith(_DELETING):  # an orbax temporary folder
            shutil.rmtree(path)
            return
        if _STEP.match(name):
            os.rename(path, path + _DELETING)
            path += _DELETING
        for entry in sorted(_WRITTEN.intersection(os.listdir(path))):
            full = os.path.join(path, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
        others = sorted(os.listdir(path))
        if not others:
            os.rmdir(path)
            return
        kept = os.path.join(root, number)
        if not os.path.lexists(kept):
            os.rename(path, kept)
            path = kept
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        message = (
            f"step {number} was removed, but its folder `{path}` is kept: it holds `{others[0]}`{more}, "
            "which zephyr did not write (move it out and remove the folder when you no longer need it)"
        )
    except OSError as error:
        message = f"`{path}` could not be removed ({type(error).__name__}: {error}); remove it by hand"
    warnings.warn(f"{who}: {message}", RetentionWarning, stacklevel=3)


def save(
    directory: str | os.PathLike[str],
    params: object,
    state: object = None,
    *,
    opt_state: object = None,
    extra: Mapping[str, Any] | None = None,
    step: int | None = None,
    keep: int | None = None,
    overwrite: bool = False,
    lock_timeout: float = 600.0,
) -> None:
    """Save ``params`` (and ``state``, ``opt_state``, ``extra``) to ``directory`` with orbax.

    Every save is a new numbered step, written beside the others and renamed into place once
    complete: a save that is killed half way leaves the previous checkpoint restorable. Sharded
    arrays are written shard by shard by the processes that hold them (call ``save`` from
    every process). Int and str keys, bfloat16 and every other dtype come back bit for bit;
    zero-size leaves (which orbax refuses) are kept in the metadata alone.

    Several writers on one directory (a restarted job while the old one still runs) take turns:
    a save holds a lock on ``directory/.zephyr-lock`` (``fcntl.flock``, released by the kernel
    even when the process is killed) and a second save waits for it. A save that returned is
    never removed by another save's cleanup, only by a later save's ``keep``/``overwrite``.

    Args:
        directory: the checkpoint directory. It must be new, empty, or a checkpoint written
            by :func:`save`; anything else there is an error and is never deleted.
        params: a nested dict of arrays, e.g. from :func:`zephyr.trace`.
        state: an optional second tree (running statistics), from ``trace_with_state``.
        opt_state: an optional optimizer state (any pytree of arrays, e.g. optax's).
        extra: JSON to keep with the step, e.g. the data position ``{"epoch": 2, "batch": 17}``.
        step: the step number. ``None``: this save replaces the checkpoint (it needs
            ``overwrite`` if one exists). A number: the step is added; it must be after every
            step already saved.
        keep: after saving, remove all but the newest ``keep`` steps. Files you wrote inside
            a step's folder are never removed: the folder is kept (it is no step any more) and
            a :class:`RetentionWarning` names it; so does a removal the file system refuses.
        overwrite: after saving, remove every previous step.
        lock_timeout: how many seconds to wait for another save to the same directory.

    Raises:
        FileExistsError: ``directory`` holds a checkpoint and neither ``step`` nor
            ``overwrite`` is given, or ``step`` exists.
        ValueError: ``directory`` holds something else; ``step`` is before the latest step;
            two keys would be stored under one name.
        TypeError: a leaf is not an array, or a key would not come back as it is (not a str
            or an int, or int and str keys in one dict); an argument of the wrong type.
        CheckpointLockTimeout: another save held the directory for ``lock_timeout`` seconds
            (the message names the directory and the holder's pid).

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from zephyr import checkpoint, nets, trace
        >>> params = trace(nets.mlp, jax.random.key(0), jnp.ones((2, 4)), [8, 3])
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> checkpoint.save(path, params)
        >>> checkpoint.save(path, params, overwrite=True)  # replaces it, atomically
        >>> restored = checkpoint.restore(path, like=params)
        >>> sorted(restored), bool((restored[0]["weights"] == params[0]["weights"]).all())
        ([0, 1], True)
    """
    ocp = _orbax()
    root, who = _where("save", directory)
    if step is not None:
        step = _count(step, who, "step", "a non-negative int or None", 0)
    if keep is not None:
        keep = _count(keep, who, "keep", "a positive int or None", 1)
    if not isinstance(overwrite, bool):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
        raise TypeError(f"{who}: `overwrite` must be True or False, got {type(overwrite).__name__}: {overwrite!r}")
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float):  # pyright: ignore[reportUnnecessaryIsInstance]  # same
        raise TypeError(f"{who}: `lock_timeout` must be a number of seconds, got {type(lock_timeout).__name__}: {lock_timeout!r}")
    if math.isnan(lock_timeout) or lock_timeout < 0:
        raise ValueError(f"{who}: `lock_timeout` must be >= 0 seconds, got {lock_timeout!r}")
    if params is None:
        raise TypeError(f"{who}: `params` must be a tree of arrays (a dict, e.g. from zephyr.trace), got None")
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "extra": _check_extra(extra, who), "trees": {}}
    items: dict[str, Any] = {}
    for name, tree in (("params", params), ("state", state), ("opt_state", opt_state)):
        if tree is None:
            continue
        flat, _ = _flatten(tree, name, who, saving=True)
        _check_names(flat, name, who)
        sums = _checksums(list(flat.values()))
        meta["trees"][name] = [
            {"path": list(path), "shape": list(value.shape), "dtype": np.dtype(value.dtype).name, "checksum": c}
            for (path, value), c in zip(flat.items(), sums, strict=True)
        ]
        # orbax refuses zero-size arrays; they hold no data: the metadata's shape and dtype are all of them
        stored: dict[Path, Any] = {_stored(p): v for p, v in flat.items() if v.size}
        if stored:
            items[name] = ocp.args.PyTreeSave(nest(stored, name))

    _plan(_scan(root, who), step, keep, overwrite, root, who)  # refuse before anything is created
    primary = jax.process_index() == 0  # pyright: ignore[reportUnknownMemberType]  # jax types `backend` partially
    if primary:
        os.makedirs(root, exist_ok=True)
    # Only the primary process locks (the others would wait for it at the barriers below).
    with _locked(root, lock_timeout, who) if primary else contextlib.nullcontext():
        if primary:
            for name in _scan(root, who).leftovers:  # no save holds the lock: these are of saves that died
                _remove(root, name, who)
        _barrier(f"zephyr.checkpoint.save:{root}:locked")
        listing = _scan(root, who)  # under the lock: no other save is under way; every process sees this
        number, old = _plan(listing, step, keep, overwrite, root, who)
        meta["step"] = number
        items["zephyr"] = ocp.args.JsonSave(meta)
        _barrier(f"zephyr.checkpoint.save:{root}:{number}:start")
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            checkpointer.save(os.path.join(root, str(number)), ocp.args.Composite(**items))
        if primary:
            for old_step in old:
                _remove(root, str(old_step), who)
        _barrier(f"zephyr.checkpoint.save:{root}:{number}:done")


def _count(value: object, who: str, name: str, expected: str, minimum: int) -> int:
    """``value`` (a step, ``keep``) as an int: a float, a bool or a number below ``minimum`` is refused, naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: `{name}` must be {expected}, got {type(value).__name__}: {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{who}: `{name}` must be {expected}, got {value!r}")
    return int(value)


def _plan(
    listing: _Listing, step: int | None, keep: int | None, overwrite: bool, root: str, who: str
) -> tuple[int, list[int]]:
    """The number of the step to save and the steps to remove after it; refusals name why."""
    latest = listing.steps[-1] if listing.steps else None
    if step is None:
        if latest is not None and not overwrite:
            raise FileExistsError(
                f"{who}: `{root}` holds a checkpoint (steps {listing.steps}); pass overwrite=True to "
                "replace it, or step=N to add a step"
            )
        number = max(listing.steps + listing.kept, default=-1) + 1
    else:
        if step in listing.steps:
            raise FileExistsError(f"{who}: step {step} exists in `{root}`; a saved step is never replaced")
        if step in listing.kept:
            raise FileExistsError(
                f"{who}: `{os.path.join(root, str(step))}` is the folder of a removed step, kept because it "
                f"holds files zephyr did not write; step {step} cannot be saved there: move them out"
            )
        if latest is not None and step < latest and not overwrite:
            raise ValueError(
                f"{who}: step {step} is before the latest step {latest} in `{root}`; steps only go "
                "forward (overwrite=True replaces every step)"
            )
        number = step
    if overwrite:
        old = list(listing.steps)
    elif keep is not None:
        old = sorted(listing.steps + [number])[:-keep]
    else:
        old = []
    return number, old


# ---------------------------------------------------------------------------------------------
# Restore: check the metadata, the stored arrays and the model against each other


class _Step(NamedTuple):
    path: str  # the step's directory
    step: int
    trees: dict[str, dict[Path, Entry]]
    checksums: dict[str, dict[Path, int]]
    extra: dict[str, Any]


def _corrupt(who: str, step: int, detail: str) -> ValueError:
    return ValueError(f"{who}: the metadata of step {step} is corrupt: {detail}")


_ENTRY_FIELDS = (("path", list), ("shape", list), ("dtype", str), ("checksum", int))


def _parse_entry(raw: object) -> tuple[Path, Entry, int] | None:
    """An entry of the metadata's trees, or ``None`` unless it is exactly what :func:`save` writes.

    Parsed JSON holds only exact ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and
    ``None``: a ``type(...) is int`` test refuses a bool.
    """
    entry: dict[str, Any] = raw if isinstance(raw, dict) else {}  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
    if any(type(entry.get(field)) is not kind for field, kind in _ENTRY_FIELDS):
        return None
    path: tuple[Any, ...] = tuple(entry["path"])
    shape: tuple[Any, ...] = tuple(entry["shape"])
    if not all(type(key) in (str, int) for key in path) or not all(type(size) is int and size >= 0 for size in shape):
        return None
    if not 0 <= entry["checksum"] < 2**32:
        return None
    try:
        return path, (shape, np.dtype(jnp.dtype(entry["dtype"]))), entry["checksum"]
    except TypeError:
        return None


def _parse_meta(meta: object, who: str, root: str, step: int) -> _Step:
    """The metadata's trees, refusing anything that is not exactly what :func:`save` writes."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:  # pyright: ignore[reportUnknownMemberType]  # parsed JSON
        raise _corrupt(who, step, "it is not zephyr checkpoint metadata")
    fields: dict[str, Any] = meta  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
    if fields.get("version") != VERSION:
        raise ValueError(
            f"{who}: step {step} was written in zephyr checkpoint format version "
            f"{fields.get('version')!r}; this zephyr reads version {VERSION}"
        )
    trees_raw, extra = fields.get("trees"), fields.get("extra")
    if not isinstance(trees_raw, dict) or not isinstance(extra, dict) or fields.get("step") != step:
        raise _corrupt(who, step, "`trees`, `extra` or `step` is missing or malformed")
    opened = _Step(os.path.join(root, str(step)), step, {}, {}, extra)  # pyright: ignore[reportUnknownArgumentType]  # parsed JSON
    for name, entries in trees_raw.items():  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
        if name not in ROOTS or not isinstance(entries, list):
            raise _corrupt(who, step, f"unknown tree {name!r}")
        opened.trees[name], opened.checksums[name] = {}, {}
        for raw in cast("list[object]", entries):
            item = _parse_entry(raw)
            if item is None or item[0] in opened.trees[name]:
                raise _corrupt(who, step, f"a malformed entry in `{name}`: {raw!r}")
            opened.trees[name][item[0]], opened.checksums[name][item[0]] = item[1], item[2]
    return opened


def _choose(root: str, step: int | None, who: str) -> int:
    """The step to read: ``step``, or the latest complete one."""
    if not os.path.lexists(root):
        raise FileNotFoundError(f"{who}: no checkpoint at `{root}`")
    listing = _scan(root, who)
    if not listing.steps:
        if listing.leftovers:
            raise FileNotFoundError(f"{who}: no checkpoint at `{root}`: its first save did not complete")
        if listing.kept:
            raise FileNotFoundError(
                f"{who}: no checkpoint at `{root}`: it holds only the folders of removed steps {listing.kept}"
            )
        raise ValueError(f"{who}: `{root}` is not a zephyr checkpoint: it is empty")
    if step is None:
        return listing.steps[-1]
    if step not in listing.steps:
        raise FileNotFoundError(f"{who}: no step {step} in `{root}` (its steps: {listing.steps})")
    return step


def _identity(target: str) -> tuple[int, int] | None:
    """The step folder's (device, inode) while it is a complete step; ``None`` once it is not."""
    try:
        status = os.stat(target)
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if os.path.isdir(os.path.join(target, "zephyr")) else None


def _check_stored(ocp: Any, opened: _Step, names: list[str], who: str) -> None:
    """orbax's own record of each stored array (its shape and dtype as tensorstore holds them,
    which is what a read that asks for none gives back) must agree with zephyr's metadata."""
    from etils import epath  # type: ignore[import-untyped]  # orbax's path library; no py.typed

    for name in names:
        stored: dict[tuple[str, ...], Entry] = {}
        if any(0 not in shape for shape, _dtype in opened.trees[name].values()):
            try:
                item = ocp.PyTreeCheckpointHandler().metadata(epath.Path(opened.path) / name)
            except Exception as error:  # noqa: BLE001 - whatever orbax raises, the step is unreadable
                raise _unreadable(who, opened, [name], error) from error
            for path, leaf in flatten_with_paths(item.tree, lambda node: hasattr(node, "shape"))[0]:
                stored[_stored(path)] = (tuple(leaf.shape), np.dtype(leaf.dtype))
        for path, want in opened.trees[name].items():
            got = stored.pop(_stored(path), None)
            if got is None and 0 not in want[0]:
                raise ValueError(f"{who}: `{format_path(path, name)}` is in the metadata of step {opened.step} but not stored")
            if got is not None and got != want:  # stored, although the metadata may say zero-size
                raise ValueError(
                    f"{who}: `{format_path(path, name)}` in step {opened.step} is stored as {got[1].name} {got[0]} "
                    f"but the metadata says {want[1].name} {want[0]}"
                )
        if stored:
            extra = format_path(next(iter(stored)), name)
            raise ValueError(f"{who}: `{extra}` is stored in step {opened.step} but not in its metadata")


def _unreadable(who: str, opened: _Step, names: list[str], error: Exception) -> ValueError:
    """The step's arrays cannot be read: name the leaf if tensorstore's message names its file."""
    text = str(error)
    found = [
        format_path(path, name)
        for name in names
        for path in opened.trees[name]
        if re.search(f"[\"']{re.escape('.'.join(_stored(path)))}/", text)
    ]
    where = f"`{found[0]}`" if found else "its arrays"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return ValueError(
        f"{who}: {where} in step {opened.step} cannot be read (the files are damaged): {type(error).__name__}: {first}"
    )


def _compare(saved: dict[Path, Entry], like: dict[Path, Any], root: str) -> list[str]:
    problems: list[str] = []
    for path, value in like.items():
        if path not in saved:
            problems.append(
                f"missing from the checkpoint: `{format_path(path, root)}` ({np.dtype(value.dtype).name}{list(value.shape)})"
            )
    for path, (shape, dtype) in saved.items():
        if path not in like:
            problems.append(f"not in the model: `{format_path(path, root)}` ({dtype.name}{list(shape)})")
            continue
        want_shape, want_dtype = tuple(like[path].shape), np.dtype(like[path].dtype)
        if shape != want_shape:
            problems.append(f"shape: `{format_path(path, root)}` is {shape} in the checkpoint, {want_shape} in the model")
        if dtype != want_dtype:
            problems.append(
                f"dtype: `{format_path(path, root)}` is {dtype.name} in the checkpoint, {want_dtype.name} in the model"
            )
    return problems


def _restore_trees(
    directory: object,
    likes: Mapping[str, object],
    required: tuple[str, ...],
    step: object,
    function: str,
) -> tuple[_Step, dict[str, Any]]:
    """The trees named in ``likes`` (those in the checkpoint, and every ``required`` one).

    Readers take no lock: a step that the retention of a save beside this call removes while
    it is read is named as such (``step`` given), or the newest step is read instead (``step``
    is ``None``). Whatever failed, the step's folder is looked at again: the error stands only
    if it is still the same complete step.
    """
    root, who = _where(function, directory)
    wanted = None if step is None else _count(step, who, "step", "an int (a step number) or None", 0)
    for attempt in range(_READ_TRIES):
        number = _choose(root, wanted, who)
        identity = _identity(os.path.join(root, str(number)))
        try:
            return _read_trees(_orbax(), root, number, likes, required, who)
        except Exception as error:
            if identity is not None and _identity(os.path.join(root, str(number))) == identity:
                raise
            if wanted is not None or attempt == _READ_TRIES - 1:
                raise FileNotFoundError(
                    f"{who}: step {number} was removed by retention (a save with `keep` or `overwrite` "
                    f"beside this call) while it was read; the steps now: {_scan(root, who).steps}"
                    + ("" if wanted is not None else f" (newer steps were removed {_READ_TRIES} times in a row)")
                ) from error
    raise AssertionError("unreachable")  # pragma: no cover


def _read_trees(
    ocp: Any, root: str, number: int, likes: Mapping[str, object], required: tuple[str, ...], who: str
) -> tuple[_Step, dict[str, Any]]:
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            meta = checkpointer.restore(os.path.join(root, str(number)), ocp.args.Composite(zephyr=ocp.args.JsonRestore()))["zephyr"]
    except Exception as error:  # noqa: BLE001 - whatever orbax or json raise, the file is unreadable
        raise _corrupt(who, number, f"{type(error).__name__}: {error}") from error
    opened = _parse_meta(meta, who, root, number)
    names = [name for name in likes if name in opened.trees]
    problems: list[str] = []
    like_flat: dict[str, tuple[dict[Path, Any], Any]] = {}
    for name, like in likes.items():
        if name not in opened.trees and (name in required or like is not None):
            problems.append(f"the checkpoint has no `{name}` (it was saved without it)")
        elif name in opened.trees and like is not None:
            like_flat[name] = _flatten(like, name, who, saving=False)
            problems += _compare(opened.trees[name], like_flat[name][0], name)
    if problems:
        raise ValueError(f"{who}: step {opened.step} at `{root}` does not match the model:\n  " + "\n  ".join(problems))
    _check_stored(ocp, opened, names, who)

    default = jax.sharding.make_single_device_sharding(jax.local_devices()[0])  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # jax.local_devices is partially typed

    def placement(name: str, path: Path) -> Any:
        """The sharding of the model's leaf (``like``), or the first local device."""
        flat = like_flat[name][0] if name in like_flat else {}
        found = getattr(flat.get(path), "sharding", None)
        return found if isinstance(found, jax.sharding.Sharding) else default

    args: dict[str, Any] = {}
    for name in names:
        # No shape or dtype asked for: orbax reads the arrays as stored, never cast or padded.
        restore_args: dict[Path, Any] = {
            _stored(path): ocp.ArrayRestoreArgs(sharding=placement(name, path))
            for path, (shape, _dtype) in opened.trees[name].items()
            if 0 not in shape
        }
        if restore_args:
            args[name] = ocp.args.PyTreeRestore(restore_args=nest(restore_args, name))
    restored: dict[str, Any] = {}
    if args:
        try:
            with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
                restored = dict(checkpointer.restore(opened.path, ocp.args.Composite(**args)).items())
        except Exception as error:  # noqa: BLE001 - whatever tensorstore raises, the data is unreadable
            raise _unreadable(who, opened, names, error) from error

    out: dict[str, Any] = {}
    for name in names:
        values: dict[Path, Any] = {}
        for path, (shape, dtype) in opened.trees[name].items():
            if 0 not in shape:
                values[path] = functools.reduce(operator.getitem, _stored(path), restored[name])
            else:  # not stored (orbax refuses zero-size arrays): made here, placed like the model's
                values[path] = jax.make_array_from_callback(shape, placement(name, path), np.zeros(shape, dtype).__getitem__)  # pyright: ignore[reportUnknownMemberType]  # jax types the callback partially
        for path, got in zip(values, _checksums(list(values.values())), strict=True):
            if got != opened.checksums[name][path]:
                raise ValueError(
                    f"{who}: `{format_path(path, name)}` in step {opened.step} does not match its "
                    f"checksum: the stored data is damaged"
                )
        if name in like_flat:
            flat, treedef = like_flat[name]
            out[name] = jax.tree_util.tree_unflatten(treedef, [values[path] for path in flat])  # pyright: ignore[reportUnknownMemberType]  # jax's PyTreeDef is untyped
        else:
            out[name] = nest(values, name)
    return opened, out


def restore(directory: str | os.PathLike[str], like: object = None, *, step: int | None = None) -> Any:
    """Load the params saved by :func:`save`, checked against the model ``like``.

    Args:
        directory: the checkpoint written by :func:`save`.
        like: what the model expects: its params, ``zephyr.abstract_trace(net, x)``,
            ``zephyr.sharding.abstract_trace_sharded(...)`` or ``zephyr.tags.leaf_info``.
            Leaves with a sharding are restored with it (each device reads its shards).
            ``None``: load as saved, on the first local device, checked only against itself.
        step: the step to load; ``None``: the latest.

    Returns:
        The params: a nested dict of ``jax.Array`` with the saved int and str keys (with
        ``like``: shaped as ``like``).

    Raises:
        FileNotFoundError: no checkpoint or no such step at ``directory``, or ``step`` was
            removed by the retention of a save beside this call while it was read (with
            ``step=None`` the newest step is read instead).
        TypeError: ``step`` is not an int (``1.0``, ``"1"``), ``directory`` is not a path.
        ValueError: the checkpoint differs from ``like`` (the message names every path that is
            missing, unexpected, or of another shape or dtype); or it is corrupt: the metadata,
            orbax's record of the arrays and the arrays themselves disagree or cannot be read
            (the message names the checkpoint and the leaf).

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from zephyr import abstract_trace, checkpoint, nets, trace
        >>> x = jnp.ones((2, 4))
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> checkpoint.save(path, trace(nets.mlp, jax.random.key(0), x, [8, 3]))
        >>> jax.tree.map(jnp.shape, checkpoint.restore(path, like=abstract_trace(nets.mlp, x, [8, 3])))[1]
        {'bias': (3,), 'weights': (8, 3)}
        >>> checkpoint.restore(path, like=abstract_trace(nets.mlp, x, [8, 5]))
        Traceback (most recent call last):
        ...
        ValueError: checkpoint.restore(`...`): step 0 at `...` does not match the model:
          shape: `params[1]['bias']` is (3,) in the checkpoint, (5,) in the model
          shape: `params[1]['weights']` is (8, 3) in the checkpoint, (8, 5) in the model
    """
    return _restore_trees(directory, {"params": like}, ("params",), step, "restore")[1]["params"]


def restore_with_state(
    directory: str | os.PathLike[str],
    params_like: object = None,
    state_like: object = None,
    *,
    step: int | None = None,
) -> tuple[Any, Any]:
    """Load ``(params, state)`` saved by ``save(directory, params, state)``; see :func:`restore`.

    Args:
        directory: the checkpoint written by :func:`save` with a ``state``.
        params_like: what the model's params look like (or ``None``: as saved).
        state_like: what the model's state looks like (or ``None``: as saved).
        step: the step to load; ``None``: the latest.

    Returns:
        ``(params, state)``.

    Raises:
        ValueError: either tree differs from the model (every differing path is named), the
            checkpoint is corrupt, or it has no state.

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from zephyr import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> checkpoint.save(path, {"w": jnp.ones(2)}, {"count": jnp.array(3)})
        >>> params, state = checkpoint.restore_with_state(path)
        >>> state["count"].tolist()
        3
    """
    trees = _restore_trees(
        directory, {"params": params_like, "state": state_like}, ("params", "state"), step, "restore_with_state"
    )[1]
    return trees["params"], trees["state"]


class Resumed(NamedTuple):
    """What :func:`resume` gives back: everything a training loop needs to go on."""

    step: int
    """The step that was loaded."""
    params: Any
    """The params."""
    opt_state: Any
    """The optimizer state, or ``None`` if it was not saved."""
    state: Any
    """The model state, or ``None`` if it was not saved."""
    extra: dict[str, Any]
    """The JSON saved with the step (``{}`` if none), e.g. the data position."""


def resume(
    directory: str | os.PathLike[str],
    params_like: object = None,
    opt_state_like: object = None,
    state_like: object = None,
    *,
    step: int | None = None,
) -> Resumed:
    """Load a training run saved by ``save(directory, params, state, opt_state=..., extra=..., step=N)``.

    Each tree is checked against its ``like`` and comes back shaped like it: an optax state
    restored with ``opt_state_like=tx.init(params)`` is optax's own named tuples again.

    Args:
        directory: the checkpoint directory.
        params_like: what the model's params look like (or ``None``: as saved).
        opt_state_like: what the optimizer state looks like, e.g. ``tx.init(params)`` (or
            ``None``: as saved, as nested dicts).
        state_like: what the model's state looks like (or ``None``: as saved).
        step: the step to load; ``None``: the latest (see :func:`steps`).

    Returns:
        A :class:`Resumed`: ``step``, ``params``, ``opt_state``, ``state``, ``extra``.

    Raises:
        FileNotFoundError: no checkpoint or no such step at ``directory``, or ``step`` was
            removed by retention while it was read (``step=None``: the newest is read instead).
        TypeError: ``step`` is not an int, ``directory`` is not a path.
        ValueError: a tree differs from its ``like`` or was not saved although a ``like`` was
            given, or the checkpoint is corrupt.

    Example:
        >>> import jax.numpy as jnp, optax, tempfile, os
        >>> from zephyr import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run")
        >>> params, tx = {"w": jnp.ones(2)}, optax.adam(1e-3)
        >>> for step in (10, 20):
        ...     checkpoint.save(path, params, opt_state=tx.init(params), extra={"batch": step}, step=step)
        >>> run = checkpoint.resume(path, params, tx.init(params))
        >>> run.step, run.extra, type(run.opt_state[0]).__name__
        (20, {'batch': 20}, 'ScaleByAdamState')
    """
    opened, trees = _restore_trees(
        directory,
        {"params": params_like, "opt_state": opt_state_like, "state": state_like},
        ("params",),
        step,
        "resume",
    )
    return Resumed(opened.step, trees["params"], trees.get("opt_state"), trees.get("state"), opened.extra)
