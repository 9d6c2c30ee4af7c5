"""Sharded and abstract traces: params created already placed on a mesh, or not at all.

Rules map selectors (``"tag:NAME"``, a regex on the leaf's key ``"encoder/0/weights"``, or a
callable, see ``zephyr.tags``) to ``jax.sharding.PartitionSpec``s; the first matching rule
wins and a leaf no rule picks is replicated (``PartitionSpec()``). ``trace_sharded`` creates
each leaf with ``jax.jit(init, out_shardings=NamedSharding(mesh, spec))``: each device
computes only its own shard, so the whole model never exists on one device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._checks import check_random_key
from ._tags import Selector, check_selectors, map_leaves, matches
from .core._api import collect_specs, initialize
from .core._paths import nest
from .core._types import Leaf

P = TypeVar("P")
Ps = ParamSpec("Ps")

_REPLICATED = PartitionSpec()  # jax leaves PartitionSpec.__init__ unannotated


ShardingRules = Mapping[str, PartitionSpec] | Sequence[tuple[Selector, PartitionSpec]]
"""``{selector: PartitionSpec}`` or ``[(selector, PartitionSpec), ...]``; first match wins."""


def _rule_list(rules: ShardingRules) -> list[tuple[Selector, PartitionSpec]]:
    items: list[tuple[Selector, PartitionSpec]] = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
            raise TypeError(f"zephyr.sharding: a rule is (selector, PartitionSpec), got {item!r}")
        selector, spec = item
        check_selectors(selector)
        if not isinstance(spec, PartitionSpec):  # pyright: ignore[reportUnnecessaryIsInstance]  # user input, checked at run time
            raise TypeError(
                f"zephyr.sharding: the rule for {selector!r} must map to a jax.sharding.PartitionSpec, "
                f"got {type(spec).__name__} {spec!r}"
            )
    return items


def spec_for(leaf: Leaf, rules: ShardingRules) -> PartitionSpec:
    """The ``PartitionSpec`` of ``leaf``: the first rule that picks it, else ``PartitionSpec()``.

    Args:
        leaf: a ``zephyr.tags.Leaf`` (from ``zephyr.tags.leaf_info``).
        rules: ``{selector: PartitionSpec}`` or ``[(selector, PartitionSpec), ...]``.

    Returns:
        The ``PartitionSpec`` of the first rule whose selector picks ``leaf``.

    Example:
        >>> import numpy as np
        >>> from jax.sharding import PartitionSpec as P
        >>> from zephyr import sharding, tags
        >>> leaf = tags.Leaf(("mlp", 0, "weights"), (8, 32), np.dtype("float32"))
        >>> sharding.spec_for(leaf, [("bias$", P("model")), ("^mlp/0/", P(None, "model"))])
        P(None, 'model')
    """
    for selector, spec in _rule_list(rules):
        if matches(leaf, selector):
            return spec
    return _REPLICATED


def _sharding_for(leaf: Leaf, mesh: Mesh, rules: ShardingRules) -> NamedSharding:
    spec = spec_for(leaf, rules)
    if len(spec) > len(leaf.shape):
        raise ValueError(
            f"`{leaf.name}`: the sharding rule gives {spec} ({len(spec)} axes) to a leaf of shape "
            f"{leaf.shape} ({len(leaf.shape)} axes)"
        )
    for axis, (size, names) in enumerate(zip(leaf.shape, spec)):
        group = (names,) if isinstance(names, str) else tuple(names or ())  # None: no mesh axis, one part
        for name in group:
            if name not in mesh.shape:
                raise ValueError(
                    f"`{leaf.name}`: the sharding rule {spec} names mesh axis {name!r}; the mesh has "
                    f"{tuple(mesh.axis_names)}"
                )
        parts = math.prod(mesh.shape[name] for name in group)
        if size % parts:
            raise ValueError(
                f"`{leaf.name}`: axis {axis} of shape {leaf.shape} has size {size}, not divisible "
                f"by the {parts} devices of mesh axes {group} ({spec})"
            )
    return NamedSharding(mesh, spec)


def partition_specs(tree: object, rules: ShardingRules) -> Any:
    """The ``PartitionSpec`` of every leaf: a tree shaped like the params.

    Args:
        tree: params, abstract params, or ``zephyr.tags.leaf_info`` (to match by tag).
        rules: ``{selector: PartitionSpec}``; the first matching rule wins; default replicated.

    Returns:
        A tree shaped like the params with ``PartitionSpec`` leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from jax.sharding import PartitionSpec as P
        >>> from zephyr import nets, sharding, tags
        >>> info = tags.leaf_info(nets.linear, jnp.ones((2, 4)), 8)
        >>> sharding.partition_specs(info, {"weights$": P(None, "model")})
        {'bias': P(), 'weights': P(None, 'model')}
    """
    items = _rule_list(rules)
    return map_leaves(lambda leaf: spec_for(leaf, items), tree)


def shardings(tree: object, mesh: Mesh, rules: ShardingRules) -> Any:
    """The ``NamedSharding`` of every leaf on ``mesh``: for ``jax.jit``'s in/out_shardings.

    Args:
        tree: params, abstract params, or ``zephyr.tags.leaf_info`` (to match by tag).
        mesh: a ``jax.sharding.Mesh``.
        rules: ``{selector: PartitionSpec}``; the first matching rule wins; default replicated.

    Returns:
        A tree shaped like the params with ``NamedSharding`` leaves.

    Raises:
        ValueError: a rule does not fit a leaf (too many axes, an unknown mesh axis, a size
            not divisible by the devices); the message names the leaf.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jax.sharding import PartitionSpec as P
        >>> from zephyr import nets, sharding, tags
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> info = tags.leaf_info(nets.linear, jnp.ones((2, 4)), 8)
        >>> sharding.shardings(info, mesh, {"weights$": P(None, "model")})["weights"].spec
        P(None, 'model')
    """
    items = _rule_list(rules)
    return map_leaves(lambda leaf: _sharding_for(leaf, mesh, items), tree)


def trace_sharded(
    f: Callable[Concatenate[P, Ps], object],
    key: jax.Array,
    mesh: Mesh,
    rules: ShardingRules,
    *args: Ps.args,
    **kwargs: Ps.kwargs,
) -> P:
    """Like :func:`zephyr.trace`, with every leaf created already sharded over ``mesh``.

    Each leaf is initialized by ``jax.jit(..., out_shardings=NamedSharding(mesh, spec))``:
    each device computes only its shard, so the model is never whole on one device. The
    values equal those of ``trace(f, key, *args)`` (same keys, same initializers).

    Args:
        f: the net, a function of ``(params, *args, **kwargs)``.
        key: a JAX random key.
        mesh: the ``jax.sharding.Mesh`` to place the params on.
        rules: ``{selector: PartitionSpec}``: ``"tag:NAME"``, a regex on the leaf's key
            (``"encoder/0/weights"``) or a callable; first match wins; default replicated.
        *args: sample inputs and hyperparameters, as for ``trace``.
        **kwargs: sample keyword inputs, passed to ``f``.

    Returns:
        The params, every leaf a ``jax.Array`` with a ``NamedSharding`` on ``mesh``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jax.sharding import PartitionSpec as P
        >>> from zephyr import nets, trace_sharded
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> params = trace_sharded(nets.linear, jax.random.key(0), mesh,
        ...                        {"weights$": P(None, "model")}, jnp.ones((2, 4)), 8)
        >>> params["weights"].sharding.spec, params["bias"].sharding.spec
        (P(None, 'model'), P())
    """
    check_random_key(key, "trace_sharded")
    given = cast(object, mesh)  # any value at run time
    if not isinstance(given, jax.sharding.Mesh):
        raise TypeError(f"trace_sharded: `mesh` must be a jax.sharding.Mesh (e.g. jax.make_mesh((n,), (\"model\",))), got {mesh!r}")
    items = _rule_list(rules)
    (specs,) = collect_specs(f, args, kwargs)
    tree: Any = initialize(specs, key, lambda spec: _sharding_for(spec, mesh, items))
    return tree  # type: ignore[no-any-return]  # the tree has the shape f's params declare


def abstract_trace_sharded(
    f: Callable[..., object], mesh: Mesh, rules: ShardingRules, *args: Any, **kwargs: Any
) -> Any:
    """:func:`abstract_trace` with the sharding :func:`trace_sharded` would give each leaf.

    Args:
        f: the net, a function of ``(params, *args, **kwargs)``.
        mesh: a ``jax.sharding.Mesh``.
        rules: ``{selector: PartitionSpec}``; first match wins; default replicated.
        *args: sample inputs and hyperparameters.
        **kwargs: sample keyword inputs, passed to ``f``.

    Returns:
        A nested dict of ``jax.ShapeDtypeStruct`` with ``.sharding`` set (a ``NamedSharding``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jax.sharding import PartitionSpec as P
        >>> from zephyr import nets, sharding
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> abstract = sharding.abstract_trace_sharded(nets.linear, mesh, {"weights$": P(None, "model")},
        ...                                            jnp.ones((2, 4)), 8)
        >>> abstract["weights"].shape, abstract["weights"].sharding.spec
        ((4, 8), P(None, 'model'))
    """
    items = _rule_list(rules)
    (specs,) = collect_specs(f, args, kwargs)
    return nest(
        {
            path: jax.ShapeDtypeStruct(spec.shape, spec.dtype, sharding=_sharding_for(spec, mesh, items))
            for path, spec in specs.items()
        }
    )
