"""Refresh the Sphinx inventories (objects.inv) that the site's cross-references read.

The build has no network, so mkdocstrings reads the inventories of Python, NumPy, JAX, optax
and jaxtyping from this folder (mkdocs.yml, ``inventories:``); each links a name in a
signature or a ``[jax.Array][]`` reference to its page on the project's own site.

With a network, download the published inventories (the normal way)::

    .venv/bin/python docs/inventories/refresh.py

Without one (this is how the committed files were made, see README.md here)::

    .venv/bin/python docs/inventories/refresh.py --offline

``--offline`` takes Python's from Debian's ``python3-doc`` package
(/usr/share/doc/python3/html/objects.inv, the inventory of docs.python.org/3.11) and writes
the others from the list below: only names zephyr's pages use, each with the URL of its page
on the project's site, made by the rule that site follows (JAX's and NumPy's one page per
name, optax's and jaxtyping's pages per topic); a name the installed package does not have
is left out. The downloaded inventories replace them with the complete ones.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import shutil
import sys
import urllib.request
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name: the base URL of the docs (mkdocs.yml's `base_url`, with the file name here)
SITES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "jax": "https://docs.jax.dev/en/latest/",
    "optax": "https://optax.readthedocs.io/en/latest/",
    "jaxtyping": "https://docs.kidger.site/jaxtyping/",
}
DEBIAN_PYTHON = Path("/usr/share/doc/python3/html/objects.inv")

# The offline lists: (name, role, page relative to the site; "$" is the name).
JAX_PER_NAME = [
    ("jax.Array", "class"), ("jax.ShapeDtypeStruct", "class"),
    ("jax.jit", "function"), ("jax.grad", "function"), ("jax.value_and_grad", "function"),
    ("jax.vmap", "function"), ("jax.eval_shape", "function"), ("jax.checkpoint", "function"),
    ("jax.device_put", "function"), ("jax.make_mesh", "function"),
    ("jax.random.key", "function"), ("jax.random.split", "function"), ("jax.random.normal", "function"),
    ("jax.random.uniform", "function"), ("jax.random.PRNGKey", "function"), ("jax.random.key_data", "function"),
    ("jax.nn.relu", "function"), ("jax.nn.gelu", "function"), ("jax.nn.silu", "function"),
    ("jax.nn.sigmoid", "function"), ("jax.nn.softmax", "function"), 
    ("jax.nn.dot_product_attention", "function"),
    ("jax.lax.scan", "function"), ("jax.lax.conv_general_dilated", "function"),
    ("jax.tree.map", "function"), ("jax.tree.leaves", "function"), ("jax.tree.structure", "function"),
    ("jax.tree_util.tree_map_with_path", "function"), ("jax.tree_util.tree_flatten_with_path", "function"),
    ("jax.numpy.ndarray", "class"), ("jax.numpy.ones", "function"),
    ("jax.numpy.zeros", "function"), ("jax.numpy.where", "function"),
]
JAX_MODULE_PAGE = [  # documented on their module's page, anchor = the name
    ("jax.sharding.Sharding", "class", "jax.sharding.html#$"),
    ("jax.sharding.NamedSharding", "class", "jax.sharding.html#$"),
    ("jax.sharding.PartitionSpec", "class", "jax.sharding.html#$"),
    ("jax.sharding.Mesh", "class", "jax.sharding.html#$"),
    ("jax.typing.ArrayLike", "data", "jax.typing.html"),
    ("jax.typing.DTypeLike", "data", "jax.typing.html"),
]
NUMPY = [
    ("numpy.ndarray", "class", "reference/generated/numpy.ndarray.html#$"),
    ("numpy.dtype", "class", "reference/generated/numpy.dtype.html#$"),
    ("numpy.asarray", "function", "reference/generated/numpy.asarray.html#$"),
    ("numpy.arange", "function", "reference/generated/numpy.arange.html#$"),
    ("numpy.float32", "attribute", "reference/arrays.scalars.html#$"),
    ("numpy.int32", "attribute", "reference/arrays.scalars.html#$"),
]
OPTAX = [
    ("optax.adam", "function", "api/optimizers.html#$"),
    ("optax.adamw", "function", "api/optimizers.html#$"),
    ("optax.sgd", "function", "api/optimizers.html#$"),
    ("optax.chain", "function", "api/combining_optimizers.html#$"),
    ("optax.multi_transform", "function", "api/combining_optimizers.html#$"),
    ("optax.masked", "function", "api/optimizer_wrappers.html#$"),
    ("optax.GradientTransformation", "class", "api/transformations.html#$"),
    ("optax.EmptyState", "class", "api/transformations.html#$"),
    ("optax.apply_updates", "function", "api/utilities.html#$"),
]
JAXTYPING = [  # jaxtyping's site (MkDocs) documents these on pages per topic
    *((f"jaxtyping.{name}", "class", "api/array/") for name in (
        "Array", "Float", "Int", "Bool", "Shaped", "Integer", "UInt", "Num", "Real", "Inexact", "Key", "PRNGKeyArray", "ArrayLike",
    )),
    ("jaxtyping.PyTree", "class", "api/pytree/"),
    ("jaxtyping.jaxtyped", "function", "api/runtime-type-checking/"),
]


def exists(path: str) -> bool:
    """Whether ``path`` (module.attribute...) is in the installed package."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def write(path: Path, project: str, entries: list[tuple[str, str, str]]) -> None:
    """An inventory in Sphinx's version-2 format: a text header, then zlib-compressed lines."""
    version = importlib.metadata.version(project)
    kept = [entry for entry in entries if exists(entry[0])]
    header = (
        f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = "".join(f"{name} py:{role} 1 {uri} -\n" for name, role, uri in sorted(kept))
    path.write_bytes(header.encode() + zlib.compress(lines.encode()))
    print(f"{path.name}: {len(kept)} names of {project} {version} (offline list)")


def offline() -> None:
    if not DEBIAN_PYTHON.is_file():
        sys.exit(f"refresh.py --offline: no {DEBIAN_PYTHON} (Debian: apt-get install python3-doc)")
    shutil.copyfile(DEBIAN_PYTHON, HERE / "python.inv")
    print(f"python.inv: copied from {DEBIAN_PYTHON}")
    jax = [(name, role, f"_autosummary/{name}.html#$") for name, role in JAX_PER_NAME]
    write(HERE / "jax.inv", "jax", jax + JAX_MODULE_PAGE)
    write(HERE / "numpy.inv", "numpy", NUMPY)
    write(HERE / "optax.inv", "optax", OPTAX)
    write(HERE / "jaxtyping.inv", "jaxtyping", JAXTYPING)


def download() -> None:
    for name, base in SITES.items():
        url = base + "objects.inv"
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https only, fixed list)
            data = response.read()
        if not data.startswith(b"# Sphinx inventory version"):
            sys.exit(f"refresh.py: {url} is not a Sphinx inventory")
        (HERE / f"{name}.inv").write_bytes(data)
        print(f"{name}.inv: {len(data):,} bytes from {url}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--offline", action="store_true", help="no network: Debian's python3-doc and the lists here")
    args = parser.parse_args(argv)
    offline() if args.offline else download()


if __name__ == "__main__":
    main()
