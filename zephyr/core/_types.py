"""The named types of zephyr, in one place: paths, shapes, params, initializers, and the one
record of a leaf.

Everything above the core speaks these types; this module imports nothing from zephyr.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np
from jax import Array
from typing_extensions import TypeAliasType

PathKey = str | int
"""One step into a params tree: a string key or an integer index."""

Path = tuple[PathKey, ...]
"""The keys from the root of a params tree to one node, e.g. ``("encoder", 0, "weights")``."""

PRNGKey = Array
"""A JAX random key: ``jax.random.key(0)`` (typed) or ``jax.random.PRNGKey(0)`` (raw uint32)."""

Shape = tuple[int, ...]
"""A concrete array shape."""

DType = Any
"""Anything ``jnp.dtype`` accepts (``jnp.float32``, ``"bfloat16"``, ...)."""


if TYPE_CHECKING:
    ParamsTree = TypeAliasType("ParamsTree", "Mapping[Any, Params] | Array")
    Params = TypeAliasType("Params", "ParamsTree | Any")
else:  # at run time (beartype), one level: a mapping or an array, resolvable from any module
    ParamsTree = TypeAliasType("ParamsTree", Mapping[Any, Any] | Array)
    Params = TypeAliasType("Params", Mapping[Any, Any] | Array)
"""``ParamsTree``: what a net takes, a mapping of params or an array (a leaf). ``Params``: what
you hold and annotate (``trace``'s result, a train step's params), a ``ParamsTree`` or a value
typed wider by another library.

Every zephyr net takes a ``ParamsTree`` (the stubs say so), so ``nets.linear(3, x, 256)`` is a
type error. A nested ``dict`` of ``jax.Array`` is one, and so is a ``jax.Array``. Its values
are ``Params`` (a self-recursive ``ParamsTree`` is partly unknown to pyright), so a wrong
leaf *inside* a dict literal (``{"weights": 3}``) is not a type error; it is a run-time one.

``Params`` is ``ParamsTree | Any``: anything assigns *to* it, so optax's results (annotated
``ArrayTree``, a union with ``int`` and ``Iterable``) assign back to a train step's
``-> tuple[Params, ...]`` with no cast; a ``Params`` value assigns only where every part of
the union does (a net's ``ParamsTree``, not an ``int``), and holed calls stay typed: it is
not ``Any``. An ``Any`` argument would make every overload of a holed net match, and every
result ``Any``. Use ``validate(params["w"], shape)`` to get a leaf typed as an array.

A ``TypedDict`` of arrays is *not* a ``ParamsTree`` (its values are ``object`` to a checker);
nets annotated with a ``TypedDict`` are shown to users with ``ParamsTree`` in the stubs. At
run time (checking on) both are one level: a mapping or an array.
"""


@runtime_checkable
class Initializer(Protocol):
    """``(key, shape, dtype) -> Array``: the protocol of ``jax.nn.initializers``."""

    def __call__(self, key: PRNGKey, shape: Shape, dtype: DType = ..., /) -> Array: ...

@dataclass(frozen=True, slots=True)
class Leaf:
    """What is known about one parameter without its value: path, shape, dtype, tags.

    ``trace`` records one per declared leaf (with the initializer that will create it);
    ``zephyr.tags.leaf_info`` and the sharding and checkpoint functions hand them out.

    Attributes:
        path: the keys from the root, e.g. ``("encoder", 0, "weights")``.
        shape: the leaf's shape.
        dtype: the leaf's storage dtype.
        tags: the tags given to the leaf, in declaration order.
        layers: for a leaf of :func:`zephyr.stack`, the size of its leading layer axis
            (slice ``i`` belongs to layer ``i``); 0 for any other leaf.
        root: ``"params"`` or ``"state"``, how :attr:`name` is written.
        initializer: what creates the leaf's initial value (``None`` when the leaf was read
            from an existing array).

    Example:
        >>> import numpy as np
        >>> from zephyr.tags import Leaf
        >>> leaf = Leaf(("mlp", 0, "weights"), (8, 32), np.dtype("float32"))
        >>> leaf.name, leaf.key, leaf.depth, leaf.size
        ("params['mlp'][0]['weights']", 'mlp/0/weights', 0, 256)
    """

    path: Path
    shape: Shape
    dtype: np.dtype[Any]
    tags: tuple[str, ...] = ()
    layers: int = 0
    root: str = "params"
    initializer: Initializer | None = None

    def at(self, path: Path) -> Leaf:
        """The same leaf at another path (what replay and ``stack`` declare again).

        Built directly, not with ``dataclasses.replace`` (~4x slower): replay moves every leaf
        of every repeated block.

        >>> import numpy as np
        >>> Leaf(("w",), (2,), np.dtype("float32"), ("decay",)).at((0, "w")).path
        (0, 'w')
        """
        return Leaf(path, self.shape, self.dtype, self.tags, self.layers, self.root, self.initializer)

    @property
    def key(self) -> str:
        """The path as one string, keys joined by ``/``: ``"encoder/0/weights"``."""
        return "/".join(str(k) for k in self.path)

    @property
    def name(self) -> str:
        """The path as the expression that reaches it: ``params['encoder'][0]['weights']``."""
        return format_path(self.path, self.root)

    @property
    def depth(self) -> int | None:
        """The index of the numbered layer the leaf belongs to, or ``None``.

        That is the first integer key on the path: ``params[2]["weights"]`` (an ``mlp``) and
        ``params["blocks"][2]["attn"][0]["weights"]`` both have depth 2. Leaves outside any
        numbered layer (an embedding, a final norm) have depth ``None``. A leaf of
        :func:`zephyr.stack` (:attr:`layers` > 0) holds every layer along its axis 0: slice
        ``i`` is layer ``i`` (``zephyr.tags.scale_by_depth`` scales it so).
        """
        return next((k for k in self.path if isinstance(k, int)), None)

    @property
    def size(self) -> int:
        """The number of scalars in the leaf."""
        return int(np.prod(self.shape, dtype=np.int64))

def format_path(path: Path, root: str = "params") -> str:
    """Render a path as the Python expression that reaches it.

    >>> format_path(("encoder", 0, "weights"))
    "params['encoder'][0]['weights']"
    """
    return root + "".join(f"[{key!r}]" for key in path)


def name_of(f: object) -> str:
    """A readable name for a function in messages.

    >>> import functools
    >>> name_of(len), name_of(3), name_of(functools.partial(len))
    ('len', '3', 'len')
    """
    name = getattr(f, "__name__", None)
    if name:
        return str(name)
    if isinstance(f, functools.partial):
        partial: functools.partial[Any] = cast(Any, f)
        return name_of(partial.func)
    if callable(f) and not isinstance(f, type):  # a callable object: its class
        return type(f).__name__
    return repr(f)
