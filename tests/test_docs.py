"""The documentation's checks: every public name is in the API reference (docs/hooks.py),
and the doctests of the docstrings become Markdown code (docs/griffe_doctests.py).

``make docs`` (part of ``make test``) runs the hook in the strict build; these tests show
that the check can fail, and how.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_is_in_the_api_reference() -> None:
    hooks = load("hooks")
    assert hooks.undocumented(hooks.api_text()) == []


def test_a_name_missing_from_the_reference_is_named() -> None:
    hooks = load("hooks")
    text = hooks.api_text()
    assert "::: zephyr.nets.linear\n" in text
    assert hooks.undocumented(text.replace("::: zephyr.nets.linear\n", "")) == ["zephyr.nets.linear"]
    # a re-export from JAX is documented by its public path in the text
    assert hooks.undocumented(text.replace("`zephyr.nets.gelu`", "`gelu`")) == ["zephyr.nets.gelu"]


def test_an_object_documented_under_another_public_path_counts() -> None:
    hooks = load("hooks")
    text = hooks.api_text()
    assert "::: zephyr.functools.partial.flexible\n" in text
    # `zephyr.flexible` is the same function: its one entry serves both paths
    missing = hooks.undocumented(text.replace("::: zephyr.functools.partial.flexible\n", ""))
    assert missing == ["zephyr.flexible", "zephyr.functools.partial.flexible"]


def test_doctests_are_fenced_and_rest_roles_become_code() -> None:
    fences = load("griffe_doctests")
    docstring = (
        "Summary, see :func:`trace`.\n"
        "\n"
        "Updates as::\n"
        "\n"
        "    mean' = momentum * mean\n"
        "\n"
        "Example:\n"
        "    >>> x = [1, 2]\n"
        "    >>> x[0]\n"
        "    1\n"
        "\n"
        "After."
    )
    # after a paragraph line at its own indentation, a blank line opens the fence
    assert fences.to_markdown("Text.\n>>> 1\n1") == "Text.\n\n```pycon\n>>> 1\n1\n```"
    assert fences.to_markdown(docstring) == (
        "Summary, see `trace`.\n"
        "\n"
        "Updates as:\n"
        "\n"
        "    mean' = momentum * mean\n"
        "\n"
        "Example:\n"
        "    ```pycon\n"
        "    >>> x = [1, 2]\n"
        "    >>> x[0]\n"
        "    1\n"
        "    ```\n"
        "\n"
        "After."
    )
