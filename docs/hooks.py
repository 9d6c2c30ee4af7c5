"""MkDocs hooks: the reference is complete, the inventories are local, the site shows its
version, search puts the exact name first, and the site works without a known address.

**The reference is complete**: the build fails when a public name of zephyr is missing from
docs/api/.

A name is documented when a ``::: zephyr.some.path`` directive in ``docs/api/*.md`` renders
the same object (``zephyr.flexible`` is ``zephyr.functools.partial.flexible``: one entry
serves both), or, for a name re-exported from JAX (``zephyr.nets.relu``), when its public
path appears in the text of ``docs/api/``. ``tests/test_docs.py`` tests the check.

**Inventories**: mkdocs.yml names the objects.inv files of docs/inventories/ by their path in
the repository; mkdocstrings opens URLs, so ``on_config`` makes them ``file://`` URLs.

**Version**: the footer reads "zephyr <version>", the version of the installed package's
metadata (``importlib.metadata``), not a copy in mkdocs.yml.

**Search** (``on_post_build`` edits ``search/search_index.json``): mkdocs.yml's separator
splits names at ``_``, so ``transformer_block`` is the terms ``transformer block`` (each
also a prefix: ``transformer_block_step`` matches too); the fields of the params
``TypedDict``s (``attention_norm``) rank below the functions, and of two API entries that
match alike the one with the shorter name comes first; the source shown under an
entry is left out of the index (a name is found by its entry, not by code that calls it),
and so is its signature; of its docstring the index keeps the description and the
parameters' names (a hit shows what the entry is, not 30 lines of parameters);
the long sections of the
Changelog and Benchmarks are cut to a short excerpt (a hit there is a pointer, not a wall of
text).

**No address yet** (mkdocs.yml's ``site_url`` empty): the sitemap would list no page, so it is
left out, and 404.html's root-absolute links (``/assets/...``) are made relative, which works
opened from disk and at the top of any host.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import types
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def event_priority(priority: float) -> Callable[[F], F]:
    """MkDocs' ``event_priority`` (tests/test_docs.py may load this file without MkDocs)."""
    try:
        from mkdocs.plugins import event_priority as mkdocs_priority
    except ImportError:
        return lambda function: function
    return mkdocs_priority(priority)

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


INVENTORIES = Path(__file__).resolve().parent / "inventories"
ROOT = Path(__file__).resolve().parents[1]
# Pages whose sections are long and not where a name is explained: their hits are excerpts.
EXCERPT_PAGES = ("changelog.html", "benchmarks.html")
EXCERPT_WORDS = 40
FIELD_BOOST = 0.2  # a TypedDict's field (`attention_norm`) below any function or type
# An API entry's boost is 1 + NAME_BOOST / (words in its name): among entries that match a
# query equally (`transformer_block` and `transformer_block_step` for "transformer_block"),
# the shorter name, the exact one, comes first; and an entry before a short guide section
# that holds the name's words (the BERT section of guide/blocks.md, `nets.block` and
# `nets.transformer`, outranked `transformer_block` at 0.2 and 1.0; the browser check tests it).
NAME_BOOST = 3.0
WORD = re.compile(r"_|(?<=[a-z0-9])(?=[A-Z])")
ROOT_LINK = re.compile(r'(href|src)="/(?!/)')
# An API entry's source (show_source: true), as the search index holds it: found by name
# only, never by the words of its code.
# An API entry's signature, first in its text: shown on the page; in a search hit, a wall.
SIGNATURE = re.compile(r"^\s*<pre><code>[\w.]+\(.*?</code></pre>\s*", re.DOTALL)
SOURCE = re.compile(r"\s*Source code in <code>[^<]*</code>\s*<pre><code>.*?</code></pre>", re.DOTALL)


def version() -> str:
    """The version of the installed zephyr, from its package metadata."""
    return importlib.metadata.version("zephyr")


def local_inventories(handlers: dict[str, Any]) -> None:
    """Make the inventory paths of mkdocs.yml (relative to the repository) ``file://`` URLs."""
    for handler in handlers.values():
        for inventory in handler.get("inventories", []):
            url = inventory["url"] if isinstance(inventory, dict) else inventory
            if "://" in url:
                continue
            path = (ROOT / url).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"mkdocs.yml: the inventory {url} does not exist (docs/inventories/refresh.py)")
            if isinstance(inventory, dict):
                inventory["url"] = path.as_uri()
            else:
                handler["inventories"][handler["inventories"].index(inventory)] = path.as_uri()


def excerpt(text: str, words: int = EXCERPT_WORDS) -> str:
    """The first ``words`` words of an entry's text (HTML tags dropped), with an ellipsis when cut."""
    plain = re.sub(r"<[^>]+>", " ", text).split()
    return " ".join(plain[:words]) + (" …" if len(plain) > words else "")


PARAMETERS = re.compile(r"<p>Parameters:</p>\s*<ul>(.*?)</ul>", re.DOTALL)
PARAMETER_NAME = re.compile(r"<li>\s*<code>(\w+)</code>")


def api_summary(text: str) -> str:
    """An API entry's text for search: its description, then its parameters' names only.

    What follows the parameter list (returns, raises, the example) is left out: a hit shows
    what the entry is, and a parameter's name still finds it."""
    match = PARAMETERS.search(text)
    if match is None:
        return text
    names = ", ".join(f"<code>{name}</code>" for name in PARAMETER_NAME.findall(match.group(1)))
    return f"{text[: match.start()].rstrip()} <p>Parameters: {names}</p>"


def is_field(entry: dict[str, Any]) -> bool:
    """An entry of a ``TypedDict``'s field: ``#zephyr.nets.TransformerBlockParams.attention_norm``."""
    anchor = entry["location"].partition("#")[2]
    parts = anchor.split(".")
    return anchor.startswith("zephyr.") and len(parts) >= 2 and parts[-2][:1].isupper() and parts[-2].endswith("Params")


def tune_search(index: dict[str, Any]) -> dict[str, Any]:
    """The search index with excerpts for the long pages and the fields ranked low (see the module doc)."""
    for entry in index["docs"]:
        entry["text"] = SOURCE.sub("", entry["text"])
        if "#zephyr." in entry["location"]:
            entry["text"] = api_summary(SIGNATURE.sub("", entry["text"]))
        page = entry["location"].partition("#")[0]
        if page in EXCERPT_PAGES:
            entry["text"] = excerpt(entry["text"])
            entry["boost"] = 0.5
        elif is_field(entry):
            entry["boost"] = FIELD_BOOST
        elif "#zephyr." in entry["location"]:
            name = entry["location"].rpartition(".")[2]
            entry["boost"] = round(1 + NAME_BOOST / len(WORD.split(name)), 4)
    return index


def relative_404(html: str) -> str:
    """404.html with its root-absolute links (``/assets/...``) made relative (``assets/...``)."""
    return ROOT_LINK.sub(r'\1="', html)


@event_priority(100)  # before mkdocstrings reads the inventories' URLs
def on_config(config: Any) -> Any:
    config["copyright"] = f"zephyr {version()}"
    config["extra"]["version"] = version()
    if config["repo_url"] and not config["edit_uri"]:  # ZEPHYR_REPO_URL set: each page's edit link
        config["edit_uri"] = "edit/main/docs/"
    plugin = config["plugins"].get("mkdocstrings")
    if plugin is not None:
        local_inventories(plugin.config["handlers"])
    return config


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    index_path = site / "search" / "search_index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index_path.write_text(json.dumps(tune_search(index), ensure_ascii=False), encoding="utf-8")
    if not config["site_url"]:
        for name in ("sitemap.xml", "sitemap.xml.gz"):
            (site / name).unlink(missing_ok=True)
        page = site / "404.html"
        if page.is_file():
            page.write_text(relative_404(page.read_text(encoding="utf-8")), encoding="utf-8")
