"""Checkpoints of params (and state) with orbax-checkpoint, checked against the model on restore.

A checkpoint is one orbax directory with up to three items: ``params`` and ``state`` (orbax
``StandardSave``: tensorstore/OCDBT, sharded arrays written shard by shard) and ``zephyr``
(JSON: every leaf's path with its int and str keys, shape and dtype). orbax writes dict keys
as strings; the JSON is what gives ``params[0]`` back as an int key. Restoring against a
model (``like``: a trace, an abstract trace, or ``zephyr.tags.leaf_info``) checks every path,
shape and dtype first and places each leaf with ``like``'s sharding.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from ._sharding import abstract_leaf
from .core._paths import flatten_with_paths, format_path
from .core._types import Leaf, Path, PathKey

FORMAT = "zephyr-checkpoint"
VERSION = 1


def _require_orbax() -> Any:
    try:
        import orbax.checkpoint as ocp  # type: ignore[import-untyped]  # orbax ships no py.typed
    except ImportError as error:  # pragma: no cover - orbax is a dependency
        raise ImportError(
            "zephyr.checkpoint needs orbax-checkpoint: pip install orbax-checkpoint"
        ) from error
    return ocp


def _flatten(tree: object, root: str, who: str) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    for path, value in flatten_with_paths(tree)[0]:
        if not (isinstance(value, Leaf) or (hasattr(value, "shape") and hasattr(value, "dtype"))):
            raise TypeError(
                f"{who}: `{format_path(path, root)}` must be an array, got {type(value).__name__}"
            )
        out[path] = value
    return out


def _nest_str(values: Mapping[Path, Any]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path, value in values.items():
        node = root
        for key in path[:-1]:
            node = node.setdefault(str(key), {})
        node[str(path[-1])] = value
    return root


def _nest(values: Mapping[Path, Any]) -> dict[PathKey, Any]:
    root: dict[PathKey, Any] = {}
    for path, value in values.items():
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return root


def _get_str(tree: Mapping[str, Any], path: Path) -> Any:
    node: Any = tree
    for key in path:
        node = node[str(key)]
    return node


def save(
    directory: str | os.PathLike[str],
    params: object,
    state: object = None,
    *,
    overwrite: bool = False,
) -> None:
    """Save ``params`` (and ``state``) to ``directory`` with orbax-checkpoint.

    Sharded arrays are written shard by shard from the devices that hold them. Int and str
    keys, bfloat16 and every other dtype come back exactly (bit for bit) from :func:`restore`.

    Args:
        directory: where to write; it must not exist unless ``overwrite``.
        params: a nested dict of arrays, e.g. from :func:`zephyr.trace`.
        state: an optional second tree (running statistics), from ``trace_with_state``.
        overwrite: replace an existing checkpoint at ``directory``.

    Raises:
        FileExistsError: ``directory`` exists and ``overwrite`` is false.

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from zephyr import checkpoint, nets, trace
        >>> params = trace(nets.mlp, jax.random.key(0), jnp.ones((2, 4)), [8, 3])
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> checkpoint.save(path, params)
        >>> restored = checkpoint.restore(path, like=params)
        >>> sorted(restored), bool((restored[0]["weights"] == params[0]["weights"]).all())
        ([0, 1], True)
    """
    ocp = _require_orbax()
    target: str = os.path.abspath(directory)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"zephyr.checkpoint.save: `{target}` exists; pass overwrite=True to replace it"
        )
    items: dict[str, Any] = {}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "trees": {}}
    for root, tree in (("params", params), ("state", state)):
        if tree is None:
            continue
        flat = _flatten(tree, root, "zephyr.checkpoint.save")
        meta["trees"][root] = [
            {"path": list(path), "shape": list(np.shape(value)), "dtype": np.dtype(value.dtype).name}
            for path, value in flat.items()
        ]
        if flat:
            items[root] = ocp.args.StandardSave(_nest_str(flat))
    items["zephyr"] = ocp.args.JsonSave(meta)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(target, ocp.args.Composite(**items), force=overwrite)


def _read_meta(ocp: Any, target: str, who: str) -> dict[str, Any]:
    if not os.path.isdir(target):
        raise FileNotFoundError(f"{who}: no checkpoint at `{target}`")
    if not os.path.isdir(os.path.join(target, "zephyr")):
        raise ValueError(f"{who}: `{target}` is not a zephyr checkpoint (no `zephyr` item)")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        restored = checkpointer.restore(target, ocp.args.Composite(zephyr=ocp.args.JsonRestore()))
    meta: dict[str, Any] = restored["zephyr"]
    if meta.get("format") != FORMAT:
        raise ValueError(f"{who}: `{target}` is not a zephyr checkpoint")
    return meta


def _describe(shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    return f"{dtype.name}{list(shape)}"


def _compare(
    saved: dict[Path, tuple[tuple[int, ...], np.dtype[Any]]],
    like: dict[Path, Any],
    root: str,
) -> list[str]:
    problems: list[str] = []
    for path, value in like.items():
        if path not in saved:
            problems.append(f"missing from the checkpoint: `{format_path(path, root)}` "
                            f"({_describe(tuple(value.shape), np.dtype(value.dtype))})")
    for path, (shape, dtype) in saved.items():
        if path not in like:
            problems.append(f"not in the model: `{format_path(path, root)}` ({_describe(shape, dtype)})")
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
    directory: str | os.PathLike[str], likes: dict[str, object], who: str
) -> dict[str, Any]:
    ocp = _require_orbax()
    target: str = os.path.abspath(directory)
    meta = _read_meta(ocp, target, who)
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # jax.devices is partially typed
    problems: list[str] = []
    abstract: dict[str, Any] = {}
    order: dict[str, list[Path]] = {}
    for root, like in likes.items():
        entries = meta["trees"].get(root)
        if entries is None:
            problems.append(f"the checkpoint has no `{root}` (it was saved without it)")
            continue
        saved = {
            tuple(e["path"]): (tuple(e["shape"]), np.dtype(jax.numpy.dtype(e["dtype"])))
            for e in entries
        }
        placed: dict[Path, Any] = {}
        if like is not None:
            like_flat = _flatten(like, root, who)
            problems += _compare(saved, like_flat, root)
            for path, value in like_flat.items():
                sharding = getattr(value, "sharding", None)
                placed[path] = sharding if isinstance(sharding, jax.sharding.Sharding) else default
        order[root] = list(saved)
        if saved:
            abstract[root] = _nest_str(
                {
                    path: abstract_leaf(shape, dtype, placed.get(path, default))
                    for path, (shape, dtype) in saved.items()
                }
            )
    if problems:
        raise ValueError(
            f"{who}: the checkpoint at `{target}` does not match the model:\n  " + "\n  ".join(problems)
        )
    restored: dict[str, Any] = {}
    if abstract:
        args = {root: ocp.args.StandardRestore(tree) for root, tree in abstract.items()}
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            restored = dict(checkpointer.restore(target, ocp.args.Composite(**args)).items())
    return {
        root: _nest({path: _get_str(restored[root], path) for path in order[root]})
        if order.get(root) else {}
        for root in likes
    }


def restore(directory: str | os.PathLike[str], like: object = None) -> Any:
    """Load the params saved by :func:`save`, checked against the model ``like``.

    Args:
        directory: the checkpoint written by :func:`save`.
        like: what the model expects: its params, ``zephyr.abstract_trace(net, x)``,
            ``zephyr.sharding.abstract_trace_sharded(...)`` or ``zephyr.tags.leaf_info``.
            Leaves with a sharding are restored with it (each device reads its shards).
            ``None``: load as saved, on the default device, with no check.

    Returns:
        The params: a nested dict of ``jax.Array`` with the saved int and str keys.

    Raises:
        ValueError: the checkpoint differs from ``like``; the message names every path that
            is missing, unexpected, or of another shape or dtype.

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
        ValueError: zephyr.checkpoint.restore: the checkpoint at `...` does not match the model:
          shape: `params[1]['bias']` is (3,) in the checkpoint, (5,) in the model
          shape: `params[1]['weights']` is (8, 3) in the checkpoint, (8, 5) in the model
    """
    return _restore_trees(directory, {"params": like}, "zephyr.checkpoint.restore")["params"]


def restore_with_state(
    directory: str | os.PathLike[str], params_like: object = None, state_like: object = None
) -> tuple[Any, Any]:
    """Load ``(params, state)`` saved by ``save(directory, params, state)``; see :func:`restore`.

    Args:
        directory: the checkpoint written by :func:`save` with a ``state``.
        params_like: what the model's params look like (or ``None``: as saved).
        state_like: what the model's state looks like (or ``None``: as saved).

    Returns:
        ``(params, state)``.

    Raises:
        ValueError: either tree differs from the model (every differing path is named), or
            the checkpoint has no state.

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
        directory, {"params": params_like, "state": state_like}, "zephyr.checkpoint.restore_with_state"
    )
    return trees["params"], trees["state"]
