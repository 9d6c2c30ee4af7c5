# jax annotates its random, tree and jit functions partially; the pairs call them throughout.
# pyright: reportUnknownMemberType=false, reportUnknownArgumentType=false, reportUnknownLambdaType=false
"""What the benchmark measures: the sizes of a run and each model on both sides.

A :class:`Pair` holds one model built in zephyr (``_models.py``) and in raw JAX
(``_raw.py``) on the same input: zephyr's trace, raw JAX's init (also drawing from
threefry4x32 keys, the what-if) and both applies. :func:`check_pair` checks that the two
sides are the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

import zephyr

import _models
import _raw

JSON = dict[str, Any]
"""Figures as written to ``results.json``."""

Tree = Any
"""A params pytree of either side (zephyr's dict or the raw dict)."""


@dataclass(frozen=True)
class LlamaSize:
    """The LLaMA-style model of ``examples/llama.py`` (``"llama"``): sizes and batch."""

    vocab: int = 256
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    mlp_dim: int = 344  # LLaMA's 8/3 d, rounded up to a multiple of 8
    seq: int = 64
    batch: int = 8


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    vocab: int = 1000
    d_model: int = 256
    heads: int = 4
    seq: int = 128
    batch: int = 8
    depths: tuple[int, ...] = (1, 4, 16, 64)
    batches: tuple[int, ...] = (1, 8, 64, 512)
    jit_depth: int = 2
    jit_models: tuple[str, ...] = ("mlp", "cnn", "gpt", "gpt-scan", "llama")
    llama: LlamaSize = LlamaSize()
    compile_blocks: tuple[int, ...] = (4, 32)  # the "compile" section's LLaMA depths
    mlp_in: int = 256
    mlp_widths: tuple[int, ...] = (512, 512, 512, 512, 10)
    mlp_batch: int = 64
    cnn_shape: tuple[int, int, int, int] = (8, 32, 32, 3)
    classes: int = 10
    memory_d: int = 1024
    memory_depth: int = 6
    reps: int = 7
    deep_reps: int = 3
    compile_reps: int = 3
    step_reps: int = 9
    eager_number: int = 2000
    tiny_number: int = 200_000
    children: bool = True
    quick: bool = False


FULL = Config()
QUICK = Config(
    vocab=50, d_model=32, heads=2, seq=8, batch=2, depths=(1,), batches=(1, 4), jit_depth=1, jit_models=("mlp", "llama"),
    llama=LlamaSize(vocab=50, d_model=32, layers=1, heads=4, kv_heads=2, mlp_dim=88, seq=8, batch=2), compile_blocks=(1,),
    mlp_in=16, mlp_widths=(32, 10), mlp_batch=4, cnn_shape=(2, 8, 8, 3), memory_d=32,
    memory_depth=1, reps=2, deep_reps=1, compile_reps=1, step_reps=2, eager_number=50,
    tiny_number=2000, quick=True,
)


@dataclass(frozen=True)
class Pair:
    """One model on both sides: ``trace()`` / ``init()`` build params, applies run them."""

    name: str
    trace: Callable[[], Tree]
    init: Callable[[], Tree]
    init_threefry4x32: Callable[[], Tree]
    apply_zephyr: Callable[[Tree, Array], Array]
    apply_raw: Callable[[Tree, Array], Array]
    x: Array
    labels: Array


FAST_KEY = jax.random.key(0, impl="threefry4x32")
"""The what-if for raw JAX: its init drawing from the generator zephyr's leaf keys use."""


def _labels(shape: tuple[int, ...], classes: int) -> Array:
    return jax.random.randint(jax.random.key(1), shape, 0, classes)


def mlp_pair(cfg: Config) -> Pair:
    """The MLP: ``cfg.mlp_in`` -> ``cfg.mlp_widths``, batch ``cfg.mlp_batch``."""
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(2), (cfg.mlp_batch, cfg.mlp_in))
    widths = cfg.mlp_widths
    return Pair(
        "mlp",
        lambda: zephyr.trace(_models.mlp, key, x, widths),
        lambda: _raw.init_mlp(key, cfg.mlp_in, widths),
        lambda: _raw.init_mlp(FAST_KEY, cfg.mlp_in, widths),
        lambda p, x: _models.mlp(p, x, widths),
        _raw.apply_mlp,
        x,
        _labels((cfg.mlp_batch,), widths[-1]),
    )


def cnn_pair(cfg: Config) -> Pair:
    """The small CNN on inputs of shape ``cfg.cnn_shape``."""
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(2), cfg.cnn_shape)
    return Pair(
        "cnn",
        lambda: zephyr.trace(_models.cnn, key, x, cfg.classes),
        lambda: _raw.init_cnn(key, cfg.cnn_shape[-1], cfg.classes),
        lambda: _raw.init_cnn(FAST_KEY, cfg.cnn_shape[-1], cfg.classes),
        lambda p, x: _models.cnn(p, x, cfg.classes),
        _raw.apply_cnn,
        x,
        _labels((cfg.cnn_shape[0],), cfg.classes),
    )


def gpt_pair(cfg: Config, depth: int, *, scan: bool, d_model: int | None = None, batch: int | None = None) -> Pair:
    """The GPT of ``depth`` blocks, unrolled or scanned (``d_model`` and ``batch`` default to ``cfg``'s)."""
    key = jax.random.key(0)
    d = d_model or cfg.d_model
    tokens = jax.random.randint(jax.random.key(2), (batch or cfg.batch, cfg.seq), 0, cfg.vocab)
    model = _models.gpt(cfg.vocab, d, depth, cfg.heads, scan=scan)
    return Pair(
        f"gpt{depth}{'-scan' if scan else ''}",
        lambda: zephyr.trace(model, key, tokens),
        lambda: _raw.init_gpt(key, cfg.vocab, d, depth, cfg.seq, stacked=scan),
        lambda: _raw.init_gpt(FAST_KEY, cfg.vocab, d, depth, cfg.seq, stacked=scan),
        model,
        lambda p, t: _raw.apply_gpt(p, t, cfg.heads, stacked=scan),
        tokens,
        _labels(tuple(tokens.shape), cfg.vocab),
    )


def llama_pair(cfg: Config) -> Pair:
    """``examples/llama.py``'s model (``nets.transformer``, scanned) of size ``cfg.llama``."""
    size = cfg.llama
    key = jax.random.key(0)
    tokens = jax.random.randint(jax.random.key(2), (size.batch, size.seq), 0, size.vocab)
    model = _models.llama(size.vocab, size.d_model, size.layers, size.heads, size.kv_heads, size.mlp_dim)

    def init(key: Array) -> Tree:
        return _raw.init_llama(key, size.vocab, size.d_model, size.layers, size.heads, size.kv_heads, size.mlp_dim)

    return Pair(
        "llama",
        lambda: zephyr.trace(model, key, tokens),
        lambda: init(key),
        lambda: init(FAST_KEY),
        model,
        lambda p, t: _raw.apply_llama(p, t, size.heads, size.kv_heads),
        tokens,
        _labels(tuple(tokens.shape), size.vocab),
    )


MODELS = ("mlp", "cnn", "gpt", "gpt-scan", "llama", "memory", "memory-scan")
"""The names :func:`pair_named` knows."""


def pair_named(cfg: Config, model: str) -> Pair:
    """The pair of one of :data:`MODELS`: "gpt" has ``cfg.jit_depth`` blocks, "memory" is the wide GPT."""
    if model in ("memory", "memory-scan"):
        return gpt_pair(cfg, cfg.memory_depth, scan=model.endswith("scan"), d_model=cfg.memory_d)
    if model == "mlp":
        return mlp_pair(cfg)
    if model == "cnn":
        return cnn_pair(cfg)
    if model in ("gpt", "gpt-scan"):
        return gpt_pair(cfg, cfg.jit_depth, scan=model.endswith("scan"))
    if model == "llama":
        return llama_pair(cfg)
    raise ValueError(f"pair_named: model must be one of {', '.join(MODELS)}, got {model!r}")


def clear_trace_cache() -> None:
    """Forget zephyr's cached abstract runs (if this zephyr caches them): the next trace runs the forward."""
    clear: Callable[[], None] | None = getattr(zephyr, "clear_trace_cache", None)
    if clear is not None:
        clear()


def same_shapes(a: Tree, b: Tree) -> bool:
    """Whether two trees have the same structure, shapes and dtypes."""
    spec: Callable[[Array], tuple[tuple[int, ...], str]] = lambda x: (tuple(x.shape), str(x.dtype))
    return bool(jax.tree.structure(a) == jax.tree.structure(b)) and jax.tree.leaves(
        jax.tree.map(spec, a)
    ) == jax.tree.leaves(jax.tree.map(spec, b))


def check_pair(pair: Pair) -> float:
    """Same params layout on both sides; both applies agree on zephyr's params (max |diff|)."""
    params = pair.trace()
    if not same_shapes(params, pair.init()):
        raise AssertionError(f"{pair.name}: zephyr and raw params differ in layout")
    # Jitted: one compile per side instead of one per eager op.
    diff = jnp.max(jnp.abs(jax.jit(pair.apply_zephyr)(params, pair.x) - jax.jit(pair.apply_raw)(params, pair.x)))
    return float(diff)
