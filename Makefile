# The two commands: `make demo` and `make test`. Each sets up .venv from nothing but Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean browser

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch must be pinned exactly, before anything that depends on it (DESIGN.md, "Machine facts").
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

# Headless Chromium + chromedriver (Debian packages) for tests/explain/test_explain_browser.py.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	else sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; fi

test: $(STAMP) browser
	$(PY) -m ruff check src tests benchmarks tools
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/firereg demo --out runs/demo

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks tools

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
