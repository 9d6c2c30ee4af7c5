# zephyr: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zephyr-installed

.PHONY: demo test test-py typecheck docs stubs bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "zephyr needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,examples,docs]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/digits_cnn.py

test: test-py typecheck docs browser-check

test-py: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

# The stubs (stubs/zephyr/*.pyi, each linked from zephyr/<module>.pyi) must match the
# code (regenerate with `make stubs`); mypy checks the library and, through the stubs as a
# user sees them, every test and example; pyright checks everything; stubtest compares stubs
# and runtime. The five-checker matrix over tests/typing runs in test-py
# (tests/typing/test_checkers.py).
typecheck: $(STAMP)
	$(PY) -m zephyr.typing.stubgen --check
	$(PY) -m mypy zephyr tests examples
	$(PY) -m pyright
	$(PY) -m mypy.stubtest zephyr --mypy-config-file tests/typing/stubtest.ini --allowlist tests/typing/stubtest_allowlist.txt

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
	rm -rf $(VENV) .mypy_cache .pytest_cache dist build site

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
