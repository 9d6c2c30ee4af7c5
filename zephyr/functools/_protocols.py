"""The static face of ``@flexible``: the protocols that type a flexible function's calls,
with and without holes (``zephyr.flexible`` returns one; ``zephyr.trace`` reads one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar, overload

from ..core._types import ParamsTree
from ._partial import PlaceholderType

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


class _Flexible(Protocol):
    """What every ``Flexible*`` has: a name, and the mark that makes a wrapper (not any
    function) one of them."""

    __name__: str
    __zephyr_flexible__: bool


class Flexible0(_Flexible, Protocol[_Q, _R]):
    """``@flexible`` on a function without positional parameters: its own signature."""

    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...


# mypy reports the hole overloads as overlapping the ones before them: it cannot rule out a
# ``PlaceholderType`` inside the generic ``_P1``/``_P2`` tail. The tails are the function's
# own parameters, which no function annotates with ``PlaceholderType``.
class Flexible1(_Flexible, Protocol[_Q, _A, _P1, _R]):
    """``@flexible`` on ``f(a, *rest)``: ``f(_, *rest)`` is a function of ``a``."""

    @overload
    def __call__(self, *args: _Q.args, **kwargs: _Q.kwargs) -> _R: ...
    @overload
    def __call__(self, a: ParamsTree, /, *args: _P1.args, **kwargs: _P1.kwargs) -> _R: ...
    @overload
    def __call__(self, a: _H, /, *args: _P1.args, **kwargs: _P1.kwargs) -> Callable[[_A], _R]: ...


class Flexible2(_Flexible, Protocol[_Q, _A, _P1, _B, _P2, _R]):
    """``@flexible`` on ``f(a, b, *rest)``: holes in ``a`` and ``b`` are typed."""

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


class Flexible3(_Flexible, Protocol[_Q, _A, _P1, _B, _P2, _C, _P3, _R]):
    """``@flexible`` on ``f(a, b, c, *rest)``: holes in ``a``, ``b`` and ``c`` are typed.

    ``block(_, _, 8)`` is a ``Callable[[A, B], R]``; ``block(p, x, "8")`` is an error about
    the call (no overload matches), never a holed call.
    """

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
