# aqnet: `make up` runs the simulated network into a local TimescaleDB; `make test` runs the test suite.
# Both install whatever is missing first (system packages as root via deploy/install-system.sh, then .venv).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.aqnet-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: up test system venv lint bench clean-var docs

system:
	@bash deploy/install-system.sh

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --upgrade pip
	@$(VENV)/bin/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

up: system venv
	$(VENV)/bin/aqnet up $(ARGS)

test: system venv
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# the docs site (Sphinx + MyST + furo, docs/), strict: warnings and broken references are errors; -E reads every page
# again (the references are generated from the code). Open docs/_build/html/index.html
docs: venv
	$(VENV)/bin/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html

bench: system venv
	$(VENV)/bin/python -m bench

# stop `aqnet up` first; as root, ./var holds links to directories under /var/lib/aqnet: delete those too
clean-var:
	@for link in var/*; do [ -L "$$link" ] && rm -rf "$$(readlink -f "$$link")"; done; rm -rf var
