"""The built wheel and sdist ship the generated stubs next to their modules, and ``py.typed``.

Users' checkers read ``zephyr/nets.pyi`` from the installed package, with no configuration;
without it ``nets.linear(_, _, 256)`` would not be typed for them. Needs the build backend
(hatchling, in the ``dev`` extra): skipped without it.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_stubs_next_to_modules(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="no build backend (pip install hatchling)")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("zephyr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "zephyr/py.typed" in names
    stubs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "zephyr").rglob("*.pyi")}
    assert {"zephyr/__init__.pyi", "zephyr/nets.pyi"} <= stubs
    shipped = {n for n in names if n.endswith(".pyi")}
    assert shipped == stubs
    for stub in shipped:
        assert stub[: -len(".pyi")] + ".py" in names, f"{stub} has no module next to it"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("zephyr/nets.pyi").decode() == (ROOT / "stubs" / "zephyr" / "nets.pyi").read_text()


def test_sdist_ships_stubs_next_to_modules(tmp_path: Path) -> None:
    """The sdist (and so a wheel built from it) carries the committed stubs; an editable
    install finds them in the source tree itself."""
    pytest.importorskip("build", reason="no build frontend (pip install build)")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = tmp_path.glob("zephyr-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"zephyr/__init__.pyi", "zephyr/nets.pyi", "zephyr/py.typed"} <= names
    with tarfile.open(sdist) as archive:  # each stub next to its module leads to the generated one
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    for stub in ("__init__.pyi", "nets.pyi"):
        assert (unpacked / "zephyr" / stub).read_text() == (ROOT / "stubs" / "zephyr" / stub).read_text()
