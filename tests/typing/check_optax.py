"""A train step with optax, typed with zephyr's ``Params`` and no cast (issue 23, point 7).

optax annotates ``apply_updates`` (and ``update``) with ``ArrayTree``, a union with ``int``,
``float`` and ``Iterable``; zephyr's ``Params`` is ``ParamsTree | Any``, so that result assigns
back to ``-> tuple[Params, OptState, Array]``, while the nets take a ``ParamsTree``: a
``Params`` value goes to a net, an ``int`` does not (``wrong_user_nets.py``).
"""

# optax ships no py.typed marker (pyright strict reports the import) and jax types
# value_and_grad as partly unknown: both opt-outs are for this file only.
# pyright: reportMissingTypeStubs=false, reportUnknownMemberType=false

from collections.abc import Callable

import jax
import optax
from jax import Array, random
from jax import numpy as jnp

from zephyr import nets, trace
from zephyr.functools.partial import flexible
from zephyr.functools.partial import placeholder_hole as _
from zephyr.typing import Params


@flexible
def model(params: Params, x: Array) -> Array:
    return nets.linear(params["out"], nets.mlp(params["mlp"], x, [8, 8]), 2)


optimizer = optax.sgd(1e-2)  # the module runs at import (doctest collection); optax 0.2.3's adam fails the suite's strict dtype promotion


def loss_fn(params: Params, x: Array, y: Array) -> Array:
    return jnp.mean((model(params, x) - y) ** 2)


def train_step(params: Params, opt_state: optax.OptState, x: Array, y: Array) -> tuple[Params, optax.OptState, Array]:
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def fit(x: Array, y: Array, steps: int) -> Params:
    params = trace(model, random.key(0), x)
    opt_state = optimizer.init(params)
    for _step in range(steps):
        params, opt_state, _loss = train_step(params, opt_state, x, y)
    return params


# The trained params go back to the nets, holed or not, with their types.
trained = fit(jnp.zeros((4, 3)), jnp.zeros((4, 2)), 2)
head: Callable[[Array], Array] = nets.linear(trained["out"], _, 2)
y: Array = model(trained, jnp.zeros((4, 3)))
