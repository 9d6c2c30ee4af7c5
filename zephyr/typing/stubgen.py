"""Write ``.pyi`` stubs in which every public ``@flexible`` function has typed holes.

``linear(_, _, 256)`` is, at run time, a function of ``(params, x)``. A checker cannot know
that from ``flexible``'s own type, so this generator writes a stub for each module that
exposes public flexible functions, with one ``@overload`` per set of holes::

    python -m zephyr.typing.stubgen                  # zephyr's own stubs, into stubs/
    python -m zephyr.typing.stubgen --check          # exit 1 with a diff if they are stale
    python -m zephyr.typing.stubgen mypkg.models --out stubs   # your own flexible functions

For your own code: generate into a directory of your project, point your checker at it
(mypy: ``mypy_path = stubs``; pyright: ``stubPath = "stubs"``), and run ``--check`` in CI so
the stubs follow the signatures. mypy ignores the stubs of a package named on its command
line: check the code that *uses* ``mypkg`` (``mypy tests/``), not ``mypy mypkg``. A
package name (``mypkg``) stands for its public submodules that expose flexible functions.
Each stubbed module also gets stubs for its parent packages: without
``stubs/mypkg/__init__.pyi`` mypy silently reads the ``.py`` files instead. zephyr's own
stubs are in the project's ``stubs/``, and each ``zephyr/<module>.pyi`` is a link to its stub:
the wheel and the sdist carry them next to the modules, and an editable install (which reads
the source tree) finds them there too.

The rules:

- A stub is complete for its module: imports (made absolute, which pyright needs to fall
  back to the ``.py`` modules that have no stub), re-exports (``from x import y as y``),
  ``__all__``, classes and functions as signatures, constants by type.
- A public flexible function, defined in the module or re-exported from a module without a
  stub (as ``zephyr.nets`` re-exports ``zephyr._nets``), becomes an overloaded function with
  at most ``MAX_OVERLOADS`` (4) overloads: the hole forms users write, not every set of holes.
  Its *leading* parameters are its positional parameters without a default (options after
  ``*`` never are); its *inputs* are the leading ones before the first hyperparameter: the
  ``params``/``state`` parameters and those typed as arrays (``jax.Array``, a jaxtyping
  annotation, a key), a ``TypedDict`` or a ``NamedTuple`` (a cache, a carry).
- The first overload is the real signature (first, so that a ``ParamSpec``, as in
  ``trace(nets.linear, key, x, 3)``, sees it); a function written with ``@overload`` decorators
  keeps each of them. Then one overload per hole form, in this order, each typing its holes
  as ``PlaceholderType``, making every parameter up to the last hole positional-only, and
  returning a generated ``Protocol`` of exactly the missing parameters, with their names and
  types (``_Linear_params_x``):

  1. the inputs as holes, hyperparameters given: ``linear(_, _, 256)``, ``dropout(_, _, _,
     0.2)``, ``batch_norm(_, _, _, True)``: a layer waiting for its params and input;
  2. the last input as the hole, the others given: ``linear(params, _, 256)``,
     ``dropout(params, key, _, 0.2)``, ``gru_cell(params, carry, _, 16)``;
  3. every leading parameter a hole: ``linear(_, _, _)``.

  A form that repeats an earlier one is left out (``layer_norm(_, _)`` is forms 1 and 3). A
  function with several ``@overload``s gets as many forms per signature as the budget of 4
  allows (``rnn``: its two signatures and form 1 of each). Any other placement of holes
  (``linear(_, x, 256)``, a hole in a hyperparameter only, a keyword hole ``linear(p, x,
  out_dim=_)``) works at run time but is "no overload matches" to a checker, and so is a
  hole in the function a holed call returns (its protocol takes values only).
- An alias made with ``functools.partial`` of a flexible function (``conv_2d``, ``conv`` with
  ``num_spatial_dims=2``) is stubbed as that function without the keywords it fixes, and
  shares its protocols.
- Parameters named ``params`` or ``state`` are shown as ``zephyr.typing.ParamsTree``, and
  their ``TypedDict`` classes as ``ParamsTree`` wherever else they appear (``batch_norm``
  returns its new state): a ``TypedDict``, which the trace engine reads from the
  implementation, is not assignable from the trees that ``trace`` returns and
  ``params["sub"]`` gives. ``ParamsTree``, not ``Params``: a net refuses ``3`` as its params,
  while a ``Params`` (``ParamsTree | Any``) value, such as optax's result, is accepted.
  Other annotations keep their jaxtyping spelling, for hover (statically
  ``Float[Array, "..."]`` is ``Array``; the dims are checked at run time).
- The output is deterministic: a signature on one line when it fits in 100 columns, else
  one parameter per line.

mypy's ``stubtest`` checks the stubs against the run-time modules (``flexible`` keeps
``__wrapped__``, so ``inspect.signature`` reads the function's); it compares names and kinds,
not parameter types.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import takewhile
from pathlib import Path
from typing import Literal, cast, is_typeddict

import jax

from ..functools._partial import is_flexible

__all__ = ["MAX_OVERLOADS", "flexible_names", "generate", "main", "stub_modules"]

MAX_OVERLOADS = 4
"""The most overloads of one function: its real signature(s), then the hole forms that fit."""
LINE_LENGTH = 100
PARAMS_NAMES = frozenset({"params", "state"})
HEADER = "# Generated by `python -m zephyr.typing.stubgen`: do not edit.\n"
_KEPT_DECORATORS = frozenset(
    {"staticmethod", "classmethod", "property", "overload", "abstractmethod", "final", "override"}
)
# What a stub with flexible functions imports, (module, name):
_FLEXIBLE_IMPORTS = (
    ("typing", "overload"), ("typing", "Protocol"), ("zephyr.typing", "ParamsTree"), ("zephyr.typing", "PlaceholderType")
)
_ALIAS_CALLS = frozenset({"TypeVar", "ParamSpec", "TypeVarTuple", "NewType", "NamedTuple", "TypedDict"})

Kind = Literal["positional_only", "positional", "var_positional", "keyword_only", "var_keyword"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of a stub signature: its name, kind, annotation text and default."""

    name: str
    kind: Kind
    annotation: str | None
    has_default: bool
    node: ast.expr | None = field(default=None, compare=False)  # the annotation as parsed

    def render(self, annotation: str | None = None) -> str:
        shown = self.annotation if annotation is None else annotation
        star = {"var_positional": "*", "var_keyword": "**"}.get(self.kind, "")
        text = f"{star}{self.name}" + (f": {shown}" if shown else "")
        if self.has_default:
            text += " = ..." if shown else "=..."
        return text


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def render_signature(
    head: str,
    parameters: Sequence[Parameter],
    returns: str | None,
    indent: str = "",
    annotations: dict[str, str] | None = None,
) -> str:
    """``def f(a: int, /, b: str = ..., *, c: bool = ...) -> R: ...`` on one or more lines."""
    annotations = annotations or {}
    parts: list[str] = []
    previous: Kind | None = None
    for parameter in parameters:
        if previous == "positional_only" and parameter.kind != "positional_only":
            parts.append("/")
        if parameter.kind == "keyword_only" and previous not in ("keyword_only", "var_positional"):
            parts.append("*")
        parts.append(parameter.render(annotations.get(parameter.name)))
        previous = parameter.kind
    if previous == "positional_only":
        parts.append("/")
    tail = f" -> {returns}: ..." if returns else ": ..."
    one_line = f"{indent}{head}({', '.join(parts)}){tail}"
    if len(one_line) <= LINE_LENGTH or not parts:
        return one_line
    inner = "".join(f"{indent}    {part},\n" for part in parts)
    return f"{indent}{head}(\n{inner}{indent}){tail}"


def parameters_of(node: ast.FunctionDef | ast.AsyncFunctionDef, source: str) -> list[Parameter]:
    """The parameters of a ``def``, with their annotations as written in ``source``."""
    arguments = node.args

    def parameter(argument: ast.arg, kind: Kind, has_default: bool) -> Parameter:
        annotation = argument.annotation
        text = None if annotation is None else annotation_text(annotation, source)
        return Parameter(argument.arg, kind, text, has_default, annotation)

    positional = [*arguments.posonlyargs, *arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    result = [
        parameter(argument, "positional_only" if i < len(arguments.posonlyargs) else "positional", i >= first_default)
        for i, argument in enumerate(positional)
    ]
    if arguments.vararg is not None:
        result.append(parameter(arguments.vararg, "var_positional", False))
    result += [parameter(a, "keyword_only", d is not None) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults)]
    if arguments.kwarg is not None:
        result.append(parameter(arguments.kwarg, "var_keyword", False))
    return result


def annotation_text(node: ast.expr, source: str) -> str:
    """The annotation as the author wrote it (quotes and all), on one line."""
    segment = ast.get_source_segment(source, node)
    if segment is None or "\n" in segment:
        return ast.unparse(node)
    return segment


def names_in(node: ast.AST) -> list[str]:
    """The root names an expression refers to (``jnp`` in ``jnp.ndarray``), in order."""
    return _unique([n.id for n in ast.walk(node) if isinstance(n, ast.Name)])


# ---------------------------------------------------------------------------------------
# Where names come from


@dataclass(frozen=True)
class Binding:
    """How a name is bound in a module: an import line to reproduce it elsewhere."""

    module: str | None  # ``from module import name``; None for ``import a.b [as c]``
    name: str

    def line(self, alias: str) -> str:
        if self.module is None:
            return f"import {self.name}" if alias == self.name.split(".")[0] else f"import {self.name} as {alias}"
        return f"from {self.module} import {self.name}" + ("" if alias == self.name else f" as {alias}")


def absolute_module(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of ``from ..x import y`` written in ``package``."""
    return importlib.util.resolve_name("." * node.level + (node.module or ""), package)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a module body, looking inside ``if [typing.]TYPE_CHECKING:``."""
    for statement in body:
        if isinstance(statement, ast.If) and ast.unparse(statement.test).rpartition(".")[2] == "TYPE_CHECKING":
            yield from _top_level(statement.body)
        else:
            yield statement


def _defined_names(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        return [t.id for t in statement.targets if isinstance(t, ast.Name)]
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id]
    name = getattr(statement, "name", None)  # ``type X = ...`` (ast.TypeAlias, Python 3.12+)
    if type(statement).__name__ == "TypeAlias" and isinstance(name, ast.Name):
        return [name.id]
    return []


# ---------------------------------------------------------------------------------------
# The overloads of one flexible function


@dataclass
class Source:
    """A module's object, source text and syntax tree."""

    module: types.ModuleType
    text: str
    tree: ast.Module

    @functools.cached_property
    def bindings(self) -> dict[str, Binding]:
        """Every top-level name of the module: where it is imported from, or itself."""
        bindings: dict[str, Binding] = {}
        for statement in _top_level(self.tree.body):
            if isinstance(statement, ast.ImportFrom):
                origin = absolute_module(statement, self.module.__package__ or "")
                for alias in statement.names:
                    bindings[alias.asname or alias.name] = Binding(origin, alias.name)
            elif isinstance(statement, ast.Import):
                for alias in statement.names:
                    bindings[alias.asname or alias.name.split(".")[0]] = Binding(None, alias.name)
            else:
                for name in _defined_names(statement):
                    bindings[name] = Binding(self.module.__name__, name)
        return bindings

    def signatures(self, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        """The ``@overload``s of a top-level function, or else its ``def``."""
        found = [
            s
            for s in _top_level(self.tree.body)
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == name
        ]
        if not found:
            raise LookupError(f"stubgen: no top-level `def {name}` in {self.module.__name__}")
        overloads = [s for s in found if any(_decorator_name(d) == "overload" for d in s.decorator_list)]
        return overloads or found[-1:]


@functools.cache
def source_of(module: types.ModuleType) -> Source:
    """The source of ``module``, parsed once per run (``zephyr._nets._attention`` has 5 nets)."""
    text = inspect.getsource(module)
    return Source(module, text, ast.parse(text))


class Imports:
    """The import lines a stub needs, each name bound once."""

    def __init__(self, taken: dict[str, Binding]) -> None:
        self.taken = taken  # what each name of the stub is bound to already
        self.lines: list[str] = []

    def need(self, alias: str, binding: Binding) -> None:
        """Import ``binding`` as ``alias``, unless the stub binds ``alias`` to it already."""
        if alias in self.taken:
            if not _same_object(self.taken[alias], binding):
                raise ValueError(
                    f"stubgen: `{alias}` would mean two things in one stub: "
                    f"{self.taken[alias].line(alias)!r} and {binding.line(alias)!r}; "
                    "import one of them under another name in the implementation"
                )
            return
        self.taken[alias] = binding
        self.lines.append(binding.line(alias))


def _same_object(a: Binding, b: Binding) -> bool:
    try:
        return a == b or _resolve(a) is _resolve(b)
    except (ImportError, AttributeError, ValueError):
        return False


def _resolve(binding: Binding) -> object:
    """The object ``binding`` imports: a module, a module's attribute, or a submodule."""
    return pkgutil.resolve_name(binding.name if binding.module is None else f"{binding.module}.{binding.name}")


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "F"


@dataclass
class Variant:
    """One signature of a flexible function (one of its ``@overload``s, or its ``def``)."""

    parameters: list[Parameter]
    returns: str | None
    annotations: dict[str, str]  # the parameters whose annotation the stub replaces
    forms: list[list[int]]  # the hole forms, each the indices of its holes
    prefix: str  # of its protocols' names
    function: str  # whose protocols they are (an alias shares its function's)

    def protocol_name(self, missing: Sequence[int]) -> str:
        return self.prefix + "_".join(self.parameters[i].name for i in missing)


@dataclass
class FlexibleStub:
    """The overloads and protocols of one flexible function, as stub text."""

    name: str
    variants: list[Variant]

    @classmethod
    def of(cls, name: str, function: Callable[..., object], imports: Imports) -> FlexibleStub:
        # An alias ``functools.partial(f, k=v)`` is stubbed as ``f`` without ``k``, and its
        # protocols are ``f``'s (they hold the leading parameters only, never an option).
        is_alias = isinstance(cast(object, function), functools.partial)
        fixed: set[str] = set(getattr(function, "keywords", {})) if is_alias else set()
        original = inspect.unwrap(function)
        module = sys.modules[original.__module__]
        source = source_of(module)
        bindings = source.bindings
        function_name = original.__name__ if fixed else name
        variants: list[Variant] = []
        for n, node in enumerate(source.signatures(original.__name__)):
            prefix = f"_{_pascal(function_name)}{n + 1 if n else ''}_"
            variant, used = _variant(node, source.text, module, prefix, function_name, fixed)
            variants.append(variant)
            for used_name in used:
                if used_name in bindings:
                    imports.need(used_name, bindings[used_name])
                elif not hasattr(builtins, used_name):
                    raise LookupError(
                        f"stubgen: `{used_name}` in the signature of {name} is not defined in {module.__name__}"
                    )
        per_variant = max(1, MAX_OVERLOADS // len(variants) - 1)
        for variant in variants:
            del variant.forms[per_variant:]
        return cls(name, variants)

    def overloads(self) -> str:
        head = f"def {self.name}"
        blocks = [
            "@overload\n" + render_signature(head, v.parameters, v.returns, "", v.annotations) for v in self.variants
        ]
        for variant in self.variants:
            for holes in variant.forms:
                blocks.append("@overload\n" + _holed(variant, holes, head))
        if len(blocks) == 1:  # nothing can be a hole: a plain signature
            blocks[0] = blocks[0].removeprefix("@overload\n")
        return "\n".join(blocks) + "\n"

    def protocols(self) -> dict[str, str]:
        """The protocol each hole form returns, by name."""
        found: dict[str, str] = {}
        for variant in self.variants:
            for holes in variant.forms:
                found.setdefault(variant.protocol_name(holes), self._protocol(variant, holes))
        return found

    def _protocol(self, variant: Variant, missing: Sequence[int]) -> str:
        names = ", ".join(f"`{variant.parameters[i].name}`" for i in missing)
        head = f"class {variant.protocol_name(missing)}(Protocol):\n"
        head += f'    """``{variant.function}`` waiting for {names}."""\n\n'
        wanted = [variant.parameters[i] for i in missing]
        return head + render_signature("def __call__", [_SELF, *wanted], variant.returns, "    ", variant.annotations) + "\n"


def _variant(
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    source: str,
    module: types.ModuleType,
    prefix: str,
    function: str,
    fixed: set[str],
) -> tuple[Variant, list[str]]:
    """The stub view of one signature (without the ``fixed`` keywords), and the names its
    annotations use."""
    parameters = [p for p in parameters_of(node, source) if p.name not in fixed]
    # The params/state parameters are shown as ParamsTree, and their TypedDicts as ParamsTree
    # wherever else they appear (``batch_norm`` returns its new state).
    shown_as_params: set[str] = set()
    for parameter in parameters:
        if parameter.name in PARAMS_NAMES and parameter.node is not None:
            shown_as_params.update(n for n in names_in(parameter.node) if is_typeddict(getattr(module, n, None)))
    annotations: dict[str, str] = {}
    used: list[str] = []
    for parameter in parameters:
        if parameter.name in PARAMS_NAMES and parameter.node is not None:
            annotations[parameter.name] = "ParamsTree"
        elif parameter.node is not None and parameter.annotation is not None:
            used += names_in(parameter.node)
            annotations[parameter.name] = _as_params(parameter.annotation, shown_as_params)
    returns = None
    if node.returns is not None:
        returns = _as_params(annotation_text(node.returns, source), shown_as_params)
        used += names_in(node.returns)

    def is_leading(i: int) -> bool:  # positional, without a default
        return parameters[i].kind in ("positional_only", "positional") and not parameters[i].has_default

    leading = list(takewhile(is_leading, range(len(parameters))))
    inputs = list(takewhile(lambda i: _is_input(parameters[i], module), leading))
    forms: list[list[int]] = []
    for form in (inputs, inputs[-1:], leading):
        if form and form not in forms:
            forms.append(form)
    used = _unique([n for n in used if n not in shown_as_params])
    return Variant(parameters, returns, annotations, forms, prefix, function), used


def _is_input(parameter: Parameter, module: types.ModuleType) -> bool:
    """Whether a leading parameter is an input (params, an array, a cache) rather than a
    hyperparameter: its name is ``params``/``state``, or its annotation is (or subscripts)
    ``jax.Array``, a jaxtyping dtype, a ``TypedDict``, a ``NamedTuple``, ``Params`` or ``ParamsTree``."""
    if parameter.name in PARAMS_NAMES:
        return True
    annotation = parameter.node
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    while isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    if annotation is None:
        return False
    try:  # a dotted name (``jax.Array``) in the module's namespace; else (``A | B``) not an input
        value = pkgutil.resolve_name(f"{module.__name__}:{ast.unparse(annotation)}")
    except (AttributeError, ValueError):
        return False
    if value is jax.Array or str(getattr(value, "__module__", "")).startswith("jaxtyping"):
        return True
    if is_typeddict(value) or (isinstance(value, type) and tuple in value.__mro__ and hasattr(value, "_fields")):
        return True
    return getattr(value, "__name__", None) in ("Params", "ParamsTree") and str(getattr(value, "__module__", "")).startswith("zephyr")


def _holed(variant: Variant, holes: Sequence[int], head: str) -> str:
    """One overload: ``holes`` (indices into the parameters) typed as holes, every parameter up
    to the last hole positional-only, returning the protocol of the holes."""
    shown = [replace(p, kind="positional_only") if i <= max(holes) else p for i, p in enumerate(variant.parameters)]
    annotations = dict(variant.annotations)
    annotations.update((variant.parameters[i].name, "PlaceholderType") for i in holes)
    return render_signature(head, shown, variant.protocol_name(holes), "", annotations)


_SELF = Parameter("self", "positional", None, False)


def _as_params(annotation: str, names: set[str]) -> str:
    """``annotation`` with each of ``names`` (outside string literals) replaced by ``ParamsTree``."""
    if not names:
        return annotation
    pattern = re.compile(r"""("[^"]*"|'[^']*')|\b(""" + "|".join(sorted(names)) + r")\b")
    return pattern.sub(lambda m: m.group(1) or "ParamsTree", annotation)


# ---------------------------------------------------------------------------------------
# A whole module


def flexible_names(module: types.ModuleType) -> list[str]:
    """The public flexible functions that ``module`` exposes (defines or re-exports).

    Example:
        >>> import zephyr.nets
        >>> "linear" in flexible_names(zephyr.nets), "chain" in flexible_names(zephyr.nets)
        (True, False)
    """
    exported: Sequence[str] = getattr(module, "__all__", ())
    names: list[str] = []
    for statement in _top_level(source_of(module).tree.body):
        if isinstance(statement, ast.ImportFrom):
            for alias in statement.names:
                name = alias.asname or alias.name
                shown = alias.asname == alias.name or name in exported  # a re-export
                if shown and not name.startswith("_") and is_flexible(getattr(module, name, None)):
                    names.append(name)
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            if not statement.name.startswith("_") and is_flexible(getattr(module, statement.name, None)):
                names.append(statement.name)
    return names


class ModuleStub:
    """The stub text of one module."""

    def __init__(self, module: types.ModuleType, stubbed: Sequence[str] = ()) -> None:
        self.module = module
        self.source = source_of(module)
        self.package = module.__package__ or ""
        # A flexible function re-exported from another stubbed module is imported from there,
        # with its overloads; one re-exported from a module without a stub is written out.
        self.flexible = set(flexible_names(module))
        self.exported: set[str] = set(getattr(module, "__all__", ()))
        self.submodules: list[ast.alias] = []
        for statement in _top_level(self.source.tree.body):
            if isinstance(statement, ast.ImportFrom) and absolute_module(statement, self.package) in stubbed:
                self.flexible -= {alias.asname or alias.name for alias in statement.names}
        self.needs_incomplete = False

    def render(self) -> str:
        body: list[str] = []  # blocks, separated by blank lines
        header_imports: list[tuple[str, list[ast.alias]]] = []
        bindings = self.source.bindings
        taken: dict[str, Binding] = {}
        flexible_blocks: list[tuple[str, Callable[..., object]]] = []
        docstring = ast.get_docstring(self.source.tree, clean=False)
        for statement in _top_level(self.source.tree.body):
            if isinstance(statement, ast.Import | ast.ImportFrom):
                prefix, aliases = self._import(statement, flexible_blocks)
                if aliases:
                    header_imports.append((prefix, aliases))
                    for alias in statement.names:
                        bound = alias.asname or alias.name.split(".")[0]
                        if not (isinstance(statement, ast.ImportFrom) and bound in self.flexible):
                            taken[bound] = bindings[bound]
            elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name in self.flexible:
                flexible_blocks.append((statement.name, getattr(self.module, statement.name)))
            else:
                block = self._statement(statement, "")
                if block:
                    body.append(block)
                    for name in _defined_names(statement):
                        taken[name] = Binding(self.module.__name__, name)
        imports = Imports(taken)
        flexible_text: list[str] = []
        for module, name in _FLEXIBLE_IMPORTS if flexible_blocks else ():
            imports.need(name, Binding(module, name))
        written: set[str] = set()  # the protocols so far: an alias shares its function's
        for name, function in flexible_blocks:
            stub = FlexibleStub.of(name, function, imports)
            new = {k: v for k, v in stub.protocols().items() if k not in written}
            written.update(new)
            flexible_text.append("\n".join([stub.overloads(), *new.values()]))
        if self.needs_incomplete:
            imports.need("Incomplete", Binding("_typeshed", "Incomplete"))
        out = HEADER
        if docstring:
            out += _docstring(docstring, "")
        chunks = [b for b in body if not b.startswith("__all__")] + flexible_text
        chunks += [b for b in body if b.startswith("__all__")]
        used = set(re.findall(r"[A-Za-z_]\w*", "\n".join(chunks)))
        own: list[str] = []
        for prefix, aliases in header_imports:
            # Keep re-exports (``y as y``), and other imports only if the stub uses them.
            needed = [a for a in aliases if a.asname == a.name or (a.asname or a.name.split(".")[0]) in used]
            if needed:
                own.append(prefix + ", ".join(ast.unparse(a) for a in needed))
        if self.submodules:
            own.insert(0, "\n".join(ast.unparse(ast.Import([a])) for a in self.submodules))
        lines = [*_unique(own), *_merge_imports(imports.lines)]
        for chunk in (["\n".join(lines) + "\n"] if lines else []) + chunks:
            out += "\n" + chunk.rstrip("\n") + "\n"
        return out

    def _import(
        self, statement: ast.Import | ast.ImportFrom, flexible_blocks: list[tuple[str, Callable[..., object]]]
    ) -> tuple[str, list[ast.alias]]:
        """The import to keep (``from m import `` and its names), without the flexible functions."""
        if isinstance(statement, ast.Import):
            return "import ", list(statement.names)
        if statement.module == "__future__":
            return "", []
        origin = absolute_module(statement, self.package)
        kept: list[ast.alias] = []
        for alias in statement.names:
            name = alias.asname or alias.name
            if name in self.flexible:
                flexible_blocks.append((name, getattr(self.module, name)))
            elif isinstance(getattr(self.module, name, None), types.ModuleType) and name in self.exported:
                # A submodule: pyright finds ``zephyr.tags`` past a stub package that has no
                # tags.pyi only when it is imported by its full name (exported by __all__).
                self.submodules.append(ast.alias(f"{origin}.{alias.name}", name))
            else:
                kept.append(alias)
        # Absolute, for the same reason: ``from zephyr.core._api import trace``, not ``from ._api``.
        return f"from {origin} import ", kept

    def _statement(self, statement: ast.stmt, indent: str) -> str:
        """The stub form of a definition or assignment ('' to drop it)."""
        source = self.source.text
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            returns = None if statement.returns is None else annotation_text(statement.returns, source)
            keyword = "async def" if isinstance(statement, ast.AsyncFunctionDef) else "def"
            head = f"{keyword} {statement.name}"
            return _decorators(statement, indent) + render_signature(head, parameters_of(statement, source), returns, indent) + "\n"
        if isinstance(statement, ast.ClassDef):
            bases = [annotation_text(b, source) for b in statement.bases]
            bases += [f"{k.arg}={annotation_text(k.value, source)}" for k in statement.keywords if k.arg]
            head = f"{indent}class {statement.name}" + (f"({', '.join(bases)})" if bases else "") + ":\n"
            members = [m for m in (self._statement(s, indent + "    ") for s in statement.body) if m]
            return _decorators(statement, indent) + head + ("".join(members) if members else f"{indent}    ...\n")
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            annotation = annotation_text(statement.annotation, source)
            assigned = ""
            if statement.value is not None:
                assigned = " = ..."
                if isinstance(statement.value, ast.Constant) and "Final" in annotation:
                    assigned = f" = {ast.unparse(statement.value)}"
            return f"{indent}{statement.target.id}: {annotation}{assigned}\n"
        if isinstance(statement, ast.Assign):
            targets = [t.id for t in statement.targets if isinstance(t, ast.Name)]
            if not targets:
                return ""
            value = statement.value
            if targets == ["__all__"] or _is_alias(value):
                text = ast.get_source_segment(source, statement) or ast.unparse(statement)
                return "".join(f"{indent}{line}\n" for line in text.splitlines())
            if isinstance(value, ast.Constant) and isinstance(value.value, bool | int | float | str | bytes):
                kind = type(value.value).__name__
            else:
                self.needs_incomplete = True
                kind = "Incomplete"
            return "".join(f"{indent}{t}: {kind}\n" for t in targets)
        if type(statement).__name__ == "TypeAlias":  # ``type X = ...`` (Python 3.12+)
            return indent + (ast.get_source_segment(source, statement) or ast.unparse(statement)) + "\n"
        return ""


def _merge_imports(lines: Sequence[str]) -> list[str]:
    """``from m import a`` and ``from m import b`` as ``from m import a, b``, sorted."""
    by_module: dict[str, list[str]] = {}
    plain: list[str] = []
    for line in lines:
        if line.startswith("from "):
            module, names = line[len("from ") :].split(" import ", 1)
            by_module.setdefault(module, []).append(names)
        else:
            plain.append(line)
    merged = [f"from {m} import {', '.join(sorted(set(n)))}" for m, n in by_module.items()]
    return sorted(plain) + sorted(merged)


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, indent: str) -> str:
    """The decorators a stub keeps (``@overload``, ``@property`` and its ``.setter``, ...)."""
    kept = [
        d
        for d in node.decorator_list
        if _decorator_name(d) in _KEPT_DECORATORS or (isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter"))
    ]
    return "".join(f"{indent}@{ast.unparse(d)}\n" for d in kept)


def _decorator_name(node: ast.expr) -> str:
    while isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_alias(value: ast.expr) -> bool:
    if isinstance(value, ast.Call):
        return _decorator_name(value.func) in _ALIAS_CALLS
    return isinstance(value, ast.Name | ast.Attribute | ast.Subscript) or (
        isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr)
    )


def _docstring(text: str, indent: str) -> str:
    quote = '"""'
    if quote in text or text.endswith("\\"):
        return f"{indent}{ast.unparse(ast.Constant(text))}\n"
    return f"{indent}{quote}{text}{quote}\n"


# ---------------------------------------------------------------------------------------
# Which modules, where


def stub_modules(names: Sequence[str]) -> list[str]:
    """The modules to stub for ``names``: modules with flexible functions, and their parents.

    A package stands for itself and its public submodules that expose flexible functions.

    Example:
        >>> stub_modules(["zephyr.nets"])
        ['zephyr', 'zephyr.nets']
    """
    chosen: set[str] = set()
    for name in names:
        chosen.add(name)
        package_path = getattr(importlib.import_module(name), "__path__", [])  # a module: no submodules
        for info in pkgutil.walk_packages(package_path, name + "."):
            public = not any(part.startswith("_") for part in info.name.split("."))
            if public and flexible_names(importlib.import_module(info.name)):
                chosen.add(info.name)
    with_parents = set(chosen)
    for name in chosen:
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(with_parents)


def stub_path(module_name: str) -> Path:
    module = importlib.import_module(module_name)
    path = Path(*module_name.split("."))
    return path / "__init__.pyi" if hasattr(module, "__path__") else path.with_suffix(".pyi")


def generate(names: Sequence[str]) -> dict[Path, str]:
    """The stub text of each module to stub, by path relative to the output directory.

    Example:
        >>> files = generate(["zephyr.nets"])
        >>> sorted(path.as_posix() for path in files)
        ['zephyr/__init__.pyi', 'zephyr/nets.pyi']
        >>> "def linear(" in files[Path("zephyr/nets.pyi")]
        True
    """
    source_of.cache_clear()  # read the sources afresh on each run
    modules = stub_modules(names)
    return {stub_path(m): ModuleStub(importlib.import_module(m), modules).render() for m in modules}


def _unlinked(out: Path, files: Mapping[Path, str]) -> list[str]:
    """zephyr's own stubs whose ``zephyr/<module>.pyi`` is not a link to ``stubs/``."""
    package = out.parent
    return [
        f"{package / path}: must be a link to {out / path} (ln -s ../stubs/{path} {path})\n"
        for path in sorted(files)
        if (package / path).resolve() != (out / path).resolve() or not (package / path).is_symlink()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the stubs; 1 when ``--check`` finds them stale.

    Example:
        >>> import contextlib, io, tempfile
        >>> with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        ...     codes = main(["zephyr.nets", "--out", out]), main(["zephyr.nets", "--out", out, "--check"])
        >>> codes
        (0, 0)
    """
    parser = argparse.ArgumentParser(prog="python -m zephyr.typing.stubgen", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=["zephyr"], help="modules or packages (default: zephyr)")
    parser.add_argument(
        "--out", type=Path, help="output directory (default: stubs; zephyr's own: next to its modules)"
    )
    parser.add_argument("--check", action="store_true", help="compare with --out; exit 1 with a diff if stale")
    args = parser.parse_args(argv)
    # The stubs go to --out or stubs/; zephyr's own to the project's stubs/, which each
    # zephyr/<module>.pyi links to, so that every install finds them next to the modules.
    own = args.out is None and list(args.modules) == ["zephyr"]
    out: Path = args.out or Path("stubs")
    if own:
        out = Path(importlib.import_module("zephyr").__file__ or ".").resolve().parents[1] / "stubs"
    files = generate(args.modules)
    old = {path: (out / path).read_text() if (out / path).exists() else "" for path in sorted(files)}
    changed = [path for path in old if old[path] != files[path]]
    roots = {path.parts[0] for path in files}
    stale = sorted(p.relative_to(out) for root in roots for p in (out / root).rglob("*.pyi") if p.relative_to(out) not in files)
    if args.check:
        diff: list[str] = []
        for path in changed:
            target = str(out / path)
            diff += difflib.unified_diff(old[path].splitlines(True), files[path].splitlines(True), target, f"{target} (generated)")
        diff += [f"{out / path}: not generated any more (delete it)\n" for path in stale]
        if own:
            diff += _unlinked(out, files)
        if diff:
            sys.stdout.writelines(diff)
            where = f" --out {out}" if args.out is not None else ""
            print(f"\nstubs in {out}/ are stale: run `python -m zephyr.typing.stubgen {' '.join(args.modules)}{where}`")
            return 1
        print(f"stubs in {out}/ are up to date ({len(files)} files)")
        return 0
    for path in changed:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(files[path])
        print(f"wrote {out / path}")
    for path in stale:
        (out / path).unlink()
        print(f"deleted {out / path}")
    if own:
        for path in files:
            link = out.parent / path
            if not link.is_symlink():
                link.unlink(missing_ok=True)
                link.symlink_to(Path("..", out.name, path))
                print(f"linked {link} -> {out / path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
