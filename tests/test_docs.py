"""The documentation's checks: every public name is in the API reference (docs/hooks.py),
and the doctests of the docstrings become Markdown code (docs/griffe_doctests.py).

``make docs`` (part of ``make test``) runs the hook in the strict build; these tests show
that the check can fail, and how.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest

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
    # `zephyr.flexible` and `hole_aware` are the same function: one entry serves every path
    without_flexible = text.replace("::: zephyr.functools.partial.flexible\n", "")
    assert hooks.undocumented(without_flexible) == []
    missing = hooks.undocumented(without_flexible.replace("::: zephyr.functools.partial.hole_aware\n", ""))
    assert missing == ["zephyr.flexible", "zephyr.functools.partial.flexible", "zephyr.functools.partial.hole_aware"]


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


def entry(location: str, title: str = "", text: str = "") -> dict[str, object]:
    return {"location": location, "title": title, "text": text}


def test_search_ranks_the_shorter_name_first_and_fields_last() -> None:
    hooks = load("hooks")
    index = hooks.tune_search(
        {
            "docs": [
                entry("api/nets.html#zephyr.nets.transformer_block"),
                entry("api/nets.html#zephyr.nets.transformer_block_step"),
                entry("api/nets.html#zephyr.nets.TransformerBlockParams"),
                entry("api/nets.html#zephyr.nets.TransformerBlockParams.attention_norm"),
                entry("guide/nets.html#attention"),
            ]
        }
    )
    exact, step, typed_dict, field, guide = (e.get("boost") for e in index["docs"])
    assert exact > step == typed_dict > 1 > field
    assert guide is None  # pages keep Material's ranking


def test_search_leaves_out_signatures_and_source_and_cuts_long_pages() -> None:
    hooks = load("hooks")
    text = (
        "<pre><code>linear(\n    params,\n    x,\n)</code></pre> <p>A linear map.</p> Source code in "
        "<code>zephyr/_nets/_linear.py</code> <pre><code>def linear(params, x):\n    return x</code></pre>"
    )
    (api,) = hooks.tune_search({"docs": [entry("api/nets.html#zephyr.nets.linear", text=text)]})["docs"]
    assert api["text"] == "<p>A linear map.</p>"
    documented = (
        "<p>A linear map.</p> <p>Parameters:</p> <ul> <li> <code>params</code> (<code>LinearParams</code>) – "
        "<p>the <code>weights</code>.</p> </li> <li> <code>out_dim</code> (<code>int</code>) – <p>width.</p> </li> </ul>"
        " <p>Returns:</p> <ul> <li> (<code>Array</code>) – <p>y</p> </li> </ul> <pre><code>&gt;&gt;&gt; linear(...)</code></pre>"
    )
    (api,) = hooks.tune_search({"docs": [entry("api/nets.html#zephyr.nets.linear", text=documented)]})["docs"]
    assert api["text"] == "<p>A linear map.</p> <p>Parameters: <code>params</code>, <code>out_dim</code></p>"
    words = " ".join(f"w{i}" for i in range(100))
    (changelog, page, guide) = hooks.tune_search(
        {
            "docs": [
                entry("changelog.html#added", text=f"<p>{words}</p>"),
                entry("benchmarks.html", text=words),
                entry("guide/nets.html", text=words),
            ]
        }
    )["docs"]
    assert changelog["text"] == page["text"] == " ".join(f"w{i}" for i in range(hooks.EXCERPT_WORDS)) + " …"
    assert changelog["boost"] < 1
    assert guide["text"] == words


def test_404_links_become_relative() -> None:
    hooks = load("hooks")
    html = '<link href="/assets/main.css"><a href="/index.html">x</a><a href="//cdn.example/x.js"></a><a href="https://a/b">'
    assert hooks.relative_404(html) == (
        '<link href="assets/main.css"><a href="index.html">x</a><a href="//cdn.example/x.js"></a><a href="https://a/b">'
    )


def test_inventories_are_local_files_and_the_footer_has_the_version() -> None:
    hooks = load("hooks")
    handlers = {"python": {"inventories": [{"url": "docs/inventories/jax.inv", "base_url": "https://docs.jax.dev/en/latest/"}]}}
    hooks.local_inventories(handlers)
    url = handlers["python"]["inventories"][0]["url"]
    assert url.startswith("file://") and url.endswith("/docs/inventories/jax.inv")
    missing = {"python": {"inventories": [{"url": "docs/inventories/nope.inv"}]}}
    try:
        hooks.local_inventories(missing)
    except FileNotFoundError as error:
        assert "refresh.py" in str(error)
    else:
        raise AssertionError("a missing inventory must fail the build")
    import importlib.metadata

    assert hooks.version() == importlib.metadata.version("zephyr")


def read_inventory(path: Path) -> list[str]:
    import zlib

    data = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2\n")
    return zlib.decompress(data[header_end:]).decode().splitlines()


def test_the_committed_inventories_hold_the_names_the_docs_link() -> None:
    inventories = DOCS / "inventories"
    names = {line.split()[0]: line.split()[3] for name in ("python", "numpy", "jax", "optax", "jaxtyping") for line in read_inventory(inventories / f"{name}.inv")}
    for name in ("jax.Array", "jax.jit", "numpy.ndarray", "optax.multi_transform", "optax.masked", "jaxtyping.Float", "collections.abc.Callable"):
        assert name in names, name
    assert names["jax.Array"] == "_autosummary/jax.Array.html#$"
    assert names["jaxtyping.Float"] == "api/array/"


def test_the_repository_link_comes_from_zephyr_repo_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from mkdocs.config import load_config

    root = DOCS.parent
    monkeypatch.delenv("ZEPHYR_REPO_URL", raising=False)
    config = load_config(str(root / "mkdocs.yml"))
    assert not config["repo_url"]  # no address: no header link, no edit links
    assert not load("hooks").on_config(config)["edit_uri"]
    monkeypatch.setenv("ZEPHYR_REPO_URL", "https://github.com/example/zephyr")
    config = load_config(str(root / "mkdocs.yml"))
    assert config["repo_url"] == "https://github.com/example/zephyr"
    assert load("hooks").on_config(config)["edit_uri"] == "edit/main/docs/"
