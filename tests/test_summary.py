"""zephyr.summary: the table of paths, shapes, dtypes, tags and counts (rich or plain text)."""

from __future__ import annotations

import io
import sys

import jax
import jax.numpy as jnp
import pytest
from jax import Array

from zephyr import abstract_trace, nets, summary, tags, trace
from zephyr.functools.partial import placeholder_hole as _

NET = nets.mlp(_, _, [8, 3])
X = jnp.ones((2, 4))


def test_rows_counts_and_tags(key: Array) -> None:
    params = trace(NET, key, X)
    text = summary(params, tags.tags(tags.tag(params, {"bias$": "no_decay"})), show=False)
    lines = text.splitlines()
    assert lines[0].split() == ["path", "shape", "dtype", "tags", "params"]
    assert lines[2].split() == ["[0]", "40"]
    assert lines[3].split() == ["['bias']", "(8,)", "float32", "no_decay", "8"]
    assert lines[-1].split() == ["total", "67", "(268", "B)"]


def test_abstract_and_info_trees_need_no_values() -> None:
    big = nets.mlp(_, _, [50_000, 50_000])
    text = summary(abstract_trace(big, X), show=False, max_depth=1)
    assert text.splitlines()[3].split() == ["[1]", "2,500,050,000"]
    assert text.splitlines()[-1].split() == ["total", "2,500,300,000", "(9.3", "GiB)"]
    assert summary(tags.leaf_info(NET, X), show=False) == summary(abstract_trace(NET, X), show=False)


def test_prints_with_rich_or_plain_text(key: Array, monkeypatch: pytest.MonkeyPatch) -> None:
    params = trace(NET, key, X)
    out = io.StringIO()
    text = summary(params, file=out)
    assert "['weights']" in out.getvalue() and "┃" in out.getvalue()  # rich box
    monkeypatch.setitem(sys.modules, "rich.console", None)  # as if rich were not installed
    plain = io.StringIO()
    assert summary(params, file=plain) == text
    assert plain.getvalue() == text + "\n"
    assert str(jax.tree.structure(params)) == str(jax.tree.structure(trace(NET, key, X)))


@pytest.mark.parametrize(
    ("size", "total"),
    [(255, "(1020 B)"), (256, "(1.0 KiB)"), (2**18 - 1, "(1024.0 KiB)"), (2**18, "(1.0 MiB)"), (3 * 2**28, "(3.0 GiB)"), (2**40, "(4096.0 GiB)")],
)
def test_the_total_size_is_in_the_largest_unit_below_it(size: int, total: str) -> None:
    abstract = {"w": jax.ShapeDtypeStruct((size,), jnp.float32)}  # 4 bytes a parameter, nothing allocated
    assert summary(abstract, show=False).splitlines()[-1].split()[-2:] == total.split()
