# zephyr: `make demo` and `make test` work on a fresh machine with Python 3.11+.
#
# Two environments, so that the suite runs on the versions users have:
#   .venv         the newest Python there is (3.13, else 3.12, else 3.11) with the newest
#                 releases pip resolves (jax 0.12 on 3.12+): demo, typecheck, docs, stubs, bench.
#   .venv-oldest  Python 3.11, the oldest supported, with the lowest versions pyproject.toml
#                 allows (`uv pip install --resolution lowest-direct`): the declared lower
#                 bounds are the ones tested.
# `make test-py` runs the suite in both, oldest first; the oldest run leaves out the tests
# marked `once` (conftest.py: the checker matrix, the wheel builds).

# An interpreter that runs and is at least 3.11; pyenv's shims of versions not activated fail
# (quietly here) and the pyenv install paths are tried instead.
find_python = $(shell for p in $(1); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
PYENV_VERSIONS := $(HOME)/.pyenv/versions
# Probed once (:=), unless given: make PYTHON=... OLDEST_PYTHON=...
ifndef PYTHON
PYTHON := $(call find_python,python3.13 $(wildcard $(PYENV_VERSIONS)/3.13*/bin/python3) \
	python3.12 $(wildcard $(PYENV_VERSIONS)/3.12*/bin/python3) python3.11 python3)
endif
ifndef OLDEST_PYTHON
OLDEST_PYTHON := $(call find_python,python3.11 $(wildcard $(PYENV_VERSIONS)/3.11*/bin/python3))
endif

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zephyr-installed
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.zephyr-installed

PYTEST_ARGS ?= -n 2 --dist loadfile --durations=15
# The line before each run: which Python and which JAX it tests.
BANNER = -c 'import sys, jax, jaxlib; print(f"=== zephyr tests ($(1)): Python {sys.version.split()[0]}, jax {jax.__version__}, jaxlib {jaxlib.__version__} ===")'

.PHONY: demo test test-py test-py-oldest test-py-newest typecheck docs stubs bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "zephyr needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev,examples,docs]"  # uv: minutes faster than pip
	@touch $(STAMP)

$(OLDEST_STAMP): pyproject.toml
	@test -n "$(OLDEST_PYTHON)" || { echo "make test-py-oldest needs Python 3.11 (the oldest zephyr supports): \
	python3.11 on PATH or in $(PYENV_VERSIONS)/3.11*, or OLDEST_PYTHON=/path/to/python3.11"; exit 1; }
	@$(OLDEST_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	echo "OLDEST_PYTHON=$(OLDEST_PYTHON) is not Python 3.11"; exit 1; }
	rm -rf $(OLDEST_VENV)  # afresh: a lowest resolution must not keep what an older pyproject.toml installed
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet --upgrade pip uv
	$(OLDEST_VENV)/bin/uv pip install --quiet --python $(OLDEST_PY) --resolution lowest-direct -e ".[dev,examples]"
	@touch $(OLDEST_STAMP)

demo: $(STAMP)
	$(PY) examples/digits_cnn.py

test: test-py typecheck docs browser-check

test-py: test-py-oldest test-py-newest

test-py-oldest: $(OLDEST_STAMP)
	@$(OLDEST_PY) $(call BANNER,oldest)
	$(OLDEST_PY) -m pytest $(PYTEST_ARGS) -m "not once"

test-py-newest: $(STAMP)
	@$(PY) $(call BANNER,newest)
	$(PY) -m pytest $(PYTEST_ARGS)

# The stubs (stubs/zephyr/*.pyi, each linked from zephyr/<module>.pyi) must match the
# code (regenerate with `make stubs`); mypy checks the library and, through the stubs as a
# user sees them, every test and example; pyright checks everything; stubtest compares stubs
# and runtime. The five-checker matrix over tests/typing runs in test-py
# (tests/typing/test_checkers.py). Once, in .venv (the newest JAX).
# mypy then stubtest (one .mypy_cache) run beside pyright, one per core; mypy's lane prints
# after pyright's, so that their reports do not interleave.
typecheck: $(STAMP)
	$(PY) -m zephyr.typing.stubgen --check
	@log=$$(mktemp); \
	{ $(PY) -m mypy zephyr tests examples && \
	  $(PY) -m mypy.stubtest zephyr --mypy-config-file tests/typing/stubtest.ini --allowlist tests/typing/stubtest_allowlist.txt; \
	} >$$log 2>&1 & lane=$$!; \
	echo "$(PY) -m pyright  (beside: mypy zephyr tests examples, then stubtest)"; \
	$(PY) -m pyright; pyright=$$?; \
	wait $$lane; mypy=$$?; \
	echo "--- mypy, then stubtest:"; cat $$log; rm -f $$log; \
	test $$pyright -eq 0 && test $$mypy -eq 0

# The site (guide, API reference from the docstrings, examples) into site/. --strict: a
# broken link or cross-reference, a page left out of the nav, or a public name missing from
# docs/api/ (docs/hooks.py) fails the build. The guide's code blocks run in test-py
# (tests/test_readme.py). Browse it with `$(PY) -m mkdocs serve`. Not --quiet: it hides the
# warnings from --strict's count, and a broken cross-reference would pass.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

stubs: $(STAMP)
	$(PY) -m zephyr.typing.stubgen

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .mypy_cache .pytest_cache dist build site

# --- docs for users (issue 25): serve the site, check it in a browser, build the dist ---
.PHONY: docs-serve browser-check dist

# The site on http://127.0.0.1:8000/, rebuilt on each save, with search.
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

# The built site in headless Chromium (docs/browser_check.py): the landing page, an API page,
# searches, 404.html from disk; screenshots in out/browser/. Needs `chromium` (.ci/run
# installs it where missing).
browser-check: docs
	$(PY) docs/browser_check.py

# The wheel and sdist that docs/get-started.md installs, into dist/.
dist: $(STAMP)
	$(PY) -m build --no-isolation --outdir dist .
