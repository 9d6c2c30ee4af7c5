"""The named types of zephyr, in one place: paths, shapes, params, initializers, the hole,
and the one record of a leaf.

Everything above the core speaks these types; this module imports nothing from zephyr.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn, ParamSpec, Protocol, TypeVar, cast, final, overload, runtime_checkable

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


MSG_HOLE_AS_VALUE = """\
Only @flexible functions accept holes; a hole reaches a plain function as a value. Make the
function flexible, or fill the hole first:

    @flexible
    def block(params, x, width): ...
    f = block(_, _, 256)   # f(params, x)
"""


@final
class PlaceholderType:
    """The type of the hole ``_``: one instance, ``placeholder_hole``.

    It is ``@final`` so that type checkers know no array is ever a hole, which lets the
    generated overloads in ``zephyr/nets.pyi`` and the ``Flexible*`` protocols tell ``linear(_, _, 256)`` from ``linear(p, x, 256)``.
    At run time it is a singleton that pickles by name and prints as ``_``.
    """

    __slots__ = ()
    _instance: ClassVar[PlaceholderType | None] = None

    def __new__(cls) -> PlaceholderType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "_"

    def __reduce__(self) -> str:
        return "placeholder_hole"

    def _as_value(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("the placeholder `_` was used as a value.\n" + MSG_HOLE_AS_VALUE)

    # Hidden from type checkers: to them a hole has no members, so it satisfies no protocol
    # (not ``Params``, not ``Iterable``) and the hole overloads can tell it from a value.
    if not TYPE_CHECKING:
        __array__ = __bool__ = __len__ = __iter__ = __getitem__ = _as_value
        __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _as_value
        __matmul__ = __rmatmul__ = __truediv__ = __rtruediv__ = __neg__ = _as_value
        __float__ = __int__ = __index__ = _as_value

        def __getattr__(self, name: str) -> NoReturn:
            if name.startswith("__"):
                raise AttributeError(name)
            self._as_value()


placeholder_hole: Final = PlaceholderType()
"""The hole: ``f(_, x)`` is a function of the missing first argument (import it as ``_``)."""


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
        return self.root + "".join(f"[{key!r}]" for key in self.path)

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


_Q = ParamSpec("_Q")
_P1 = ParamSpec("_P1")
_P2 = ParamSpec("_P2")
_P3 = ParamSpec("_P3")
_A = TypeVar("_A", contravariant=True)
_B = TypeVar("_B", contravariant=True)
_C = TypeVar("_C", contravariant=True)
_R = TypeVar("_R", covariant=True)
_H = PlaceholderType

# The static face of ``@flexible``. A user's own function gets typed holes with no stubs:
# ``flexible`` reads the function's whole signature (``_Q``) and, for its first one to three
# positional parameters, their types (``_A``, ``_B``, ``_C``) and the signature after each
# (``_P1``, ``_P2``, ``_P3``), by matching the function against an overloaded protocol
# (``Signature*``: one overload per view). The result (``Flexible*``) is called:
#   - without a hole: against ``_Q``, the function's own signature (names, defaults,
#     keywords), so a wrong argument is an error about the call;
#   - with a ``ParamsTree`` first argument: a net annotated with a params ``TypedDict`` takes a
#     subtree of traced params (typed ``Params``), but a ``dict`` literal with a wrong key is
#     still an error (a ``dict`` is not a ``ParamsTree``);
#   - with holes among the first three positional parameters: a callable of exactly the
#     missing ones, in order and in their types. Each hole overload requires a
#     ``PlaceholderType`` (``@final``, so no value is one) at each hole, so no call without a
#     hole ever matches one. Holes elsewhere (a fourth parameter, a keyword) match no
#     overload and are errors: the library's nets, typed by generated stubs, accept more.


class Signature1(Protocol[_Q, _A, _P1, _R]):  # pyright: ignore[reportInvalidTypeVarUse]  # parameter types: contravariant, as mypy and ty require
    """The view of a function that ``flexible`` reads: its signature and its first 1 parameter types."""

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _A, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...


class Signature2(Protocol[_Q, _A, _P1, _B, _P2, _R]):  # pyright: ignore[reportInvalidTypeVarUse]  # parameter types: contravariant, as mypy and ty require
    """The view of a function that ``flexible`` reads: its signature and its first 2 parameter types."""

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _A, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _A, b: _B, /, *args: _P2.args, **kwargs: _P2.kwargs) -> _R: ...


class Signature3(Protocol[_Q, _A, _P1, _B, _P2, _C, _P3, _R]):  # pyright: ignore[reportInvalidTypeVarUse]  # parameter types: contravariant, as mypy and ty require
    """The view of a function that ``flexible`` reads: its signature and its first 3 parameter types."""

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _A, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _A, b: _B, /, *args: _P2.args, **kwargs: _P2.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _A, b: _B, c: _C, /, *args: _P3.args, **kwargs: _P3.kwargs) -> _R: ...


class Flexible0(Protocol[_Q, _R]):
    """``@flexible`` on a function without positional parameters: its own signature."""

    __name__: str
    __zephyr_flexible__: bool  # what makes a wrapper (not any function) one of these

    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...


# mypy reports the hole overloads as overlapping the ones before them: it cannot rule out a
# ``PlaceholderType`` inside the generic ``_P1``/``_P2`` tail. The tails are the function's
# own parameters, which no function annotates with ``PlaceholderType``.
class Flexible1(Protocol[_Q, _A, _P1, _R]):
    """``@flexible`` on ``f(a, *rest)``: ``f(_, *rest)`` is a function of ``a``."""

    __name__: str
    __zephyr_flexible__: bool  # what makes a wrapper (not any function) one of these

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: ParamsTree, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _H, /, *args: _P1.args, **kwargs: _P1.kwargs) -> Callable[[_A], _R]: ...


class Flexible2(Protocol[_Q, _A, _P1, _B, _P2, _R]):
    """``@flexible`` on ``f(a, b, *rest)``: holes in ``a`` and ``b`` are typed."""

    __name__: str
    __zephyr_flexible__: bool  # what makes a wrapper (not any function) one of these

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: ParamsTree, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _H, /, *args: _P1.args, **kwargs: _P1.kwargs) -> Callable[[_A], _R]: ...
    @overload
    def __call__(self, a: _H, b: _H, /, *args: _P2.args, **kwargs: _P2.kwargs) -> Callable[[_A, _B], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _A | ParamsTree, b: _H, /, *args: _P2.args, **kwargs: _P2.kwargs) -> Callable[[_B], _R]: ...


class Flexible3(Protocol[_Q, _A, _P1, _B, _P2, _C, _P3, _R]):
    """``@flexible`` on ``f(a, b, c, *rest)``: holes in ``a``, ``b`` and ``c`` are typed.

    ``block(_, _, 8)`` is a ``Callable[[A, B], R]``; ``block(p, x, "8")`` is an error about
    the call (no overload matches), never a holed call.
    """

    __name__: str
    __zephyr_flexible__: bool  # what makes a wrapper (not any function) one of these

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: ParamsTree, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _H, /, *args: _P1.args, **kwargs: _P1.kwargs) -> Callable[[_A], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _H, b: _H, /, *args: _P2.args, **kwargs: _P2.kwargs) -> Callable[[_A, _B], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _A | ParamsTree, b: _H, /, *args: _P2.args, **kwargs: _P2.kwargs) -> Callable[[_B], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _H, b: _H, c: _H, /, *args: _P3.args, **kwargs: _P3.kwargs) -> Callable[[_A, _B, _C], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _H, b: _B, c: _H, /, *args: _P3.args, **kwargs: _P3.kwargs) -> Callable[[_A, _C], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _A | ParamsTree, b: _H, c: _H, /, *args: _P3.args, **kwargs: _P3.kwargs) -> Callable[[_B, _C], _R]: ...  # type: ignore[overload-overlap]  # see above
    @overload
    def __call__(self, a: _A | ParamsTree, b: _B, c: _H, /, *args: _P3.args, **kwargs: _P3.kwargs) -> Callable[[_C], _R]: ...


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


def call_target(fn: object) -> tuple[types.FunctionType, tuple[Any, ...], dict[str, Any]] | None:
    """``(function, args, kwargs)`` such that ``fn(*a, **k)`` is ``function(*args, *a, **kwargs, **k)``
    for a plain Python ``function``: what holds the annotations of a call of ``fn`` (a
    function, a bound method, a ``functools.partial`` or a callable object); ``None`` if no
    Python function does (a builtin, a class).

    >>> import functools
    >>> def scale(x, by): return x * by
    >>> call_target(functools.partial(scale, by=2)) == (scale, (), {"by": 2})
    True
    """
    if isinstance(fn, types.FunctionType):
        return fn, (), {}
    if isinstance(fn, types.MethodType):
        inner = call_target(fn.__func__)
        return None if inner is None else (inner[0], (*inner[1], fn.__self__), inner[2])
    if isinstance(fn, functools.partial):
        partial: functools.partial[Any] = cast(Any, fn)
        inner = call_target(partial.func)
        if inner is None:
            return None
        return inner[0], (*inner[1], *partial.args), {**inner[2], **partial.keywords}
    call = getattr(type(fn), "__call__", None)
    if not isinstance(fn, type) and isinstance(call, types.FunctionType):
        return call, (fn,), {}
    return None


def annotated_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The Python function whose annotations describe a call of ``fn`` (see :func:`call_target`),
    or ``fn`` itself.

    >>> class Scale:
    ...     def __call__(self, x: int) -> int: return x
    >>> annotated_function(Scale()) is Scale.__call__
    True
    """
    target = call_target(fn)
    return fn if target is None else target[0]
