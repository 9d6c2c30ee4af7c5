"""Run-time switches, read on every call of a net: kept tiny and import-free."""

from __future__ import annotations

import contextvars
import os


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "zephyr_typecheck", default=_env_flag("ZEPHYR_TYPECHECK")
)
"""Whether annotated nets check their arguments at run time (``zephyr.typing.checking``)."""
