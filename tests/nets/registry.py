"""Every net with a sample call: one registry, swept by tests/nets/test_registry.py.

Each family adds its cases in its own ``tests/nets/cases_<family>.py`` as ``CASES``.
A case's ``apply(params, x)`` (or ``apply(params, state, x)`` when ``stateful``) must be the
whole call: holes are filled, hyperparameters bound. ``make_x(key)`` gives a small input.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax

import tests.nets as package


@dataclass(frozen=True)
class NetCase:
    """One net, bound to its hyperparameters, with a sample input."""

    name: str
    apply: Callable[..., Any]
    make_x: Callable[[jax.Array], Any]
    stateful: bool = False

    def __str__(self) -> str:
        return self.name


def all_cases() -> list[NetCase]:
    """Every ``CASES`` list of every ``tests/nets/cases_*.py``, in module order."""
    cases: list[NetCase] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"tests.nets.{info.name}")
            cases.extend(module.CASES)
    return cases
