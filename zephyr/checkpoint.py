"""Save and restore params (and state) with orbax-checkpoint (see ``zephyr._checkpoint``)."""

from ._checkpoint import restore as restore
from ._checkpoint import restore_with_state as restore_with_state
from ._checkpoint import save as save

__all__ = ["restore", "restore_with_state", "save"]
