"""zephyr: neural networks as plain, typed functions on JAX.

``trace(f, key, *sample_args)`` builds the params of ``f(params, x, *hyperparameters)``;
``validate`` declares what a parameter must look like; ``zephyr.nets`` holds the layers.
"""

from . import functools as functools
from . import nets as nets
from . import typing as typing
from .core._api import abstract_trace as abstract_trace
from .core._api import abstract_trace_with_state as abstract_trace_with_state
from .core._api import collect_specs as collect_specs
from .core._cache import clear_trace_cache as clear_trace_cache
from .core._api import initialize as initialize
from ._api import trace as trace
from ._api import trace_with_state as trace_with_state
from .core._api import validate as validate
from .core._initializers import default_initializer as default_initializer
from ._flexible import flexible as flexible
from .functools._partial import placeholder_hole as placeholder_hole
from ._stack import stack as stack
from . import sharding as sharding
from . import tags as tags
from . import tree as tree
from ._sharding import trace_sharded as trace_sharded
from . import checkpoint as checkpoint
from ._summary import summary as summary

__version__ = "0.1.0"

__all__ = [
    "abstract_trace",
    "abstract_trace_with_state",
    "checkpoint",
    "summary",
    "sharding",
    "tags",
    "trace_sharded",
    "tree",
    "clear_trace_cache",
    "collect_specs",
    "default_initializer",
    "initialize",
    "stack",
    "trace_with_state",
    "flexible",
    "functools",
    "nets",
    "placeholder_hole",
    "trace",
    "typing",
    "validate",
]
