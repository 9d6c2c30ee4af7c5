"""``summary``: a table of a params tree's paths, shapes, dtypes, tags and parameter counts."""

from __future__ import annotations

import sys
from typing import IO

from ._tags import leaves_with_paths
from ._tree import flatten_with_paths
from .core._types import Leaf, Path, format_path

_HEADER = ("path", "shape", "dtype", "tags", "params")


def _tags_by_path(tags: object) -> dict[Path, tuple[str, ...]]:
    if tags is None:
        return {}

    def is_tags_leaf(node: object) -> bool:
        if isinstance(node, tuple):
            items: tuple[object, ...] = node  # pyright: ignore[reportUnknownVariableType]  # any tuple
            return all(isinstance(t, str) for t in items)
        return isinstance(node, Leaf)

    found: dict[Path, tuple[str, ...]] = {}
    for path, node in flatten_with_paths(tags, is_tags_leaf)[0]:
        found[path] = node.tags if isinstance(node, Leaf) else tuple(node)
    return found


def _rows(tree: object, tags: object, max_depth: int | None) -> list[tuple[tuple[str, ...], bool]]:
    leaves = leaves_with_paths(tree)
    extra = _tags_by_path(tags)
    totals: dict[Path, int] = {}
    for leaf in leaves:
        for i in range(len(leaf.path)):
            totals[leaf.path[:i]] = totals.get(leaf.path[:i], 0) + leaf.size
    rows: list[tuple[tuple[str, ...], bool]] = []
    for leaf in leaves:
        for i in range(1, len(leaf.path)):
            prefix = leaf.path[:i]
            if prefix in totals and (max_depth is None or i <= max_depth):  # a subtree's row, once
                rows.append(((_label(prefix), "", "", "", f"{totals.pop(prefix):,}"), True))
        if max_depth is not None and len(leaf.path) > max_depth:
            continue
        leaf_tags = ", ".join(dict.fromkeys(leaf.tags + extra.get(leaf.path, ())))
        cells = (_label(leaf.path), str(leaf.shape), leaf.dtype.name, leaf_tags, f"{leaf.size:,}")
        rows.append((cells, False))
    total = totals.get((), 0)
    nbytes = sum(leaf.size * leaf.dtype.itemsize for leaf in leaves)
    rows.append((("total", "", "", "", f"{total:,} ({_human(nbytes)})"), True))
    return rows


def _label(path: Path) -> str:
    return "  " * (len(path) - 1) + format_path(path[-1:], "")


def _human(nbytes: int) -> str:
    power = min(max(nbytes.bit_length() - 1, 0) // 10, 3)  # the largest 1024**power <= nbytes, at most GiB
    if not power:
        return f"{nbytes} B"
    return f"{nbytes / 1024**power:.1f} {('KiB', 'MiB', 'GiB')[power - 1]}"


def _plain(rows: list[tuple[tuple[str, ...], bool]]) -> str:
    table = [_HEADER] + [cells for cells, _bold in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.ljust(w) if i < len(cells) - 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(cells) for cells in table[1:]]
    return "\n".join([line(_HEADER), rule, *body[:-1], rule, body[-1]])


def summary(
    params: object,
    tags: object = None,
    *,
    max_depth: int | None = None,
    show: bool = True,
    file: IO[str] | None = None,
) -> str:
    """Print (and return) a table of the params: paths, shapes, dtypes, tags, parameter counts.

    One row per leaf and one per subtree (with the subtree's parameter count), and a total
    with the size in bytes. The table is drawn with ``rich`` when it is installed
    (``pip install rich``), else as plain text; the returned string is always plain text.

    Args:
        params: params, abstract params (``zephyr.abstract_trace``), or
            ``zephyr.tags.leaf_info(net, x)`` (then tags are shown and nothing is allocated).
        tags: extra tags to show: a ``leaf_info`` tree or a ``zephyr.tags.tags`` tree.
        max_depth: show leaves and subtrees down to this many keys only (deeper ones are
            counted in their parent's row).
        show: print the table (``False``: only return it).
        file: where to print (default ``sys.stdout``).

    Returns:
        The table as plain text.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from zephyr import nets, summary, tags
        >>> info = tags.tag(tags.leaf_info(nets.mlp, jnp.ones((2, 4)), [8, 3]), {"bias$": "no_decay"})
        >>> print(summary(info, show=False))
        path           shape   dtype    tags          params
        -------------  ------  -------  --------  ----------
        [0]                                               40
          ['bias']     (8,)    float32  no_decay           8
          ['weights']  (4, 8)  float32                    32
        [1]                                               27
          ['bias']     (3,)    float32  no_decay           3
          ['weights']  (8, 3)  float32                    24
        -------------  ------  -------  --------  ----------
        total                                     67 (268 B)
    """
    rows = _rows(params, tags, max_depth)
    text = _plain(rows)
    if show:
        out = file if file is not None else sys.stdout
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            print(text, file=out)
        else:
            table = Table(*_HEADER, title=f"params: {rows[-1][0][-1]}")
            table.columns[-1].justify = "right"
            for index, (cells, bold) in enumerate(rows):
                table.add_row(*cells, style="bold" if bold else None, end_section=index == len(rows) - 2)
            Console(file=out).print(table)
    return text

