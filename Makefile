# The Quickstart is `make run` and `make test`; both install into .venv on first use, with the
# test tools ([dev]) and the embedded S3 server `make run` starts without --upstream ([embedded]).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
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

# Load tests you watch (loadtests/ui.py): upstream, a seeded s3tier and locust's web UI on
# 127.0.0.1:8089; prints the URLs of locust and of s3tier's live page; Ctrl-C stops them all.
WORKLOAD ?= hot_set

.PHONY: loadtest-ui
loadtest-ui: $(STAMP)
	WORKLOAD='$(WORKLOAD)' $(BIN)/python loadtests/ui.py

.PHONY: loadtest
loadtest: $(STAMP)
	@$(BIN)/python -c 'import locust' 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev,embedded]'
	LOADTEST_RUN_TIME='$(LOADTEST_RUN_TIME)' LOADTEST_USERS='$(LOADTEST_USERS)' \
	LOADTEST_WORKLOADS='$(LOADTEST_WORKLOADS)' $(BIN)/python loadtests/run.py

# Side-by-side benchmark (BENCHMARKS.md, docs/bench/): s3tier and nginx rendered from
# ../shared/peers/nginx-proxy-cache.conf, over one moto upstream on loopback, driven by wrk and an
# aiohttp client; about 12 minutes. nginx and wrk come from Debian packages where missing.
# BENCH_QUICK=1: tiny and fast, written to a scratch folder; BENCH_REPEATS=N (default 3);
# BENCH_WORKLOADS=W1,W4 for a subset.
BENCH_QUICK ?=
BENCH_REPEATS ?=
BENCH_WORKLOADS ?=
BENCH_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: bench
bench: $(STAMP)
	@{ command -v wrk && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null 2>&1 || \
	  { $(BENCH_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx wrk || \
	    { $(BENCH_SUDO) apt-get update && \
	      $(BENCH_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx wrk; }; }
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install --quiet -e '.[dev,embedded]'
	BENCH_QUICK='$(BENCH_QUICK)' BENCH_REPEATS='$(BENCH_REPEATS)' \
	BENCH_WORKLOADS='$(BENCH_WORKLOADS)' $(BIN)/python benchmarks/bench.py

# Soak (issue 7): a headless locust run of mixed reads and writes against s3tier with tiny RAM and
# disk budgets, every body verified, RSS/fds/disk sampled; summary in docs/reliability-soak.md.
SOAK_DURATION ?= 600

.PHONY: soak
soak: $(STAMP)
	SOAK_DURATION='$(SOAK_DURATION)' $(BIN)/python loadtests/soak.py --summary docs/reliability-soak.md
