"""For the whole pytest run (tests and doctests): strict JAX, run-time checking on, 8 CPU devices,
a fresh checking memo for each test.

Set here, at the root, so that the settings do not depend on which files a worker collects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("ZEPHYR_TYPECHECK", "1")
# Eight CPU devices for the sharding tests; set before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(autouse=True)
def _fresh_checking_memo() -> Iterator[None]:
    """Each test starts with no call signature remembered as checked.

    The run-time check runs once per signature (zephyr.typing._checking's memo); without this,
    a test counting checks, or expecting one to fail, would depend on which tests of the same
    worker ran before it and with which arguments.
    """
    from zephyr.typing import _checking

    with _checking._PASSED_LOCK:
        _checking._PASSED.clear()
    yield


# The oldest run (make test-py-oldest, Python 3.11 with the lowest versions allowed) leaves
# these out with -m "not once"; the newest run has them. They are the slow tests that check
# zephyr as a whole rather than what differs between JAX releases: the type checkers (over
# tests/typing, as `make typecheck` runs once), the wheel and install tests, the examples, the
# docs' code blocks and shown outputs, the benchmarks' quick runs, and the checkpoint tests
# that start several processes or kill them. Every net, the engine, checkpoints and the bad
# inputs run in both. Together they take about half the suite's time: both runs in full would
# put .ci/run well over its 30 minutes on 2 cores.
ONCE = (
    "tests/typing/test_checkers.py",
    "tests/typing/test_typing_snippets.py",
    "tests/test_wheel.py",
    "tests/test_install.py",
    "tests/test_readme.py",
    "tests/test_docs.py",  # needs the docs extra, which only the newest env installs
    "tests/test_multiprocess.py",
    "tests/test_checkpoint_kill.py",
    "tests/test_checkpoint_writers.py",
)
ONCE_DIRS = ("tests/examples/", "tests/benchmarks/")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "once: run in one environment of make test-py only (the newest)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        if path in ONCE or path.startswith(ONCE_DIRS):
            item.add_marker(pytest.mark.once)
