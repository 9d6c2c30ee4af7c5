"""Sharded and abstract traces, and sharding rules keyed by tag or path (see ``zephyr._sharding``)."""

from ._sharding import ShardingRules as ShardingRules
from .core._api import abstract_trace as abstract_trace
from ._sharding import abstract_trace_sharded as abstract_trace_sharded
from .core._api import abstract_trace_with_state as abstract_trace_with_state
from ._sharding import partition_specs as partition_specs
from ._sharding import shardings as shardings
from ._sharding import spec_for as spec_for
from ._sharding import trace_sharded as trace_sharded

__all__ = [
    "ShardingRules",
    "abstract_trace",
    "abstract_trace_sharded",
    "abstract_trace_with_state",
    "partition_specs",
    "shardings",
    "spec_for",
    "trace_sharded",
]
