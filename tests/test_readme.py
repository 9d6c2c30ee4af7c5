"""Every ```python block of README.md runs, in order, in one namespace, as a reader would run them.

A block preceded by ``<!-- no-run -->`` is deliberately partial and is skipped. The blocks run
with JAX's default promotion rules (a reader's), not the strict ones of tests/conftest.py.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import jax
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- no-run -->\s*)?```python\n(.*?)```", re.DOTALL)


def blocks() -> list[tuple[int, str]]:
    """``(line number, code)`` of every block to run."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start(2)) + 1, match.group(2))
        for match in BLOCK.finditer(text)
        if match.group(1) is None
    ]


def test_the_readme_has_runnable_blocks() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(blocks()) >= 20
    assert text.count("<!-- no-run -->") <= 3, "keep the partial blocks few"
    assert text.lstrip().startswith("# zephyr")
    commands = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert commands is not None
    assert [line.split("#")[0].strip() for line in commands.group(1).splitlines()] == ["make demo", "make test"]


def test_every_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("readme_blocks")  # a real module: annotations resolve in it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        for line, code in blocks():
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"the README block at line {line} failed: {type(error).__name__}: {error}") from error
    out = capsys.readouterr().out
    assert "P(None, 'model')" in out
    assert "does not match the model" in out
