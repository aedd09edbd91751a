# aqnet: `make up` runs the simulated network into a local TimescaleDB; `make test` runs the test suite.
# Both install whatever is missing first (system packages as root via deploy/install-system.sh, then .venv).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.aqnet-installed
ARGS ?=
PYTEST_ARGS ?=
#: pytest-xdist workers for `make test` (the integration tests mostly wait on I/O: more workers than cores pay)
TEST_WORKERS ?= 4

.PHONY: up test test-fast system venv lint bench soak clean-var docs

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

# Two tiers of tests. `make test` is what CI runs: ruff, the import contracts and mypy (cheapest first), then every
# test — the pure tests and the
# integration tests (marker `integration`: they start real TimescaleDB clusters, Mosquitto brokers, Modbus servers,
# Alertmanager, SMTP/webhook receivers and aqnet daemons) — on $(TEST_WORKERS) pytest-xdist workers, each with its own
# services, temporary directories and block of ports; `--dist worksteal` lets an idle worker take queued tests from a
# busy one (the e2e tests, minutes in all, sit side by side in the collection). `make test-fast` runs the pure tests
# only (-m 'not integration': no service is started), for the edit-test loop.
test: system venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-fast: system venv
	$(VENV)/bin/python -m pytest -m 'not integration' -n 2 $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# the docs site (Sphinx + MyST + furo, docs/), strict: warnings and broken references are errors; -E reads every page
# again (the references are generated from the code). Open docs/_build/html/index.html
docs: venv
	$(VENV)/bin/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html

# the benchmarks need the `bench` extra (py-spy, matplotlib), installed once into .venv (again when pyproject.toml
# changes). `make bench` runs every benchmark and closes with issue 19's table (goal met or missed, each against a
# baseline of the same run; ARGS="--json bench.json" also writes it as JSON); where a goal is missed it shows where
# the time goes with py-spy, which needs ptrace permission (as root it has it; otherwise
# `sudo sysctl kernel.yama.ptrace_scope=0`). `make soak` (not part of `make test`) runs the daemon under the
# simulated network plus the 10,000-sensor rate for 30 minutes (ARGS="--minutes 5" to shorten) and writes a table
# and a plot into var/soak/<time>/
BENCH_STAMP := $(VENV)/.aqnet-bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	@$(VENV)/bin/python -m pip install -q -e '.[bench]'
	@touch $(BENCH_STAMP)

bench: system venv $(BENCH_STAMP)
	@$(VENV)/bin/python -c "from bench.spy import ptrace_hint; h = ptrace_hint(); h and print('make bench:', h)"
	$(VENV)/bin/python -m bench $(ARGS)

soak: system venv $(BENCH_STAMP)
	$(VENV)/bin/python -m bench soak $(ARGS)

# stop `aqnet up` first; as root, ./var holds links to directories under /var/lib/aqnet: delete those too
clean-var:
	@for link in var/*; do [ -L "$$link" ] && rm -rf "$$(readlink -f "$$link")"; done; rm -rf var
