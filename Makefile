# The Quickstart is `make run` and `make test`; both install into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/s3tier serve --host 127.0.0.1 --port 8080 $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check proxy tiering config tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache

# Load tests (loadtests/README.md): moto and s3tier on free loopback ports, seeded objects, one
# bounded headless locust run per workload; CSV and HTML reports in loadtests/results/.
LOADTEST_RUN_TIME ?= 30s
LOADTEST_USERS ?= 10
LOADTEST_WORKLOADS ?= hot_set parquet_ranges read_mostly cold_scan

.PHONY: loadtest
loadtest: $(STAMP)
	@$(BIN)/python -c 'import locust' 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev]'
	LOADTEST_RUN_TIME='$(LOADTEST_RUN_TIME)' LOADTEST_USERS='$(LOADTEST_USERS)' \
	LOADTEST_WORKLOADS='$(LOADTEST_WORKLOADS)' $(BIN)/python loadtests/run.py
