"""Placeholders: ``from zephyr.functools.partial import placeholder_hole as _, flexible``."""

from ._partial import Holed as Holed
from ._partial import PlaceholderType as PlaceholderType
from ._partial import flexible as flexible
from ._partial import hole_aware as hole_aware
from ._partial import is_flexible as is_flexible
from ._partial import placeholder_hole as placeholder_hole

__all__ = ["Holed", "PlaceholderType", "flexible", "hole_aware", "is_flexible", "placeholder_hole"]
