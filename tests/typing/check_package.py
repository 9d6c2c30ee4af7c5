"""The package resolves through the stubs: submodules, re-exports, the hole (checked, never run)."""

from typing import assert_type

import zephyr
from zephyr import functools, nets, typing
from zephyr.typing import PlaceholderType


def package() -> None:
    assert_type(zephyr.placeholder_hole, PlaceholderType)
    assert_type(functools.partial.placeholder_hole, PlaceholderType)
    assert_type(zephyr.__version__, str)
    assert_type(nets.LinearParams.__name__, str)
    params_alias: str = typing.Params.__name__  # a type alias (ty reads its name as a Literal)
    del params_alias
