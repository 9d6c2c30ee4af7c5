"""The package's imports, read with ast: layers with arrows only downward.

core <- functools <- typing <- flexible <- stack <- nets <- tags/sharding/checkpoint/summary/tree.
No import cycle (function-level imports included), no net imports the engine's internals, and
no layer above the engine touches its private state: the running calls' context, replay, or
the inside of a ``TraceState`` (they use the narrow calls ``core/_trace.py`` and
``core/_api.py`` offer).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zephyr"

# Each layer may import its own layer and those listed before it (public re-export modules
# are the top layer, as users import them).
LAYERS = [
    ["zephyr._jax", "zephyr._checks", "zephyr._source"],
    ["zephyr.core"],
    ["zephyr.functools._partial", "zephyr.functools._protocols", "zephyr.functools._composition"],
    ["zephyr.typing._dims", "zephyr.typing._calls", "zephyr.typing._signature", "zephyr.typing._checking", "zephyr.typing.stubgen"],
    ["zephyr._flexible", "zephyr._api"],
    ["zephyr._stack"],
    ["zephyr._nets"],
    ["zephyr._tags", "zephyr._tree", "zephyr._sharding", "zephyr._checkpoint", "zephyr._summary"],
]
ENGINE_INTERNALS = {"zephyr.core._trace", "zephyr.core._cache"}  # nets see `validate`, the types and the initializers
# No module outside the engine imports these, or reads these attributes of a trace's state.
ENGINE_PRIVATE = {"zephyr.core._context", "zephyr.core._replay"}
TRACE_STATE_INTERNALS = {
    "TraceState", "state", "entered", "journal", "replays", "stand_ins", "prefixes", "record", "declare",
    "add_below", "is_empty_at", "path_of", "stand_in",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every zephyr module ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _private_uses(name: str, source: str) -> list[str]:
    """What module ``name`` (outside the engine) uses of the engine's private state."""
    package = name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = {f"{module}.{alias.name}" for alias in node.names} | {module}
            found += sorted(f"imports {m}" for m in names & ENGINE_PRIVATE)
            if module.startswith("zephyr.core"):
                found += sorted(f"imports {a.name}" for a in node.names if a.name in TRACE_STATE_INTERNALS)
        elif isinstance(node, ast.Import):
            found += sorted(f"imports {a.name}" for a in node.names if a.name in ENGINE_PRIVATE)
        elif isinstance(node, ast.Attribute) and node.attr in TRACE_STATE_INTERNALS:
            found.append(f"reads .{node.attr} (line {node.lineno})")
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return i
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = {m: {t for t in ts if not t.endswith(".__init__")} for m, ts in _graph().items()}
    packages = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    graph = {m: ts - packages for m, ts in graph.items()}  # a package's __init__ only re-exports
    assert _cycles(graph) == []


def test_imports_point_only_down_the_layers() -> None:
    upward = []
    for module, targets in _graph().items():
        here = _layer(module)
        if here is None:
            continue  # a public re-export module or package: the top
        for target in targets:
            there = _layer(target)
            if there is None or there > here:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_net_imports_the_engine_internals() -> None:
    reaching = sorted(
        f"{m} -> {t}" for m, ts in _graph().items() if m.startswith("zephyr._nets") for t in ts if t in ENGINE_INTERNALS
    )
    assert reaching == []


def test_no_layer_above_the_engine_touches_its_private_state() -> None:
    touching = {
        name: uses
        for name, path in _modules().items()
        if not name.startswith("zephyr.core")
        for uses in [_private_uses(name, path.read_text())]
        if uses
    }
    assert touching == {}


def test_the_checks_catch_a_use_of_the_engines_private_state() -> None:
    assert _private_uses("zephyr.typing._signature", "from ..core._context import CHECKING") == ["imports zephyr.core._context"]
    assert _private_uses("zephyr._flexible", "from .core._replay import call_during_trace") == ["imports zephyr.core._replay"]
    assert _private_uses("zephyr._flexible", "from .core._trace import TraceState") == ["imports TraceState"]
    assert _private_uses("zephyr._flexible", "node.state.entered = None") == ["reads .entered (line 1)", "reads .state (line 1)"]
    assert _private_uses("zephyr._flexible", "from .core._api import call_during_trace\nnode.path") == []


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("zephyr.core._trace") == 1 and _layer("zephyr._nets._linear") == 6
    assert _layer("zephyr.nets") is None
