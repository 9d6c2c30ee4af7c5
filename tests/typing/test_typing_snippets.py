"""Run mypy and pyright on the typing snippets (``check_*.py``) and on a user's own stubs.

The snippets are user code, checked through zephyr's stubs (next to its modules) and never run. Positive snippets
must pass both checkers with no error; ``check_errors.py`` must pass with its targeted
ignores, and a copy without them must fail exactly on the marked lines, with the codes and
rules the ignores name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SNIPPETS = sorted(HERE.glob("check_*.py"))
PYRIGHT = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which("pyright")
IGNORES = re.compile(r"  # type: ignore\[([^\]]+)\]  # pyright: ignore\[([^\]]+)\]\s*$")

pytestmark = pytest.mark.skipif(PYRIGHT is None, reason="pyright is not installed")


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def mypy(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "mypy", *args, cwd=cwd)


def pyright(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PYRIGHT is not None
    return run(PYRIGHT, *args, cwd=cwd)


def pyright_config(directory: Path, stubs: Path | None = None) -> Path:
    config = directory / "pyrightconfig.json"
    config.write_text(
        json.dumps(
            {
                "include": ["."],
                **({"stubPath": str(stubs)} if stubs is not None else {}),
                "typeCheckingMode": "strict",
                "pythonVersion": "3.11",
                "venvPath": str(ROOT),
                "venv": Path(sys.prefix).name,
                "enableTypeIgnoreComments": False,
                "reportUnnecessaryTypeIgnoreComment": "error",
            }
        )
    )
    return config


def pyright_errors(output: str) -> dict[int, set[str]]:
    errors: dict[int, set[str]] = {}
    for diagnostic in json.loads(output)["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1
            errors.setdefault(line, set()).add(diagnostic.get("rule", "?"))
    return errors


def mypy_errors(output: str) -> dict[int, set[str]]:
    errors: dict[int, set[str]] = {}
    for match in re.finditer(r"^[^:\n]+:(\d+): error: .*\[([a-z-]+)\]$", output, re.MULTILINE):
        errors.setdefault(int(match.group(1)), set()).add(match.group(2))
    return errors


def test_snippets_exist() -> None:
    names = {p.name for p in SNIPPETS}
    assert {"check_nets.py", "check_composition.py", "check_trace.py", "check_readme.py", "check_errors.py"} <= names


def test_every_net_has_a_snippet() -> None:
    from zephyr import nets
    from zephyr.typing.stubgen import flexible_names

    text = (HERE / "check_nets.py").read_text()
    missing = [name for name in flexible_names(nets) if f"nets.{name}(" not in text]
    assert not missing, f"add a holed call of each to tests/typing/check_nets.py: {missing}"


def test_mypy_accepts_the_snippets(mypy_cache_dir: Path) -> None:
    result = mypy("--cache-dir", mypy_cache_dir, *(p.relative_to(ROOT) for p in SNIPPETS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyright_accepts_the_snippets() -> None:
    result = pyright("-p", HERE / "pyrightconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_negative_snippet_is_an_error_in_both_checkers(tmp_path: Path, mypy_cache_dir: Path) -> None:
    expected_mypy: dict[int, set[str]] = {}
    expected_pyright: dict[int, set[str]] = {}
    stripped: list[str] = []
    for number, line in enumerate((HERE / "check_errors.py").read_text().splitlines(), start=1):
        match = IGNORES.search(line)
        if match:
            expected_mypy[number] = {c.strip() for c in match.group(1).split(",")}
            expected_pyright[number] = {r.strip() for r in match.group(2).split(",")}
            line = line[: match.start()]
        stripped.append(line)
    assert len(expected_mypy) >= 10
    copy = tmp_path / "check_errors_stripped.py"
    copy.write_text("\n".join(stripped) + "\n")

    result = mypy("--config-file", ROOT / "mypy.ini", "--cache-dir", mypy_cache_dir, copy)
    assert mypy_errors(result.stdout) == expected_mypy, result.stdout

    pyright_config(tmp_path)
    result = pyright("--outputjson", "-p", tmp_path / "pyrightconfig.json")
    assert pyright_errors(result.stdout) == expected_pyright, result.stdout


USER_MODULE = '''
"""A user's own flexible functions."""

from jax import Array
from zephyr import nets
from zephyr.functools.partial import flexible
from zephyr.typing import Params


@flexible
def encoder(params: Params, x: Array, width: int) -> Array:
    return nets.linear(params["linear"], x, width)


@flexible
def decoder(params: Params, z: Array) -> Array:
    return nets.linear(params["out"], z, 8)


def plain(x: Array) -> Array:
    return x
'''

USER_CODE = '''
from typing import assert_type

from jax import Array
from zephyr import trace
from zephyr.functools.composition import chain
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params

from mypkg.models import decoder, encoder, plain


def model(params: Params, x: Array) -> Array:
    return chain([encoder(params["encoder"], _, 16), decoder(params["decoder"], _), plain])(x)


def use(key: Array, x: Array) -> None:
    assert_type(trace(model, key, x), Params)
    assert_type(encoder(_, _, 16)(trace(encoder(_, _, 16), key, x), x), Array)
    encoder(_, _, 16)(x)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
'''


def test_user_module_stubs(tmp_path: Path, mypy_cache_dir: Path) -> None:
    """``python -m zephyr.typing.stubgen mypkg --out stubs`` types the holes of a user's nets."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""mypkg."""\n')
    (package / "models.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_CODE))
    generate = [sys.executable, "-m", "zephyr.typing.stubgen", "mypkg", "--out", "stubs"]
    result = run(*generate, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "stubs").rglob("*.pyi")} == {
        "stubs/mypkg/__init__.pyi",
        "stubs/mypkg/models.pyi",
    }
    assert run(*generate, "--check", cwd=tmp_path).returncode == 0

    # The repository's options and the user's stubs: mypy reuses what the other mypy runs of
    # this process cached (JAX, numpy, zephyr's stubs) and checks the user's package.
    options = (ROOT / "mypy.ini").read_text().replace("[mypy]\n", "[mypy]\nmypy_path = stubs\n", 1)
    assert "mypy_path = stubs" in options, "mypy.ini has no [mypy] section to add the user's stubs to"
    (tmp_path / "mypy.ini").write_text(options)
    result = mypy("--cache-dir", mypy_cache_dir, "user.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    pyright_config(tmp_path, tmp_path / "stubs")
    # pyright reads one stub directory: zephyr's own stubs come from the installed package.
    config = json.loads((tmp_path / "pyrightconfig.json").read_text())
    config["include"] = ["user.py"]
    config["extraPaths"] = [str(tmp_path)]
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    result = pyright("-p", tmp_path / "pyrightconfig.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    (package / "models.py").write_text(textwrap.dedent(USER_MODULE).replace("width: int", "width: int, depth: int"))
    stale = run(*generate, "--check", cwd=tmp_path)
    assert stale.returncode == 1 and "depth: int" in stale.stdout, stale.stdout
