"""Placeholders: ``from zephyr.functools.partial import placeholder_hole as _, flexible``."""

from .._flexible import flexible as flexible
from .._flexible import flexible as hole_aware  # the original zephyr's name: the same function
from ._partial import PlaceholderType as PlaceholderType
from ._partial import placeholder_hole as placeholder_hole
from ._partial import Holed as Holed
from ._partial import is_flexible as is_flexible

__all__ = ["Holed", "PlaceholderType", "flexible", "hole_aware", "is_flexible", "placeholder_hole"]
