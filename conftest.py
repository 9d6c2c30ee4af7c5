"""For the whole pytest run (tests and doctests): strict JAX, run-time checking on, 8 CPU devices,
XLA:CPU compiling fast, a fresh checking memo for each test.

Set here, at the root, so that the settings do not depend on which files a worker collects.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

os.environ.setdefault("ZEPHYR_TYPECHECK", "1")
# XLA flags for the run, set before JAX starts (and inherited by the examples' subprocesses);
# a flag the caller's XLA_FLAGS already sets is kept. Eight CPU devices for the sharding tests.
# The suite compiles thousands of tiny programs (every eager operation is one), and most of
# its CPU time was LLVM optimizing them: without its expensive passes and at backend level 0,
# the attention tests took 127 s of CPU instead of 230 s, the examples and recurrent tests
# 248 s instead of 392 s, with the same results (tolerances unchanged).
_XLA_FLAGS = {
    "xla_force_host_platform_device_count": "8",
    "xla_backend_optimization_level": "0",
    "xla_llvm_disable_expensive_passes": "true",
}
_given = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_given] + [f"--{flag}={value}" for flag, value in _XLA_FLAGS.items() if flag not in _given]
).strip()

# A compilation cache for the run, in a fresh directory that the workers (and the examples'
# subprocesses) inherit through the environment and the process that made it removes at exit.
# The suite compiles the same programs many times over: the registry sweep each net with
# checking on and then off (the same program: checking adds no operation), the two workers
# the same eager operations. Per run, so a cache hit is never a program of another JAX or
# another version of zephyr; a caller's JAX_COMPILATION_CACHE_DIR is kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="zephyr-tests-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # every program: most are small
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])  # if JAX came first
jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_persistent_cache_min_entry_size_bytes", int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


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
