"""The engine: trace a net abstractly, declare its leaves, initialize them (see README.md).

Public names are re-exported by ``zephyr``; this package holds their implementation.
"""
