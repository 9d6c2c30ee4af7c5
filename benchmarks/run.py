"""zephyr against raw JAX, side by side in one run: ``python benchmarks/run.py [--quick]``.

Builds the same MLP, small CNN, GPT-style transformer and LLaMA-style model in zephyr
(``_models.py``) and in raw JAX (``_raw.py``: hand-written init with ``jax.random`` calls and a pure apply, the
floor), measures them with warm-up and medians (zephyr and raw runs interleaved, so load
on a shared machine hits both alike), prints one table of zephyr/raw ratios next to the
targets of issue 6 and writes every figure to ``benchmarks/results.json``.

Figures that need a fresh process (cold first call, peak memory) run in subprocesses of
this script (``--child``). ``--quick`` runs every section on tiny shapes (a smoke test).

The parts, one job each: ``_pairs`` (sizes and the models on both sides), ``_timing``
(timers, medians, the noise floor), ``_memory`` (RSS and its peak), the sections
``_tracing`` ("init", "abstract"), ``_first_trace`` ("first": the first trace of a user's
own deep model, issue 16), ``_jit``, ``_eager`` and ``_subprocess`` ("fresh", the
children), and ``_report`` (progress lines and the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import jax  # noqa: E402

from zephyr.typing import checking  # noqa: E402

from _compile import section_compile  # noqa: E402
from _eager import section_eager  # noqa: E402
from _first_trace import section_first_trace  # noqa: E402
from _jit import section_jit  # noqa: E402
from _memory_shapes import section_memory_shapes  # noqa: E402
from _pairs import FULL, JSON, QUICK, Config  # noqa: E402
from _report import elapsed, log, print_table, table  # noqa: E402
from _subprocess import child, section_children  # noqa: E402
from _tracing import section_abstract, section_init  # noqa: E402

__all__ = ["SECTIONS", "child", "main"]

SECTIONS: dict[str, Callable[[Config, JSON], None]] = {
    "init": section_init,
    "first": section_first_trace,
    "abstract": section_abstract,
    "jit": section_jit,
    "compile": section_compile,
    "eager": section_eager,
    "fresh": section_children,
    "memory_shapes": section_memory_shapes,
}
"""The sections of a run, in the order they run (``--only`` names them)."""


def main(argv: list[str] | None = None) -> int:
    """Run the sections, print the table, write the figures; as a child, print one child's figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repetition: a smoke run")
    parser.add_argument("--json", type=Path, default=HERE / "results.json", help="where to write the figures")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--no-children", action="store_true", help="skip the fresh-process figures")
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"), checking(False):
        if args.child:
            print(json.dumps(child("fresh", args.child[0], args.child[1], args.quick)))
            return 0
        cfg = QUICK if args.quick else FULL
        results: JSON = {
            "meta": {
                "config": asdict(cfg), "jax": jax.__version__, "python": platform.python_version(),
                "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                "devices": len(jax.devices()),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  # jax types devices() partially
            }
        }
        for name, section in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            if name == "fresh" and args.no_children:
                continue
            section(cfg, results)
        results["meta"]["seconds"] = elapsed()
        results["meta"]["load_average_end"] = os.getloadavg()
        rows = table(cfg, results)
        results["table"] = [asdict(row) for row in rows]
        results["table_markdown"] = print_table(rows)
        args.json.write_text(json.dumps(results, indent=1, default=str))
        log(f"done in {results['meta']['seconds']:.0f} s; figures in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
