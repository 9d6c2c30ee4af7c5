"""MkDocs hook: the build fails when a public name of zephyr is missing from docs/api/.

A name is documented when a ``::: zephyr.some.path`` directive in ``docs/api/*.md`` renders
the same object (``zephyr.flexible`` is ``zephyr.functools.partial.flexible``: one entry
serves both), or, for a name re-exported from JAX (``zephyr.nets.relu``), when its public
path appears in the text of ``docs/api/``. ``tests/test_docs.py`` tests the check.
"""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path
from typing import Any

# The public modules, as tests/test_public_api.py lists them.
PUBLIC_MODULES = (
    "zephyr",
    "zephyr.nets",
    "zephyr.functools.partial",
    "zephyr.functools.composition",
    "zephyr.typing",
    "zephyr.tags",
    "zephyr.sharding",
    "zephyr.tree",
    "zephyr.checkpoint",
)
DIRECTIVE = re.compile(r"^::: +([\w.]+)", re.MULTILINE)
API_DIR = Path(__file__).resolve().parent / "api"


def public_names(module: types.ModuleType) -> list[str]:
    """The public names of ``module`` (its ``__all__``, else every name without ``_``), modules left out."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return sorted(name for name in names if not isinstance(getattr(module, name), types.ModuleType))


def resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(f"`{path}` does not import")


def undocumented(api_text: str) -> list[str]:
    """The public paths that ``api_text`` (the pages of docs/api/, joined) does not document."""
    rendered = {id(resolve(path)) for path in DIRECTIVE.findall(api_text)}
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            path = f"{module_name}.{name}"
            if str(getattr(value, "__module__", "")).startswith("jax"):
                if path not in api_text:
                    missing.append(path)
            elif id(value) not in rendered:
                missing.append(path)
    return missing


def api_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in sorted(API_DIR.glob("*.md")))


def on_pre_build(config: Any) -> None:
    """Fail the build, naming them, when public names are missing from the reference."""
    from mkdocs.exceptions import PluginError

    missing = undocumented(api_text())
    if missing:
        raise PluginError(
            "these public names are missing from the API reference (add a `::: path` "
            f"directive for each to a page of docs/api/): {', '.join(missing)}"
        )
