"""Every ```python block of README.md and of the documentation (docs/) runs, as a reader would run them.

The blocks of one page run in order, in one namespace of their own (a reader may land on any
page, so each page states its own imports). A block preceded by ``<!-- no-run -->`` is
deliberately partial and is skipped. The blocks run with JAX's default promotion rules (a
reader's), not the strict ones of the root conftest.py.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- no-run -->\s*)?```python\n(.*?)```", re.DOTALL)
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
# What a page's blocks must print (their results, beyond running without an error).
PRINTS = {
    "README.md": ["{'hidden': {'bias': (32,), 'weights': (8, 32)}, 'out': {'bias': (10,), 'weights': (32, 10)}}"],
    "docs/index.md": ["{'hidden': {'bias': (32,), 'weights': (8, 32)}, 'out': {'bias': (10,), 'weights': (32, 10)}}"],
    "docs/get-started.md": [
        "{'hidden': {'bias': (32,), 'weights': (8, 32)}, 'out': {'bias': (10,), 'weights': (32, 10)}}\n(4, 10)"
    ],
    "docs/guide/padding.md": [
        "outputs at padded steps are zero: True",
        "same as unpadded: True",
        "(3, 5, 32)",
        "real rows unchanged: True",
    ],
    "docs/guide/pooling.md": ["(1, 16) (4, 16)", "padding ignored: True", "(4, 3)"],
    "docs/guide/shapes.md": ["{'bias': (5,), 'weights': (3, 5)}"],
    "docs/guide/sharding.md": ["P(None, 'model')", "ShapeDtypeStruct(shape=(65536, 65536), dtype=float32)"],
    "docs/guide/checkpoints.md": ["does not match the model", "(8, 3) in the checkpoint, (8, 5) in the model"],
    "docs/guide/checking.md": ["`dense_typed`: `params['weights']`: expected shape (7, 5)"],
    "docs/guide/state.md": ["{'bn': {'mean': (16,), 'var': (16,)}}"],
    "docs/guide/tags.md": ["mlp/1/weights 1", "('norm',)"],
}


def blocks(page: Path) -> list[tuple[int, str]]:
    """``(line number, code)`` of every block of ``page`` to run."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start(2)) + 1, match.group(2))
        for match in BLOCK.finditer(text)
        if match.group(1) is None
    ]


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_the_readme_starts_with_the_two_commands_and_links_to_the_guide() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.lstrip().startswith("# zephyr")
    commands = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert commands is not None
    assert [line.split("#")[0].strip() for line in commands.group(1).splitlines()] == ["make demo", "make test"]
    assert len(blocks(README)) >= 1
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), f"README.md links to {link}, which does not exist"


def test_the_docs_have_runnable_blocks() -> None:
    runnable = sum(len(blocks(page)) for page in PAGES)
    partial = sum(page.read_text(encoding="utf-8").count("<!-- no-run -->") for page in PAGES)
    assert runnable >= 25
    assert partial <= 3, "keep the partial blocks few"
    assert set(PRINTS) <= {name(page) for page in PAGES}


@pytest.mark.parametrize("page", [page for page in PAGES if blocks(page)], ids=name)
def test_every_python_block_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("doc_blocks")  # a real module: annotations resolve in it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        for line, code in blocks(page):
            try:
                exec(compile(code, f"{name(page)}:{line}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"the block at {name(page)}:{line} failed: {type(error).__name__}: {error}") from error
    out = capsys.readouterr().out
    for expected in PRINTS.get(name(page), []):
        assert expected in out, f"{name(page)} should print {expected!r}; it printed:\n{out}"
