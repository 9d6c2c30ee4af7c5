"""Checkpoints of params, state and optimizer state with orbax-checkpoint; nothing is ever half-lost.

A checkpoint is a directory of numbered steps, each one orbax composite checkpoint::

    ckpt/
      0/                                 params, state, opt_state (orbax PyTreeSave: tensorstore
      10/                                OCDBT, sharded arrays written shard by shard) and zephyr
                                         (JSON: every leaf's path, shape and dtype, the step, extra)
      11.orbax-checkpoint-tmp-1712345/   a save killed half way: ignored, removed by the next save
      3.zephyr-deleting/                 a step being removed: ignored, removed by the next save

orbax writes a step beside its final name and renames it into place once complete, so a step
is whole or absent; zephyr never writes into a step that exists, and removes a step by first
renaming it out of the way. Replacing a checkpoint (``overwrite=True``) writes a new step and
only then removes the old ones: at every instant the directory holds a complete checkpoint.
Anything in the directory that zephyr did not write is an error, never deleted.

Restoring trusts nothing it reads: the metadata's form, the stored arrays' own shapes and
dtypes (orbax's tree metadata, then the arrays as read, never cast) and the model ``like``
are checked against each other. orbax writes dict keys as strings; the JSON is what gives
``params[0]`` back as an int key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from ._tree import is_leaf_record, path_of
from .core._paths import format_path, nest
from .core._types import Leaf, Path

FORMAT = "zephyr-checkpoint"
VERSION = 2
ROOTS = ("params", "state", "opt_state")

_STEP = re.compile(r"^[0-9]+$")
_LEFTOVER = re.compile(r"^[0-9]+\.(orbax-checkpoint-tmp.*|zephyr-deleting)$")
_DELETING = ".zephyr-deleting"

Entry = tuple[tuple[int, ...], np.dtype[Any]]
"""A leaf as stored or described: ``(shape, dtype)``."""


def _require_orbax() -> Any:
    try:
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
    except ImportError as error:  # pragma: no cover - orbax is a dependency
        raise ImportError(
            "zephyr.checkpoint needs orbax-checkpoint: pip install orbax-checkpoint"
        ) from error
    return ocp


def _describe(shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    return f"{dtype.name} {shape}"


# ---------------------------------------------------------------------------------------------
# Trees in, trees out: paths and keys that round-trip


def _unsortable(node: object, path: Path) -> tuple[Path, list[Any]] | None:
    """The first dict below ``node`` whose keys cannot be sorted (jax.tree_util sorts them)."""
    if isinstance(node, dict):
        mapping = cast("dict[Any, object]", node)
        keys: list[Any] = list(mapping)
        try:
            sorted(keys)
        except TypeError:
            return path, keys
        children: list[tuple[Path, object]] = [
            (path + (key if isinstance(key, str | int) else str(key),), child) for key, child in mapping.items()
        ]
    else:

        def below(child: object) -> bool:
            return child is not node and isinstance(child, dict)

        flat = jax.tree_util.tree_flatten_with_path(node, is_leaf=below)[0]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax's KeyPath is untyped
        children = [(path + path_of(key_path), child) for key_path, child in flat if isinstance(child, dict)]  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]  # same
    for child_path, child in children:
        found = _unsortable(child, child_path)
        if found is not None:
            return found
    return None


def _is_array_like(node: object) -> bool:
    return hasattr(node, "shape") and hasattr(node, "dtype")


def _flatten(tree: object, root: str, who: str, *, saving: bool) -> tuple[dict[Path, Any], Any]:
    """``{path: leaf}`` and the treedef; keys that would not come back as they are refused."""
    try:
        flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf_record)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax's KeyPath is untyped
    except (TypeError, ValueError) as error:
        found = _unsortable(tree, ())
        if found is None:
            raise
        path, keys = found
        raise TypeError(
            f"{who}: `{format_path(path, root)}` has keys {keys} that cannot be sorted; "
            "jax.tree_util sorts dict keys: use one kind of key (str or int) per dict"
        ) from error
    out: dict[Path, Any] = {}
    for key_path, value in flat:  # pyright: ignore[reportUnknownVariableType]  # same
        for depth, entry in enumerate(key_path):  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]  # same
            key = getattr(entry, "key", None) if isinstance(entry, jax.tree_util.DictKey) else 0  # pyright: ignore[reportUnknownArgumentType]  # same
            if isinstance(key, bool) or not isinstance(key, str | int):
                parent = format_path(path_of(key_path[:depth]), root)  # pyright: ignore[reportUnknownArgumentType]  # same
                raise TypeError(
                    f"{who}: `{parent}[{key!r}]`: a saved key must be a str or an int, "
                    f"got {type(key).__name__}"
                )
        path = path_of(key_path)  # pyright: ignore[reportUnknownArgumentType]  # same
        if saving:
            value = _check_array(value, format_path(path, root), who)
        elif not (isinstance(value, Leaf) or (hasattr(value, "shape") and hasattr(value, "dtype"))):
            raise TypeError(
                f"{who}: `{format_path(path, root)}` must be an array, a jax.ShapeDtypeStruct or a "
                f"zephyr.tags.Leaf, got {type(value).__name__}"
            )
        out[path] = value
    structure: Any = treedef  # pyright: ignore[reportUnknownVariableType]  # jax's PyTreeDef is untyped
    return out, structure  # pyright: ignore[reportUnknownVariableType]  # jax's PyTreeDef is untyped


def _check_array(value: object, name: str, who: str) -> jax.Array:
    if not isinstance(value, jax.Array | np.ndarray | np.generic):
        raise TypeError(f"{who}: `{name}` must be an array, got {type(value).__name__}")
    dtype: Any = value.dtype  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # numpy's generic dtype
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):  # pyright: ignore[reportUnknownArgumentType]  # numpy's generic dtype
        raise TypeError(
            f"{who}: `{name}` is a typed PRNG key, which orbax cannot store; "
            "save `jax.random.key_data(key)` and rebuild it with `jax.random.wrap_key_data`"
        )
    return value if isinstance(value, jax.Array) else jnp.asarray(value)  # pyright: ignore[reportUnknownMemberType]  # jax types `device` partially


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
    index = jnp.zeros(bits.shape, jnp.uint32)  # pyright: ignore[reportUnknownMemberType]  # jax types `device` partially
    for axis in range(bits.ndim):
        iota = jax.lax.broadcasted_iota(jnp.uint32, bits.shape, axis)  # pyright: ignore[reportUnknownMemberType]  # jax types `out_sharding` partially
        index = index * jnp.uint32(bits.shape[axis]) + iota
    weights = index * jnp.uint32(0x3C6EF362) + jnp.uint32(1)  # even times index, plus one: odd, so invertible mod 2**32
    return jnp.sum(bits * weights, dtype=jnp.uint32)


def _checksums_of(leaves: list[jax.Array]) -> list[jax.Array]:
    return [_checksum(x) for x in leaves]


_checksums_jit: Any = jax.jit(_checksums_of)  # pyright: ignore[reportUnknownMemberType]  # jax.jit is partially typed


def _checksums(leaves: list[jax.Array]) -> list[int]:
    """Each leaf's checksum: one compiled program for a whole tree; shards stay where they are."""
    sums: list[Any] = _checksums_jit(leaves)
    return [int(c) for c in sums]


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


def _scan(root: str, who: str) -> _Listing:
    """The steps in ``root``; anything zephyr did not write there is an error naming it."""
    if not os.path.lexists(root):
        return _Listing([], [])
    if not os.path.isdir(root):
        raise ValueError(f"{who}: `{root}` is a file, not a zephyr checkpoint; nothing was changed")
    steps: list[int] = []
    leftovers: list[str] = []
    foreign: list[str] = []
    for name in sorted(os.listdir(root)):
        full = os.path.join(root, name)
        if _STEP.match(name) and os.path.isdir(os.path.join(full, "zephyr")) and not os.path.islink(full):
            steps.append(int(name))
        elif _LEFTOVER.match(name) and os.path.isdir(full) and not os.path.islink(full):
            leftovers.append(name)
        else:
            foreign.append(name)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ValueError(
            f"{who}: `{root}` is not a zephyr checkpoint: it holds `{foreign[0]}`{more}, which "
            "zephyr did not write; nothing was changed"
        )
    return _Listing(sorted(steps), leftovers)


def steps(directory: str | os.PathLike[str]) -> list[int]:
    """The complete steps saved in ``directory``, oldest first (``[]`` if nothing is there).

    A save that was interrupted leaves no step: its half-written files are ignored here and
    removed by the next :func:`save`.

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
    return _scan(os.path.abspath(directory), f"checkpoint.steps(`{os.fspath(directory)}`)").steps


def _is_primary() -> bool:
    return jax.process_index() == 0  # pyright: ignore[reportUnknownMemberType]  # jax types `backend` partially


def _barrier(name: str) -> None:
    if jax.process_count() > 1:  # pyright: ignore[reportUnknownMemberType]  # jax types `backend` partially
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _remove(root: str, name: str) -> None:
    """Remove a step or a leftover: a step is first renamed out of the way (atomically)."""
    path = os.path.join(root, name)
    if _STEP.match(name):
        os.rename(path, path + _DELETING)
        path += _DELETING
    shutil.rmtree(path)


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
) -> None:
    """Save ``params`` (and ``state``, ``opt_state``, ``extra``) to ``directory`` with orbax.

    Every save is a new numbered step, written beside the others and renamed into place once
    complete: a save that is killed half way leaves the previous checkpoint restorable. Sharded
    arrays are written shard by shard by the processes that hold them (call ``save`` from
    every process). Int and str keys, bfloat16 and every other dtype come back bit for bit.

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
        keep: after saving, remove all but the newest ``keep`` steps.
        overwrite: after saving, remove every previous step.

    Raises:
        FileExistsError: ``directory`` holds a checkpoint and neither ``step`` nor
            ``overwrite`` is given, or ``step`` exists.
        ValueError: ``directory`` holds something else; ``step`` is before the latest step;
            two keys would be stored under one name.
        TypeError: a leaf is not an array, or a key would not come back as it is (not a str
            or an int, or int and str keys in one dict).

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
    ocp = _require_orbax()
    root = os.path.abspath(directory)
    who = f"checkpoint.save(`{os.fspath(directory)}`)"
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
        raise TypeError(f"{who}: `step` must be a non-negative int or None, got {step!r}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
        raise ValueError(f"{who}: `keep` must be a positive int or None, got {keep!r}")
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
        if flat:
            items[name] = ocp.args.PyTreeSave(nest({_stored(p): v for p, v in flat.items()}, name))

    listing = _scan(root, who)
    latest = listing.steps[-1] if listing.steps else None
    if step is None:
        if latest is not None and not overwrite:
            raise FileExistsError(
                f"{who}: `{root}` holds a checkpoint (steps {listing.steps}); pass overwrite=True to "
                "replace it, or step=N to add a step"
            )
        number = 0 if latest is None else latest + 1
    else:
        if step in listing.steps:
            raise FileExistsError(f"{who}: step {step} exists in `{root}`; a saved step is never replaced")
        if latest is not None and step < latest and not overwrite:
            raise ValueError(
                f"{who}: step {step} is before the latest step {latest} in `{root}`; steps only go "
                "forward (overwrite=True replaces every step)"
            )
        number = step
    meta["step"] = number
    items["zephyr"] = ocp.args.JsonSave(meta)
    if overwrite:
        old = listing.steps
    elif keep is not None:
        old = sorted(listing.steps + [number])[:-keep]
    else:
        old = []

    if _is_primary():
        for name in listing.leftovers:
            _remove(root, name)
        os.makedirs(root, exist_ok=True)
    _barrier(f"zephyr.checkpoint.save:{root}:{number}:start")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(os.path.join(root, str(number)), ocp.args.Composite(**items))
    if _is_primary():
        for old_step in old:
            _remove(root, str(old_step))
    _barrier(f"zephyr.checkpoint.save:{root}:{number}:done")


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


def _parse_entry(raw: object) -> tuple[Path, Entry, int] | None:
    if not isinstance(raw, dict):
        return None
    entry: dict[str, Any] = raw  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
    path, shape, dtype, checksum = entry.get("path"), entry.get("shape"), entry.get("dtype"), entry.get("checksum")
    if not (isinstance(path, list) and isinstance(shape, list) and isinstance(dtype, str)):
        return None
    if isinstance(checksum, bool) or not isinstance(checksum, int) or not 0 <= checksum < 2**32:
        return None
    keys: list[Any] = path  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
    sizes: list[Any] = shape  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
    if any(isinstance(k, bool) or not isinstance(k, str | int) for k in keys):
        return None
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in sizes):
        return None
    try:
        parsed = np.dtype(jax.numpy.dtype(dtype))
    except TypeError:
        return None
    return tuple(keys), (tuple(sizes), parsed), checksum


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
    trees: dict[str, dict[Path, Entry]] = {}
    checksums: dict[str, dict[Path, int]] = {}
    for name, entries in trees_raw.items():  # pyright: ignore[reportUnknownVariableType]  # parsed JSON
        if name not in ROOTS or not isinstance(entries, list):
            raise _corrupt(who, step, f"unknown tree {name!r}")
        parsed: dict[Path, Entry] = {}
        sums: dict[Path, int] = {}
        for raw in cast("list[object]", entries):
            item = _parse_entry(raw)
            if item is None or item[0] in parsed:
                raise _corrupt(who, step, f"a malformed entry in `{name}`: {raw!r}")
            parsed[item[0]], sums[item[0]] = item[1], item[2]
        trees[name], checksums[name] = parsed, sums
    return _Step(os.path.join(root, str(step)), step, trees, checksums, extra)  # pyright: ignore[reportUnknownArgumentType]  # parsed JSON


def _open(ocp: Any, directory: str | os.PathLike[str], step: int | None, who: str) -> _Step:
    root = os.path.abspath(directory)
    if not os.path.lexists(root):
        raise FileNotFoundError(f"{who}: no checkpoint at `{root}`")
    listing = _scan(root, who)
    if not listing.steps:
        if listing.leftovers:
            raise FileNotFoundError(f"{who}: no checkpoint at `{root}`: its first save did not complete")
        raise ValueError(f"{who}: `{root}` is not a zephyr checkpoint: it is empty")
    if step is None:
        step = listing.steps[-1]
    elif step not in listing.steps:
        raise FileNotFoundError(f"{who}: no step {step} in `{root}` (its steps: {listing.steps})")
    target = os.path.join(root, str(step))
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            meta = checkpointer.restore(target, ocp.args.Composite(zephyr=ocp.args.JsonRestore()))["zephyr"]
    except Exception as error:  # noqa: BLE001 - whatever orbax or json raise, the file is unreadable
        raise _corrupt(who, step, f"{type(error).__name__}: {error}") from error
    return _parse_meta(meta, who, root, step)


def _check_stored(ocp: Any, opened: _Step, names: list[str], who: str) -> None:
    """orbax's own record of each stored array must agree with zephyr's metadata."""
    from etils import epath  # type: ignore[import-untyped]  # orbax's path library; no py.typed

    for name in names:
        expected = opened.trees[name]
        stored: dict[Path, Entry] = {}
        if expected:
            try:
                item = ocp.PyTreeCheckpointHandler().metadata(epath.Path(opened.path) / name)
            except Exception as error:  # noqa: BLE001 - whatever orbax raises, the step is unreadable
                raise _unreadable(who, opened, name, error) from error
            leaves = jax.tree_util.tree_flatten_with_path(  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # jax's KeyPath is untyped
                item.tree, is_leaf=_is_array_like
            )[0]
            for key_path, leaf in leaves:  # pyright: ignore[reportUnknownVariableType]  # same
                stored[_stored(path_of(key_path))] = (tuple(leaf.shape), np.dtype(leaf.dtype))  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]  # same
        by_name = {_stored(path): path for path in expected}
        for path, want in expected.items():
            got = stored.get(_stored(path))
            if got is None:
                raise ValueError(
                    f"{who}: `{format_path(path, name)}` is in the metadata of step {opened.step} but not stored"
                )
            _check_leaf(got, want, format_path(path, name), opened.step, who)
        for stored_path in stored:
            if stored_path not in by_name:
                raise ValueError(
                    f"{who}: `{name}{''.join(f'[{k!r}]' for k in stored_path)}` is stored in step "
                    f"{opened.step} but not in its metadata"
                )


def _unreadable(who: str, opened: _Step, names: str | list[str], error: Exception) -> ValueError:
    """The step's arrays cannot be read: name the leaf if tensorstore's message names its file."""
    text = str(error)
    where = f"`{names}`" if isinstance(names, str) else "its arrays"
    for name in [names] if isinstance(names, str) else names:
        for path in opened.trees[name]:
            if re.search(f"[\"']{re.escape('.'.join(_stored(path)))}/", text):
                where = f"`{format_path(path, name)}`"
                break
    first = text.strip().splitlines()[0] if text.strip() else ""
    return ValueError(
        f"{who}: {where} in step {opened.step} cannot be read (the files are damaged): "
        f"{type(error).__name__}: {first}"
    )


def _check_leaf(got: Entry, want: Entry, name: str, step: int, who: str) -> None:
    if got[0] != want[0] or got[1] != want[1]:
        raise ValueError(
            f"{who}: `{name}` in step {step} is stored as {_describe(*got)} but the metadata says "
            f"{_describe(*want)}"
        )


def _compare(saved: dict[Path, Entry], like: dict[Path, Any], root: str) -> list[str]:
    problems: list[str] = []
    for path, value in like.items():
        if path not in saved:
            problems.append(
                f"missing from the checkpoint: `{format_path(path, root)}` "
                f"({np.dtype(value.dtype).name}{list(value.shape)})"
            )
    for path, (shape, dtype) in saved.items():
        if path not in like:
            problems.append(f"not in the model: `{format_path(path, root)}` ({dtype.name}{list(shape)})")
            continue
        want_shape, want_dtype = tuple(like[path].shape), np.dtype(like[path].dtype)
        if shape != want_shape:
            problems.append(
                f"shape: `{format_path(path, root)}` is {shape} in the checkpoint, {want_shape} in the model"
            )
        if dtype != want_dtype:
            problems.append(
                f"dtype: `{format_path(path, root)}` is {dtype.name} in the checkpoint, "
                f"{want_dtype.name} in the model"
            )
    return problems


def _restore_trees(
    directory: str | os.PathLike[str],
    likes: Mapping[str, object],
    required: tuple[str, ...],
    step: int | None,
    who: str,
) -> tuple[_Step, dict[str, Any]]:
    """The trees named in ``likes`` (those in the checkpoint, and every ``required`` one)."""
    ocp = _require_orbax()
    opened = _open(ocp, directory, step, who)
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # jax.local_devices is partially typed
    problems: list[str] = []
    names: list[str] = []
    like_flat: dict[str, tuple[dict[Path, Any], Any]] = {}
    for name, like in likes.items():
        saved = opened.trees.get(name)
        if saved is None:
            if name in required or like is not None:
                problems.append(f"the checkpoint has no `{name}` (it was saved without it)")
            continue
        names.append(name)
        if like is not None:
            like_flat[name] = _flatten(like, name, who, saving=False)
            problems += _compare(saved, like_flat[name][0], name)
    if problems:
        raise ValueError(
            f"{who}: step {opened.step} at `{os.path.abspath(directory)}` does not match the model:\n  "
            + "\n  ".join(problems)
        )
    _check_stored(ocp, opened, names, who)

    args: dict[str, Any] = {}
    for name in names:
        if not opened.trees[name]:
            continue
        placed: dict[Path, Any] = {}
        for path, value in like_flat.get(name, ({}, None))[0].items():
            sharding = getattr(value, "sharding", None)
            placed[path] = sharding if isinstance(sharding, jax.sharding.Sharding) else default
        # No shape or dtype asked for: orbax reads the arrays as stored, never cast or padded.
        restore_args = nest(
            {_stored(path): ocp.ArrayRestoreArgs(sharding=placed.get(path, default)) for path in opened.trees[name]},
            name,
        )
        args[name] = ocp.args.PyTreeRestore(restore_args=restore_args)
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
        for path, want in opened.trees[name].items():
            node: Any = restored.get(name, {})
            for key in _stored(path):
                node = node[key]
            _check_leaf((tuple(node.shape), np.dtype(node.dtype)), want, format_path(path, name), opened.step, who)
            values[path] = node
        sums = _checksums(list(values.values()))
        for (path, value), got in zip(values.items(), sums, strict=True):
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
        FileNotFoundError: no checkpoint or no such step at ``directory``.
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
    who = f"checkpoint.restore(`{os.fspath(directory)}`)"
    return _restore_trees(directory, {"params": like}, ("params",), step, who)[1]["params"]


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
    who = f"checkpoint.restore_with_state(`{os.fspath(directory)}`)"
    trees = _restore_trees(
        directory, {"params": params_like, "state": state_like}, ("params", "state"), step, who
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
        FileNotFoundError: no checkpoint or no such step at ``directory``.
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
    who = f"checkpoint.resume(`{os.fspath(directory)}`)"
    opened, trees = _restore_trees(
        directory,
        {"params": params_like, "opt_state": opt_state_like, "state": state_like},
        ("params",),
        step,
        who,
    )
    return Resumed(opened.step, trees["params"], trees.get("opt_state"), trees.get("state"), opened.extra)
