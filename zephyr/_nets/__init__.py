"""Implementations of ``zephyr.nets``, one module per family."""
