"""Save and restore params, state and optimizer state in numbered steps (see ``zephyr._checkpoint``)."""

from ._checkpoint import CheckpointLockTimeout as CheckpointLockTimeout
from ._checkpoint import Resumed as Resumed
from ._checkpoint import RetentionWarning as RetentionWarning
from ._checkpoint import restore as restore
from ._checkpoint import restore_with_state as restore_with_state
from ._checkpoint import resume as resume
from ._checkpoint import save as save
from ._checkpoint import steps as steps

__all__ = ["CheckpointLockTimeout", "Resumed", "RetentionWarning", "restore", "restore_with_state", "resume", "save", "steps"]
