"""Nothing grows without bound: the trace cache holds no closure alive, the compiled
initializers are bounded and release their executables."""

# The engine's caches are inspected on purpose.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zephyr import flexible, nets, trace, validate
from zephyr.core import _cache, _initializers
from zephyr.functools.partial import placeholder_hole as _


def test_the_trace_cache_keeps_no_closure_alive() -> None:
    held: list[weakref.ref[np.ndarray[Any, Any]]] = []

    def make() -> Callable[..., Any]:
        captured = np.ones(256, np.float32)  # 1 KiB
        held.append(weakref.ref(captured))

        def net(params: Any, x: jax.Array) -> jax.Array:
            return x @ validate(params["w"], (x.shape[-1], 2)) + jnp.asarray(captured[:2])[None]

        return net

    for _i in range(50):
        trace(make(), jax.random.key(0), jnp.ones((1, 3)))
    gc.collect()
    assert sum(ref() is not None for ref in held) == 0


def test_a_holed_call_is_cached_while_it_lives_and_not_kept_alive() -> None:
    net = nets.linear(_, _, 3)
    x = jnp.ones((1, 4))
    trace(net, jax.random.key(0), x)
    before = len(_cache._TRACES)
    trace(nets.linear(_, _, 3), jax.random.key(1), x)  # equal content: a cache hit
    assert len(_cache._TRACES) == before

    def make() -> Callable[..., Any]:
        @flexible
        def local(params: Any, x: jax.Array, n: int) -> jax.Array:
            y: jax.Array = nets.linear(params, x, n)
            return y

        return local

    fn = make()
    ref = weakref.ref(fn)
    trace(fn(_, _, 2), jax.random.key(0), x)
    del fn
    gc.collect()
    assert ref() is None


def test_bound_methods_hit_the_cache() -> None:
    class Model:
        def __call__(self, params: Any, x: jax.Array) -> jax.Array:
            y: jax.Array = nets.linear(params, x, 2)
            return y

        def apply(self, params: Any, x: jax.Array) -> jax.Array:
            y: jax.Array = nets.linear(params, x, 2)
            return y

    model = Model()
    x = jnp.ones((1, 4))
    trace(model.apply, jax.random.key(0), x)
    before = len(_cache._TRACES)
    trace(model.apply, jax.random.key(0), x)
    assert len(_cache._TRACES) == before


def test_compiled_initializers_are_bounded_and_released(monkeypatch: Any) -> None:
    compiled = _initializers._COMPILED
    assert compiled.max_entries == 128
    monkeypatch.setattr(compiled, "max_entries", 4)  # the same bound, reached sooner
    x = jnp.ones((1, 2))
    for n in range(1, 8):
        trace(nets.linear(_, _, n), jax.random.key(0), x)
    assert len(compiled) == 4
    released: list[object] = []
    lru: _cache.LRU[object] = _cache.LRU(1, on_evict=released.append)
    lru.put("a", 1)
    lru.put("b", 2)
    assert released == [1] and lru.get("b") == 2
