"""The install commands of docs/get-started.md work in a fresh virtual environment.

Each case makes a new venv (no access to this environment's packages), installs zephyr the
way the page says (the wheel ``make dist`` builds, a source tree, a ``git+file://`` URL),
and runs the page's first model with the venv's own interpreter. No network: zephyr is
installed with ``--no-deps --no-index --no-build-isolation``, and its dependencies (jax,
jaxtyping, ...) come from this environment's site-packages through ``PYTHONPATH`` (which,
unlike the venv's site-packages, does not read this environment's ``.pth`` files: the editable
zephyr of ``.venv`` stays out of sight). The test checks that ``zephyr`` imports from the new
venv, not from this source tree. About 20 s on an idle machine: a wheel build and three pip installs; needs hatchling (the
``dev`` extra) and git.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "get-started.md"
FIRST_MODEL = re.search(r"## A first model\n\n```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
EXPECTED = re.search(r"\nprints\n\n```text\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
# Run by the new interpreter: where zephyr came from, then the page's first model.
CHECK = "import zephyr, sys; print('zephyr from', zephyr.__file__, file=sys.stderr)\n"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def fresh_venv(path: Path) -> Path:
    """A new venv, and its python. Without a pip of its own (ensurepip takes seconds): this
    environment's pip installs into it (``pip --python``), as the venv's own pip would."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    return path / "bin" / "python"


def install_and_run(tmp_path: Path, requirement: str) -> None:
    python = fresh_venv(tmp_path / "venv")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    env.pop("PYTHONHOME", None)
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    run([*pip, "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", requirement], env=env)
    assert FIRST_MODEL is not None and EXPECTED is not None
    result = run([str(python), "-c", CHECK + FIRST_MODEL.group(1)], env=env, cwd=tmp_path)
    installed_in = Path(result.stderr.split("zephyr from ", 1)[1].split()[0]).resolve()
    assert installed_in.is_relative_to((tmp_path / "venv").resolve()), f"zephyr imported from {installed_in}"
    assert not installed_in.is_relative_to(ROOT)
    assert result.stdout == EXPECTED.group(1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as `make dist` builds it (with the build backend of this environment)."""
    pytest.importorskip("hatchling", reason="no build backend (pip install hatchling)")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)])
    (built,) = out.glob("zephyr-*-py3-none-any.whl")
    return built


def test_the_page_shows_what_the_test_runs() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert FIRST_MODEL is not None and EXPECTED is not None
    assert "pip install path/to/zephyr-0.1.0-py3-none-any.whl" in text
    assert "pip install path/to/zephyr\n" in text
    assert '"zephyr @ git+https://' in text


def test_install_the_wheel(tmp_path: Path, wheel: Path) -> None:
    install_and_run(tmp_path, str(wheel))


def test_install_a_source_tree(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="no build backend (pip install hatchling)")
    install_and_run(tmp_path, str(ROOT))


def test_install_a_git_url(tmp_path: Path) -> None:
    """`zephyr @ git+<url>` (a file:// URL of this repository, as a git host would serve it): HEAD's commit."""
    pytest.importorskip("hatchling", reason="no build backend (pip install hatchling)")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    install_and_run(tmp_path, f"zephyr @ git+file://{ROOT}")
