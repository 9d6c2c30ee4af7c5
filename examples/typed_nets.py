"""A net declared only by its signature: a params TypedDict with jaxtyping dims, no ``validate``.

``trace`` reads the shapes from the annotations (``d_in`` binds from ``x``, ``width`` and
``d_out`` from the int arguments of those names); the net is fitted to a sine for a few
steps; then, with run-time checking on (beartype + jaxtyping), a call with the wrong shapes
is caught with an error that names the argument and the dims:

    python examples/typed_nets.py
    python examples/typed_nets.py --help
"""

# jax leaves parts of its own signatures untyped (jit's and grad's wrappers): strict
# pyright would flag every use, so these three reports are off here.

from __future__ import annotations

import argparse
from typing import Annotated, TypedDict, cast

import jax
import jax.numpy as jnp
from jax import Array
import optax  # pyright: ignore[reportMissingTypeStubs]  # optax ships no py.typed marker
from jaxtyping import Float

from zephyr import trace
from zephyr.functools.partial import flexible
from zephyr.typing import checking


class MLPParams(TypedDict):
    """Two layers. The dims name the shapes; ``Annotated`` attaches an initializer."""

    hidden: Float[Array, "d_in width"]
    hidden_bias: Annotated[Float[Array, " width"], jax.nn.initializers.zeros]
    out: Float[Array, "width d_out"]
    out_bias: Annotated[Float[Array, " d_out"], jax.nn.initializers.zeros]


@flexible
def mlp2(
    params: MLPParams, x: Float[Array, "*batch d_in"], width: int, d_out: int
) -> Float[Array, "*batch d_out"]:
    """``(*batch, d_in) -> (*batch, d_out)``: relu(x @ hidden + b) @ out + b."""
    h = x @ params["hidden"]
    h = jax.nn.relu(h + jnp.broadcast_to(params["hidden_bias"], h.shape))
    y = h @ params["out"]
    return y + jnp.broadcast_to(params["out_bias"], y.shape)


def fit(params: MLPParams, x: Array, y: Array, steps: int, learning_rate: float) -> tuple[MLPParams, float]:
    """Adam on the mean squared error; returns the params and the final loss."""
    optimizer = optax.adam(learning_rate)

    def loss(p: MLPParams) -> Array:
        return jnp.mean((mlp2(p, x, 32, 1) - y) ** 2)

    @jax.jit
    def step(p: MLPParams, opt_state: optax.OptState) -> tuple[MLPParams, optax.OptState, Array]:
        value, grads = jax.value_and_grad(loss)(p)
        updates, opt_state = optimizer.update(grads, opt_state)
        return cast(MLPParams, optax.apply_updates(cast("optax.Params", p), updates)), opt_state, value

    opt_state = optimizer.init(cast("optax.Params", params))
    value = jnp.zeros(())
    for _step in range(steps):  # never `_`: that name is the placeholder's
        params, opt_state, value = step(params, opt_state)
    return params, float(value)


def main(argv: list[str] | None = None) -> str:
    """Trace, fit, and show two caught errors; returns the shape error's message."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="gradient steps (default: 300)")
    parser.add_argument("--learning-rate", type=float, default=0.02, help="Adam's learning rate (default: 0.02)")
    args = parser.parse_args(argv)

    x = jnp.linspace(-3.0, 3.0, 64).reshape(64, 1)
    y = jnp.sin(x)
    params = trace(mlp2, jax.random.key(0), x, 32, 1)  # typed: MLPParams
    shapes = {name: params[name].shape for name in ("hidden", "hidden_bias", "out", "out_bias")}
    print("params from the signature:", shapes)

    params, final = fit(params, x, y, args.steps, args.learning_rate)
    print(f"fitted sin(x) in {args.steps} steps: mean squared error {final:.4f}")

    with checking(True):  # or ZEPHYR_TYPECHECK=1 in the environment
        print("checked call, right shapes:", mlp2(params, x, 32, 1).shape)
        messages: list[str] = []
        for what, wrong in (
            ("3 features; the params were traced for 1", jnp.ones((64, 3))),
            ("integers where the signature says Float", jnp.ones((64, 1), jnp.int32)),
        ):
            try:
                mlp2(params, wrong, 32, 1)
            except (ValueError, TypeError) as error:
                messages.append(str(error))
                summary = "\n  ".join(str(error).splitlines()[:4])
                print(f"checked call, {what}: {type(error).__name__}:\n  {summary}")
        if len(messages) == 2:
            return messages[0]
    raise AssertionError("a wrong call was not caught")


if __name__ == "__main__":
    main()
