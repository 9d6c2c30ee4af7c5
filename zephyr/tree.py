"""Tree utilities jax.tree_util and optax do not give: ``merge`` and ``map_with_path``."""

from ._tree import map_with_path as map_with_path
from ._tree import merge as merge

__all__ = ["map_with_path", "merge"]
