"""For the whole pytest run (tests and doctests): strict JAX, run-time checking on, 8 CPU devices.

Set here, at the root, so that the settings do not depend on which files a worker collects.
"""

from __future__ import annotations

import os

os.environ.setdefault("ZEPHYR_TYPECHECK", "1")
# Eight CPU devices for the sharding tests; set before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
