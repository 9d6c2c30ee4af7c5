"""The checker matrix: mypy (strict), pyright (strict), basedpyright, ty and pyrefly
(``--preset default``), each pinned in the ``dev`` extra, over ``tests/typing/`` as user code.

- Every correct snippet (``check_*.py``) is clean, except the lines in ``KNOWN_FALSE_ERRORS``:
  one entry per checker limitation, each with its reason (the support table in
  docs/guide/placeholders.md says the same).
- Every line of ``wrong_user_nets.py`` marked ``# error`` is reported by every checker, except
  where the marker says ``missed by: <checker>``; no other line is reported.

``check_errors.py`` is left out here: it is written with mypy's and pyright's ignore comments,
and ``test_typing_snippets.py`` checks it with those two. No filter for JAX or optax is
needed: the snippets use only typed parts of JAX (``check_readme.py`` turns off pyright's
report of JAX's partly unknown ``jnp.reshape`` and ``jax.jit`` for itself, in a comment).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CORRECT = sorted(p for p in HERE.glob("check_*.py") if p.name != "check_errors.py")
WRONG = HERE / "wrong_user_nets.py"
BIN = Path(sys.executable).parent

Errors = dict[tuple[str, int], list[str]]

# (checker, file, line) -> why a correct line is reported. Each is a limitation of that checker
# (or of zephyr's typing in it), not a mistake in the snippet.
KNOWN_FALSE_ERRORS: dict[tuple[str, str, int], str] = {
    # ty cannot match an overloaded callable (the generated stubs of zephyr's nets) against
    # `Callable[Concatenate[P, Ps], object]`, so `trace` of a library net itself matches no
    # overload; a holed net (its protocol is not overloaded) and a user's @flexible net are fine.
    **{("ty", "check_trace.py", line): "ty: overloaded callable vs Concatenate" for line in (22, 23, 29)},
    # pyrefly solves `P` of `Callable[Concatenate[P, Ps], object]` from every overload of the
    # argument, so the hole overloads add `PlaceholderType` to `trace`'s result for zephyr's
    # nets passed whole (a holed net is fine).
    **{("pyrefly", "check_trace.py", line): "pyrefly: P solved from every overload" for line in (22, 23, 30, 31, 32)},
    # pyrefly solves a @flexible net's params type from every overload of its protocol too: for a
    # net annotated with a TypedDict, the protocol's ParamsTree overload joins the TypedDict
    # (a net annotated ParamsTree is fine: every overload says ParamsTree).
    **{("pyrefly", "check_user_nets.py", line): "pyrefly: P solved from every overload" for line in (77, 81)},
}


def run(*args: str | Path, stderr: bool = True) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return result.stdout + (result.stderr if stderr else "")


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def by_line(pattern: str, output: str) -> Errors:
    errors: Errors = {}
    for match in re.finditer(pattern, output, re.MULTILINE):
        errors.setdefault((Path(match["file"]).name, int(match["line"])), []).append(match.group(0))
    return errors


def mypy(files: list[Path], cache: Path) -> Errors:
    """mypy's scratch directory is its cache: the tests pass the one their process shares."""
    output = run(sys.executable, "-m", "mypy", "--config-file", ROOT / "mypy.ini", "--cache-dir", cache, *files)
    return by_line(r"^(?P<file>[^:\n]+\.py):(?P<line>\d+): error: .*$", output)


def pyright_like(executable: str, files: list[Path], tmp: Path) -> Errors:
    config = tmp / "pyrightconfig.json"
    config.write_text(
        json.dumps(
            {
                "typeCheckingMode": "strict",
                "pythonVersion": "3.11",
                "venvPath": str(Path(sys.prefix).parent),
                "venv": Path(sys.prefix).name,
                "extraPaths": [str(ROOT)],
                "enableTypeIgnoreComments": False,
                "reportUnnecessaryTypeIgnoreComment": "error",
            }
        )
    )
    report = json.loads(run(executable, "--outputjson", "-p", config, *files, stderr=False))
    errors: Errors = {}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            key = (Path(diagnostic["file"]).name, diagnostic["range"]["start"]["line"] + 1)
            errors.setdefault(key, []).append(diagnostic["message"])
    return errors


def pyright(files: list[Path], tmp: Path) -> Errors:
    return pyright_like(tool("pyright"), files, tmp)


def basedpyright(files: list[Path], tmp: Path) -> Errors:
    return pyright_like(tool("basedpyright"), files, tmp)


def ty(files: list[Path], tmp: Path) -> Errors:
    output = run(tool("ty"), "check", "--python", sys.prefix, "--output-format", "concise", *files)
    return by_line(r"^(?P<file>[^:\n]+\.py):(?P<line>\d+):\d+: error\[.*$", output)


def pyrefly(files: list[Path], tmp: Path) -> Errors:
    output = run(
        tool("pyrefly"), "check", "--python-interpreter-path", sys.executable, "--preset", "default",
        "--output-format", "min-text", *files,
    )
    return by_line(r"^ERROR (?P<file>[^:\n]+\.py):(?P<line>\d+):.*$", output)


CHECKERS: dict[str, Callable[[list[Path], Path], Errors]] = {
    "mypy": mypy,
    "pyright": pyright,
    "basedpyright": basedpyright,
    "ty": ty,
    "pyrefly": pyrefly,
}


def expected_errors(checker: str) -> set[int]:
    """The marked lines of wrong_user_nets.py this checker must report."""
    lines: set[int] = set()
    for number, line in enumerate(WRONG.read_text().splitlines(), start=1):
        marker = re.search(r"  # error\b(.*)$", line)
        if marker is None:
            continue
        missed = re.search(r"missed by: ([\w, ]+)", marker.group(1))
        if missed is None or checker not in {m.strip() for m in missed.group(1).split(",")}:
            lines.add(number)
    return lines


@pytest.fixture
def scratch(checker: str, tmp_path: Path, mypy_cache_dir: Path) -> Path:
    """The checker's working directory: for mypy, the cache its process's mypy runs share."""
    return mypy_cache_dir if checker == "mypy" else tmp_path


@pytest.mark.parametrize("checker", list(CHECKERS))
def test_correct_snippets_are_clean(checker: str, scratch: Path) -> None:
    errors = CHECKERS[checker](CORRECT, scratch)
    known = {(file, line) for (name, file, line) in KNOWN_FALSE_ERRORS if name == checker}
    unexpected = {key: messages for key, messages in errors.items() if key not in known}
    assert not unexpected, json.dumps({f"{f}:{l}": m for (f, l), m in sorted(unexpected.items())}, indent=1)
    fixed = known - set(errors)
    assert not fixed, f"{checker} no longer reports these: remove them from KNOWN_FALSE_ERRORS and the docs: {sorted(fixed)}"


@pytest.mark.parametrize("checker", list(CHECKERS))
def test_every_mistake_is_reported(checker: str, scratch: Path) -> None:
    errors = CHECKERS[checker]([WRONG], scratch)
    reported = {line for (file, line) in errors if file == WRONG.name}
    expected = expected_errors(checker)
    assert reported == expected, f"missed: {sorted(expected - reported)}, unexpected: {sorted(reported - expected)}\n{errors}"
