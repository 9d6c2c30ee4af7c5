"""The output that docs/examples.md shows is what the examples print: generated, not pasted.

Each shown output is a ```text block preceded by ``<!-- output: examples/NAME.py ARGS -->``;
the test runs that command (a quick mode: a few seconds of training) in a fresh directory and
compares what it prints with the block:

- timings (``12.3 s``, ``(28 s)``, ``0:00:27``) and progress bars are left out;
- the words must be equal, integers equal, and decimals within 15% of each other (or both
  below 1e-4): the suite runs on jax 0.10 and 0.12, whose last digits differ;
- the text sampled by a model (the lines after a ``--- sample ... ---`` line, up to the next
  ``step``/``---`` line or the end) is not compared: one changed digit changes the sample;
- the loss-curve image the page shows (``docs/assets/digits_loss.png``) is the one the same
  run draws, up to a small difference of pixels.

Regenerate the blocks and the image after changing an example::

    .venv/bin/python tests/examples/test_outputs.py --update

Slow-ish: two quick trainings (about 30 s on an idle machine).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "examples.md"
BLOCK = re.compile(r"<!-- output: (?P<command>[^>]*?) -->\n+```text\n(?P<text>.*?)```", re.DOTALL)
# The image a shown run draws: (the command's script, the file it writes, the page's copy).
IMAGES = {"examples/digits_cnn.py": ("out/digits_cnn/loss.png", ROOT / "docs" / "assets" / "digits_loss.png")}
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
TIMING = re.compile(r"\(?\b\d+(?:\.\d+)? ?s\b\)?|\b\d+:\d\d:\d\d\b")
SAMPLE_START = re.compile(r"^--- sample")
SAMPLE_END = re.compile(r"^(step\b|---)")
RELATIVE = 0.15
TINY = 1e-4


def shown() -> list[tuple[str, str]]:
    """``(command, text)`` of each output block of the page."""
    return [(m.group("command"), m.group("text")) for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8"))]


def run(command: str, cwd: Path) -> str:
    """Run ``examples/NAME.py ARGS`` with this interpreter in ``cwd``; what it prints."""
    script, *args = shlex.split(command)
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    output = result.stdout
    for directory in {str(cwd.resolve()), str(cwd)}:  # paths the example resolved: relative to where it ran
        output = output.replace(directory + os.sep, "")
    return clean(output)


def clean(output: str) -> str:
    """The output without progress bars and trailing spaces, ending in one newline."""
    lines = [line.rstrip() for line in output.splitlines() if "━" not in line]
    return "\n".join(lines).strip("\n") + "\n"


def comparable(text: str) -> list[str]:
    """The lines to compare: timings blanked, sampled text dropped."""
    kept, in_sample = [], False
    for line in text.splitlines():
        if SAMPLE_START.match(line):
            kept.append(line)
            in_sample = True
            continue
        if in_sample and not SAMPLE_END.match(line):
            continue
        in_sample = False
        kept.append(TIMING.sub("<time>", line))
    return kept


def number(token: str) -> float:
    return float(token.replace(",", ""))


def differences(expected: str, actual: str) -> list[str]:
    """How ``actual`` differs from ``expected`` beyond the tolerances (empty: they agree)."""
    want, got = comparable(expected), comparable(actual)
    if len(want) != len(got):
        return [f"{len(got)} lines printed, {len(want)} shown"]
    found = []
    for a, b in zip(want, got):
        if NUMBER.sub("#", a) != NUMBER.sub("#", b):
            found.append(f"shown {a!r}, printed {b!r}")
            continue
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
            if not any(c in x for c in ".e"):
                close = x.replace(",", "") == y.replace(",", "")
            else:
                u, v = number(x), number(y)
                close = abs(u - v) <= RELATIVE * max(abs(u), abs(v)) or max(abs(u), abs(v)) < TINY
            if not close:
                found.append(f"shown {a!r}, printed {b!r}: {x} vs {y}")
    return found


def image_difference(a: Path, b: Path) -> float:
    """The mean absolute difference of two images' pixels, in [0, 1] (1 when their sizes differ)."""
    import matplotlib.image

    x, y = matplotlib.image.imread(a), matplotlib.image.imread(b)
    if x.shape != y.shape:
        return 1.0
    return float(abs(x[..., :3] - y[..., :3]).mean())


def test_the_comparison_allows_jitter_and_catches_changes() -> None:
    shown_text = "params: 53,002\nloss 0.9832 (28 s)\nacc 83.29%\n--- sample after training ---\ndef x\n  y\nstep 2\n"
    assert differences(shown_text, shown_text.replace("0.9832", "0.9911").replace("28 s", "3 s")) == []
    assert differences(shown_text, shown_text.replace("def x\n  y", "class z")) == []
    assert differences(shown_text, shown_text.replace("53,002", "53,003"))
    assert differences(shown_text, shown_text.replace("0.9832", "1.4"))
    assert differences(shown_text, shown_text.replace("acc", "accuracy"))
    assert differences(shown_text, shown_text + "one more line\n")
    assert differences("d 3.34e-06\n", "d 9.8e-07\n") == []


def test_the_page_shows_generated_output() -> None:
    commands = [command for command, _ in shown()]
    assert any(c.startswith("examples/digits_cnn.py") for c in commands)
    assert any(c.startswith("examples/char_transformer.py") for c in commands)


@pytest.mark.parametrize(("command", "text"), shown(), ids=[command.split()[0] for command, _ in shown()])
def test_shown_output_is_what_the_example_prints(command: str, text: str, tmp_path: Path) -> None:
    pytest.importorskip("optax", reason="the examples extra")
    printed = run(command, tmp_path)
    found = differences(text, printed)
    assert not found, (
        f"docs/examples.md shows an output of `{command}` that it no longer prints "
        f"(regenerate: python tests/examples/test_outputs.py --update):\n" + "\n".join(found) + f"\n--- printed:\n{printed}"
    )
    script = command.split()[0]
    if script in IMAGES:
        drawn, committed = IMAGES[script]
        difference = image_difference(tmp_path / drawn, committed)
        assert difference < 0.02, f"{committed.relative_to(ROOT)} is not the image `{command}` draws (mean difference {difference:.3f}): --update"


def update() -> None:
    """Rerun every shown command; write its output into the page and its image into docs/assets/."""
    import tempfile

    text = PAGE.read_text(encoding="utf-8")
    for command, old in shown():
        with tempfile.TemporaryDirectory() as directory:
            printed = run(command, Path(directory))
            text = text.replace(f"<!-- output: {command} -->\n\n```text\n{old}```", f"<!-- output: {command} -->\n\n```text\n{printed}```")
            script = command.split()[0]
            if script in IMAGES:
                drawn, committed = IMAGES[script]
                shutil.copyfile(Path(directory) / drawn, committed)
                print(f"{committed.relative_to(ROOT)}: from {command}")
        print(f"docs/examples.md: the output of {command}")
    PAGE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--update", action="store_true", help="regenerate the shown outputs and images")
    if parser.parse_args().update:
        update()
