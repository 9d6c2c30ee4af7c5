"""Tags and paths of parameters: select, mask and label leaves for optimizers and sharding.

Every leaf of a params tree has a *path* (``("encoder", 0, "weights")``, written
``"encoder/0/weights"`` as a *key*), a *depth* (the index of the numbered layer it belongs
to) and *tags* (labels given by ``validate(..., tags=...)``, by ``Annotated[..., "tag"]`` in
a params annotation, or added by path rules with :func:`tag`).

A *selector* picks leaves. It is one of:

- ``"tag:NAME"``: the leaves tagged ``NAME``;
- any other string: a regular expression searched (``re.search``) in the leaf's key, e.g.
  ``"bias$"``, ``"^encoder/"``, ``"(^|/)0/"``;
- a callable ``(Leaf) -> bool``.

The functions take a tree whose leaves are :class:`Leaf` (from :func:`leaf_info`, which knows
the tags, shapes and dtypes without allocating anything) or arrays (then only paths are known
and no leaf has tags). Their results mirror the params tree, so they go straight to optax:
``optax.multi_transform(transforms, labels(info, rules))``, ``optax.masked(tx, mask(info, ...))``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import replace
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_tags
from .core._api import collect_specs
from ._tree import flatten_with_paths
from .core._paths import nest
from .core._types import Leaf, Params, Path, format_path

Selector = str | Callable[["Leaf"], bool]
"""Picks leaves: ``"tag:NAME"``, a regex searched in the leaf's key, or ``(Leaf) -> bool``."""

TAG_PREFIX = "tag:"


def _as_leaf(path: Path, node: object) -> Leaf:
    if isinstance(node, Leaf):
        return node
    shape = getattr(node, "shape", None)
    dtype = getattr(node, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(
            f"`{format_path(path)}`: expected an array, a jax.ShapeDtypeStruct or a zephyr.tags.Leaf, "
            f"got {type(node).__name__}"
        )
    return Leaf(path, tuple(shape), np.dtype(dtype))


def leaves_with_paths(tree: object) -> list[Leaf]:
    """Every leaf of ``tree`` as a :class:`Leaf` (arrays become tag-less ``Leaf``s), in tree order."""
    return [_as_leaf(path, node) for path, node in flatten_with_paths(tree)[0]]


def map_leaves(fn: Callable[[Leaf], Any], tree: object) -> Any:
    """``tree`` with every leaf replaced by ``fn(Leaf)``; same structure as ``tree``."""
    flat, treedef = flatten_with_paths(tree)
    return jax.tree_util.tree_unflatten(treedef, [fn(_as_leaf(path, node)) for path, node in flat])  # pyright: ignore[reportUnknownMemberType]  # jax's PyTreeDef is untyped


def leaf_info(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The params of ``f`` as :class:`Leaf` objects: paths, shapes, dtypes, tags. Allocates nothing.

    It runs ``f(params, *args, **kwargs)`` abstractly, as :func:`zephyr.trace` does, but does
    not initialize anything: use it on models too big for memory, and to get the tags that
    ``validate`` and params annotations declare.

    Args:
        f: the net, a function of ``(params, *args, **kwargs)``.
        *args: sample inputs (only their shapes and dtypes are used) and hyperparameters.
        **kwargs: sample keyword inputs.

    Returns:
        A nested dict shaped like the params of ``f``, with :class:`Leaf` leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets, tags
        >>> info = tags.leaf_info(nets.mlp, jnp.ones((2, 4)), [8, 3])
        >>> leaf = info[1]["weights"]
        >>> leaf.key, leaf.shape, leaf.depth
        ('1/weights', (8, 3), 1)
    """
    (specs,) = collect_specs(f, args, kwargs)
    return nest(specs)


def check_selectors(*selectors: object) -> None:
    """Raise a clear error for the first of ``selectors`` that is not one."""
    for where in selectors:
        if not callable(where) and not isinstance(where, str):
            raise TypeError(
                f"zephyr.tags: a selector is 'tag:NAME', a regex on the leaf's key, or a callable, "
                f"got {type(where).__name__} {where!r}"
            )
        if isinstance(where, str) and not where.startswith(TAG_PREFIX):
            try:
                re.compile(where)
            except re.error as error:
                raise ValueError(f"zephyr.tags: selector {where!r} is not a valid regular expression: {error}") from None


def matches(leaf: Leaf, where: Selector) -> bool:
    """Whether ``where`` selects ``leaf``.

    Args:
        leaf: the leaf.
        where: ``"tag:NAME"``, a regex searched in ``leaf.key``, or ``(Leaf) -> bool``.

    Returns:
        ``True`` if the selector picks the leaf.

    Example:
        >>> import numpy as np
        >>> from zephyr.tags import Leaf, matches
        >>> leaf = Leaf((0, "bias"), (3,), np.dtype("float32"), tags=("no_decay",))
        >>> matches(leaf, "bias$"), matches(leaf, "tag:no_decay"), matches(leaf, "^1/")
        (True, True, False)
    """
    if isinstance(where, str):
        if where.startswith(TAG_PREFIX):
            return where[len(TAG_PREFIX) :] in leaf.tags
        return re.search(where, leaf.key) is not None
    return bool(where(leaf))


def tag(tree: object, rules: Mapping[str, str | Iterable[str]]) -> Any:
    """Add tags by path rule: every leaf selected by a rule's key gets that rule's tags.

    Args:
        tree: params, abstract params, or the result of :func:`leaf_info` (tags kept).
        rules: ``{selector: tag or tags}``; every rule that matches a leaf adds its tags.

    Returns:
        A tree shaped like ``tree`` with :class:`Leaf` leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets, tags
        >>> info = tags.leaf_info(nets.mlp, jnp.ones((2, 4)), [8, 3])
        >>> info = tags.tag(info, {"bias$": "no_decay", "^0/": ("first", "frozen")})
        >>> info[0]["bias"].tags, info[1]["weights"].tags
        (('no_decay', 'first', 'frozen'), ())
    """
    rules_given = cast(object, rules)  # any value at run time
    if not isinstance(rules_given, Mapping):
        raise TypeError(f"tags.tag: `rules` must be a dict {{selector: tag or tags}}, got {rules!r}")
    check_selectors(*rules)
    compiled = [(where, check_tags(f"tags.tag (rule {where!r})", extra)) for where, extra in rules.items()]

    def add(leaf: Leaf) -> Leaf:
        added = [t for where, extra in compiled if matches(leaf, where) for t in extra]
        if not added:
            return leaf
        return replace(leaf, tags=tuple(dict.fromkeys(leaf.tags + tuple(added))))

    return map_leaves(add, tree)


def tags(tree: object) -> Any:
    """The tags of each leaf: a tree shaped like the params, with ``tuple[str, ...]`` leaves.

    Map it together with params with the params first, ``jax.tree.map(f, params, tags(info))``
    (a tuple is a pytree node, so ``f`` gets each leaf's whole tuple).

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import tags, validate
        >>> def net(params, x):
        ...     return x * validate(params["scale"], (3,), tags="norm")
        >>> tags.tags(tags.leaf_info(net, jnp.ones(3)))
        {'scale': ('norm',)}
    """
    return map_leaves(lambda leaf: leaf.tags, tree)


def paths(tree: object) -> Any:
    """The key of each leaf (``"encoder/0/weights"``): a tree shaped like the params.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets, tags
        >>> tags.paths(tags.leaf_info(nets.mlp, jnp.ones((2, 4)), [3]))
        {0: {'bias': '0/bias', 'weights': '0/weights'}}
    """
    return map_leaves(lambda leaf: leaf.key, tree)


def mask(tree: object, *where: Selector) -> Any:
    """``True`` at each leaf that any selector picks: the mask ``optax.masked`` takes.

    Args:
        tree: params or :func:`leaf_info` (needed to select by tag).
        *where: selectors (``"tag:NAME"``, a regex on the key, or ``(Leaf) -> bool``).

    Returns:
        A tree shaped like the params with ``bool`` leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets, tags
        >>> info = tags.leaf_info(nets.mlp, jnp.ones((2, 4)), [3])
        >>> tags.mask(info, "weights$")
        {0: {'bias': False, 'weights': True}}
    """
    check_selectors(*where)
    return map_leaves(lambda leaf: any(matches(leaf, s) for s in where), tree)


def labels(
    tree: object,
    rules: Mapping[str, Hashable] | Callable[[Leaf], Hashable],
    default: Hashable | None = None,
) -> Any:
    """One label per leaf: the ``param_labels`` of ``optax.multi_transform``.

    Args:
        tree: params or :func:`leaf_info` (needed to label by tag).
        rules: ``{selector: label}``, the first matching rule wins (in dict order); or a
            function ``(Leaf) -> label``, e.g. ``lambda leaf: f"layer{leaf.depth}"``.
        default: the label of leaves no rule picks. Without one, such leaves are an error.

    Returns:
        A tree shaped like the params with hashable leaves.

    Raises:
        ValueError: some leaves match no rule and there is no ``default`` (names them).

    Example:
        >>> import jax.numpy as jnp
        >>> from zephyr import nets, tags
        >>> info = tags.leaf_info(nets.mlp, jnp.ones((2, 4)), [8, 3])
        >>> tags.labels(info, {"bias$": "no_decay"}, default="decay")[0]
        {'bias': 'no_decay', 'weights': 'decay'}
        >>> tags.labels(info, lambda leaf: f"layer{leaf.depth}")[1]["weights"]
        'layer1'
    """
    if not isinstance(rules, Mapping):
        return map_leaves(rules, tree)
    table: Mapping[str, Hashable] = rules  # pyright: ignore[reportUnknownVariableType]  # narrowed from the union
    check_selectors(*table)
    unmatched: list[str] = []

    def label(leaf: Leaf) -> Hashable:
        for selector, value in table.items():
            if matches(leaf, selector):
                return value
        if default is None:
            unmatched.append(leaf.name)
        return default

    result = map_leaves(label, tree)
    if unmatched:
        raise ValueError(
            f"zephyr.tags.labels: no rule matches {', '.join(f'`{n}`' for n in unmatched)} "
            f"(rules: {list(table)}); add a rule or give `default`"
        )
    return result


def select(params: Params, *where: Selector, info: object = None) -> Any:
    """The subtree of ``params`` made of the leaves any selector picks (other leaves dropped).

    Args:
        params: a nested dict of arrays.
        *where: selectors (``"tag:NAME"``, a regex on the key, or ``(Leaf) -> bool``).
        info: :func:`leaf_info` of the same net, to select by tag (default: paths only).

    Returns:
        A nested dict holding only the selected leaves (empty dicts are dropped).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, tags, trace
        >>> params = trace(nets.mlp, jax.random.key(0), jnp.ones((2, 4)), [8, 3])
        >>> jax.tree.map(jnp.shape, tags.select(params, "weights$"))
        {0: {'weights': (4, 8)}, 1: {'weights': (8, 3)}}
    """
    return partition(params, *where, info=info)[0]


def partition(params: Params, *where: Selector, info: object = None) -> tuple[Any, Any]:
    """Split ``params`` into ``(selected, rest)``; :func:`zephyr.tree.merge` joins them again.

    Train a part of a model with ``jax.grad`` on ``selected`` while ``rest`` stays fixed, as
    ``equinox.partition`` / ``equinox.combine`` do.

    Args:
        params: a nested dict of arrays.
        *where: selectors (``"tag:NAME"``, a regex on the key, or ``(Leaf) -> bool``).
        info: :func:`leaf_info` of the same net, to select by tag (default: paths only).

    Returns:
        Two nested dicts: the selected leaves and the others.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, tags, trace, tree
        >>> params = trace(nets.mlp, jax.random.key(0), jnp.ones((2, 4)), [3])
        >>> biases, others = tags.partition(params, "bias$")
        >>> sorted(biases[0]), sorted(others[0])
        (['bias'], ['weights'])
        >>> tree.merge(biases, others).keys() == params.keys()
        True
    """
    check_selectors(*where)
    by_path = {leaf.path: leaf for leaf in leaves_with_paths(params if info is None else info)}
    chosen: dict[Path, Any] = {}
    rest: dict[Path, Any] = {}
    for path, value in flatten_with_paths(params, None)[0]:
        leaf = by_path.get(path)
        if leaf is None:
            raise ValueError(
                f"zephyr.tags: `{format_path(path)}` is in `params` but not in `info`: "
                "give the leaf_info of the same net"
            )
        (chosen if any(matches(leaf, s) for s in where) else rest)[path] = value
    return nest(chosen), nest(rest)


def scale_by_depth(tree: object, scale: Callable[[int], float], default: float = 1.0) -> Any:
    """An optax transformation multiplying each update by ``scale(depth)``: per-layer rates.

    Chain it after an optimizer (``optax.chain(optax.adam(1e-3), scale_by_depth(info, f))``)
    to give layer ``i`` the learning rate ``1e-3 * f(i)``. Numbered layers use
    :attr:`Leaf.depth`; a leaf of :func:`zephyr.stack` has slice ``i`` scaled by ``f(i)``
    (what ``optax.multi_transform`` cannot do: it labels whole leaves).

    Args:
        tree: params or :func:`leaf_info` (needed for stacked leaves).
        scale: ``depth -> factor``.
        default: the factor of leaves outside any numbered or stacked layer.

    Returns:
        An ``optax.GradientTransformation`` (stateless).

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from zephyr import nets, stack, tags, trace
        >>> from zephyr.functools.partial import placeholder_hole as _
        >>> deep, x = stack(nets.linear(_, _, 2), 3), jnp.ones((1, 2))
        >>> params = trace(deep, jax.random.key(0), x)
        >>> tx = optax.chain(optax.sgd(1.0), tags.scale_by_depth(tags.leaf_info(deep, x), lambda d: 0.5**d))
        >>> updates, _state = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params))
        >>> updates["bias"].tolist()
        [[-1.0, -1.0], [-0.5, -0.5], [-0.25, -0.25]]
    """
    import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed

    def factor(leaf: Leaf) -> Any:
        if leaf.layers:
            column = np.asarray([scale(i) for i in range(leaf.layers)], dtype=np.float32)
            return column.reshape((leaf.layers,) + (1,) * (len(leaf.shape) - 1))
        return np.float32(default if leaf.depth is None else scale(leaf.depth))

    factors = map_leaves(factor, tree)

    def scaled(update: jax.Array, factor: np.ndarray[Any, Any]) -> jax.Array:
        return update * jnp.asarray(factor, update.dtype)  # pyright: ignore[reportUnknownMemberType]  # jnp.asarray is partially typed

    return optax.stateless(lambda updates, params: jax.tree.map(scaled, updates, factors))  # pyright: ignore[reportUnknownMemberType, reportUnknownLambdaType, reportUnknownArgumentType]  # optax is partially typed
