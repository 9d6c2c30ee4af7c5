# jax annotates block_until_ready and the array constructors partially: Unknown to pyright strict.
# pyright: reportUnknownMemberType=false
"""What run-time checking adds to one eager call of an MLP: zephyr against Equinox + jaxtyping + beartype.

    python benchmarks/check_cost.py

zephyr: ``nets.mlp(params, x, widths)`` (at each of ``SIZES``) with ``checking(False)`` and ``checking(True)``
(one check of the outer call: the ``linear`` layers inside are not checked again).
Equinox: the same MLP as ``eqx.nn.Linear`` layers in a module (its body under
``eqx.filter_jit``, so that the timing noise around the check is small), called through a
function annotated with jaxtyping and decorated with ``jaxtyped(typechecker=beartype)``, and
without the decorator. Each figure is the fastest of repeated timings of many calls, in milliseconds
per call; the cost is checked minus unchecked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from beartype import beartype
from jax import Array
from jaxtyping import Float, jaxtyped  # pyright: ignore[reportUnknownVariableType]  # jaxtyping's decorator is partially annotated

from zephyr import nets, trace
from zephyr.typing import checking

SIZES: list[tuple[int, list[int], int]] = [(128, [256, 256, 256], 32), (8, [8, 8, 8], 1)]
"""(d_in, widths, batch): the first as the issue measured it, where the device's compute hides
part of the check; the second tiny, so that the call is host-bound and the check shows whole."""


def per_call_ms(unchecked: Callable[[], object], checked: Callable[[], object], number: int = 200, repeat: int = 15) -> tuple[float, float]:
    """The fastest run's time of one call of each, in ms (as ``timeit`` advises: slower runs
    measure other load on the machine); runs alternate so that load drifts hit both alike."""
    runs: tuple[list[float], list[float]] = ([], [])
    for f in (unchecked, checked):
        jax.block_until_ready(f())
    for _run in range(repeat):
        for f, times in zip((unchecked, checked), runs):
            start = time.perf_counter()
            for _call in range(number):
                jax.block_until_ready(f())
            times.append((time.perf_counter() - start) / number * 1e3)
    return min(runs[0]), min(runs[1])


def zephyr_call(on: bool, f: Callable[[], object]) -> Callable[[], object]:
    def call() -> object:
        with checking(on):
            return f()

    return call


class MLP(eqx.Module):
    layers: list[eqx.nn.Linear]

    def __init__(self, key: Array, d_in: int, widths: list[int]) -> None:
        keys = jax.random.split(key, len(widths))
        sizes = [d_in, *widths]
        self.layers = [eqx.nn.Linear(i, o, key=k) for i, o, k in zip(sizes[:-1], sizes[1:], keys)]

    def __call__(self, x: Array) -> Array:
        for i, layer in enumerate(self.layers):
            x = jax.vmap(layer)(x)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x


_forward = eqx.filter_jit(MLP.__call__)  # the body in one dispatch: less noise around the check's cost


def apply(model: MLP, x: Float[Array, "batch d_in"]) -> Float[Array, "batch d_out"]:
    y: Array = _forward(model, x)
    return y


def main() -> None:
    key = jax.random.key(0)
    print("MLP, eager, ms per call (fastest run)")
    print(f"{'':62}{'unchecked':>10}{'checked':>10}{'cost':>10}")
    for d_in, widths, batch in SIZES:
        x = jnp.ones((batch, d_in))
        params = trace(nets.mlp, key, x, widths)
        zephyr_off, zephyr_on = per_call_ms(
            zephyr_call(False, lambda: nets.mlp(params, x, widths)), zephyr_call(True, lambda: nets.mlp(params, x, widths))
        )
        model = MLP(key, d_in, widths)
        checked = jaxtyped(typechecker=beartype)(apply)
        equinox_off, equinox_on = per_call_ms(lambda: apply(model, x), lambda: checked(model, x))
        size = f"{d_in} -> {widths}, batch {batch}"
        print(f"{'zephyr nets.mlp ' + size:62}{zephyr_off:10.3f}{zephyr_on:10.3f}{zephyr_on - zephyr_off:+10.3f}")
        print(f"{'equinox + jaxtyping/beartype ' + size:62}{equinox_off:10.3f}{equinox_on:10.3f}{equinox_on - equinox_off:+10.3f}")


if __name__ == "__main__":
    main()
