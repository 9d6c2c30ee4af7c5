"""Every public name imports, and every public function has a docstring with an example."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PUBLIC_MODULES = [
    "zephyr",
    "zephyr.nets",
    "zephyr.functools.partial",
    "zephyr.functools.composition",
    "zephyr.typing",
    "zephyr.tags",
    "zephyr.sharding",
    "zephyr.tree",
    "zephyr.checkpoint",
]


def public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return sorted(n for n in names if not isinstance(getattr(module, n), types.ModuleType))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_imports(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in public_names(module):
        assert getattr(module, name) is not None, f"{module_name}.{name}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_function_has_a_docstring_with_an_example(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = []
    for name in public_names(module):
        value = getattr(module, name)
        if str(getattr(value, "__module__", "")).startswith("jax"):
            continue  # re-exported from JAX (jax.nn activations): JAX documents them
        if inspect.isfunction(value) or (callable(value) and hasattr(value, "__wrapped__")):
            doc = inspect.getdoc(value) or ""
            if ">>>" not in doc:
                missing.append(name)
        elif inspect.isclass(value) and not inspect.getdoc(value):
            missing.append(name)
    assert not missing, f"{module_name}: no docstring example for {missing}"


def test_seed_import_paths_keep_working() -> None:
    from zephyr import nets, trace, validate
    from zephyr.functools.composition import chain, skip, thread, thread_identity, thread_key, thread_params
    from zephyr.functools.partial import flexible, hole_aware
    from zephyr.functools.partial import placeholder_hole as _
    from zephyr.nets import chain as nets_chain

    assert all(callable(f) for f in (trace, validate, chain, skip, thread, thread_identity, thread_key, thread_params, flexible, hole_aware, nets_chain))
    assert nets.linear is not None and repr(_) == "_"
