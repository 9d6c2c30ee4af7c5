"""Typing tests: user code checked by mypy and pyright through stubs/, never run."""
