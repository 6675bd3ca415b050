# Assay: the two commands a fresh machine needs are `make demo` and `make test`.
# Every target installs what it needs first (Python venv, torch CPU build, npm tools).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.assay-installed
NODE_STAMP := node_modules/.assay-installed
PYTEST_ARGS ?=

.PHONY: all setup chromium test test-all lint demo contracts gas bench clean

all: test

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, from the local CPU build; the project's pin then installs nothing more.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet --no-warn-script-location -e '.[dev]'
	touch $@

# `npm install` rather than `npm ci`: the registry serves only this platform's Foundry
# binaries, so the lock file cannot list the other platforms' optional packages, and
# `npm ci` refuses a lock it considers out of sync.  With the lock present, `npm install`
# installs exactly the locked versions and leaves the lock unchanged.
$(NODE_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The API serves Swagger UI (npm swagger-ui-dist) from the package: copy it in at build.
VENDOR_STAMP := frontend_api/static/vendor/.assay-vendored
$(VENDOR_STAMP): $(NODE_STAMP) $(PY_STAMP) frontend_api/vendor.py
	$(PY) -m frontend_api.vendor
	touch $@

# The dashboard's browser tests drive Debian's Chromium through Playwright.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

setup: $(PY_STAMP) $(NODE_STAMP) $(VENDOR_STAMP) chromium

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: lint
	$(PY) -m pytest -m 'not gpu' $(PYTEST_ARGS)

contracts: setup
	$(PY) -m contracts.build

gas: setup
	$(PY) -m bench.gas

demo: setup
	$(PY) -m deploy.demo

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis var build \
		frontend_api/static/vendor test-artifacts
