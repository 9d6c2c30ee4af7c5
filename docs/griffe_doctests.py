"""Griffe extension: zephyr's docstrings (Google style, reST inline markup) rendered as Markdown.

The docstrings are written for ``help()`` and doctest: ``>>>`` examples (which Markdown would
read as nested block quotes), ``::`` literal blocks and ``:func:`name``` roles. Before
mkdocstrings renders a docstring this extension, without touching the source:

- fences each doctest (a ``>>>`` line and what follows up to a blank line) as ``pycon``;
- turns a paragraph's closing ``::`` into ``:`` (the indented block after it is code in
  Markdown as in reST);
- turns ``:func:`name``` (and ``:class:``, ``:mod:``, ...) into ``name`` as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
PROMPT = re.compile(r"^(\s*)>>> ")


def fence_doctests(text: str) -> str:
    """``text`` with every doctest fenced as ``pycon`` at its own indentation."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        prompt = PROMPT.match(lines[i])
        if prompt is None:
            out.append(lines[i])
            i += 1
            continue
        indent = prompt.group(1)
        previous = out[-1] if out else ""
        if previous.strip() and previous.startswith(indent) and not previous[len(indent)].isspace():
            # a fence may not interrupt a paragraph at its own indentation (a section
            # heading such as "Example:" above, less indented, keeps its content next to it)
            out.append("")
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


def to_markdown(text: str) -> str:
    text = ROLE.sub(lambda match: f"`{match.group(1)}`", text)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)
    return fence_doctests(text)


class DoctestFences(griffe.Extension):
    """Rewrites each docstring as it is loaded (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
