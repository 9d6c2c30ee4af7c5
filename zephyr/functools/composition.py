"""Composition: ``from zephyr.functools.composition import chain, skip, thread_key, ...``."""

from ._composition import chain as chain
from ._composition import skip as skip
from ._composition import thread as thread
from ._composition import thread_identity as thread_identity
from ._composition import thread_key as thread_key
from ._composition import thread_params as thread_params

__all__ = ["chain", "skip", "thread", "thread_identity", "thread_key", "thread_params"]
