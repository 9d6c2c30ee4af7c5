"""One mypy cache for the mypy runs of this directory's tests, per pytest process.

A cold mypy run reads JAX's and numpy's stubs first (about 22 s here); a warm one over the
same snippets takes about 1 s. The tests run in one process one after another, so they can
share a cache; the worker of another process gets its own (mypy's cache is not written by
two processes at once). mypy validates each cached module against the options of the run,
so a test with another configuration reads what still holds and checks the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mypy_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``--cache-dir`` for mypy shared by this process's tests."""
    return tmp_path_factory.mktemp("mypy_cache")
