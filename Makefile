# Everything here works from a fresh clone with nothing but Python 3.11+: PostgreSQL and Temporal come
# from PyPI wheels. `make run` starts the whole service; `make test` runs `make lint` and the whole test suite.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --quiet --disable-pip-version-check
RUN_ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite mostly waits on PostgreSQL and Temporal, so more processes than
# cores pay. Each has its own database, Temporal servers and app; a file's tests stay in one process.
TEST_WORKERS ?= 3
QUICK ?=
SERVE ?=

# Stamps: re-install only when pyproject.toml changes (or the venv is new).
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.DEFAULT_GOAL := help
.PHONY: help run test lint migrate docs bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is needed; run e.g. 'make PYTHON=python3.11 ...'" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP) ## Start PostgreSQL, Temporal (+UI), the worker and the API; Ctrl-C stops all
	exec $(BIN)/prm run $(RUN_ARGS)

test: $(TEST_STAMP) ## make lint, then the whole pytest suite (DATABASE_URL or an embedded PostgreSQL)
	@# The browser test needs Debian's chromium: installed here as root (or with passwordless sudo).
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=no; fi; \
		if [ "$$sudo" = no ] || ! command -v apt-get >/dev/null 2>&1; then \
			echo "make test: chromium is missing (apt-get install chromium, as root); the browser test" \
				"will be skipped (under CI=true it fails)" >&2; \
		else \
			$$sudo apt-get update -q && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
		fi; }
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(TEST_STAMP) ## ruff check, ruff format --check, mypy over every package, import-linter's layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core api domain cli workflows activities worker.py scripts bench
	$(BIN)/lint-imports

migrate: $(RUN_STAMP) ## Apply database migrations (DATABASE_URL or the embedded database)
	$(BIN)/prm db upgrade

# The generated pages (settings, CLI) are rewritten from the code first, then the site is built strictly
# (a broken link or a page missing from the nav fails); SERVE=1 serves it with live reload instead.
docs: $(TEST_STAMP) ## Regenerate the reference pages and build the site into site/ (SERVE=1: serve it on :8001)
	$(BIN)/python -m scripts.gen_docs
ifeq ($(SERVE),)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict
else
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve --strict --dev-addr 127.0.0.1:8001
endif

# `make bench`: every benchmark, figures into BENCHMARKS.md (about an hour and a half, most of it seeding
# millions of rows). `make bench QUICK=1`: the same benchmarks, small, in a few minutes, figures into
# BENCHMARKS.quick.md (git-ignored) so a smoke run never replaces the documented ones.
ifeq ($(QUICK),)
BENCH_ENV :=
BENCH_HTTP := --patients 20000 --duration 20 --runs 2
BENCH_LADDER := --duration 15
BENCH_PATIENTS := --scale 1 --requests 200
BENCH_MESSAGES := --scale 1 --requests 100
BENCH_JOURNEYS := --instances 200 --concurrency 20
BENCH_WORKER_MEMORY := --instances 2000
BENCH_DASHBOARD := --appointments 1000000 --communications 5000000 --requests 30 --writes 10000
BENCH_COHORTS := --scale 1 --requests 30
BENCH_CAMPAIGNS := --patients 10000
BENCH_PACING := --patients 700 --rate 10
BENCH_MESSAGE_CAMPAIGN := --patients 1000000 --reference-messages 500
else
BENCH_ENV := PRM_BENCHMARKS_FILE=BENCHMARKS.quick.md
BENCH_HTTP := --patients 5000 --duration 5 --runs 1 --scenarios get_patient,list,create,mixed
BENCH_LADDER := --duration 3
BENCH_PATIENTS := --quick
BENCH_MESSAGES := --quick
BENCH_JOURNEYS := --instances 20 --concurrency 5 --rounds 1
BENCH_WORKER_MEMORY := --instances 200 --cache-sizes 50,200
BENCH_DASHBOARD := --appointments 20000 --communications 50000 --requests 5 --writes 200
BENCH_COHORTS := --quick
BENCH_CAMPAIGNS := --patients 300
BENCH_PACING := --patients 400 --rate 5
BENCH_MESSAGE_CAMPAIGN := --patients 3000 --reference-messages 50
endif

bench: $(RUN_STAMP) ## Every benchmark into BENCHMARKS.md (QUICK=1: a few minutes, into BENCHMARKS.quick.md)
	@# The HTTP benchmark drives the API with Debian's wrk: installed here as root (or with passwordless sudo).
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=no; fi; \
		if [ "$$sudo" = no ] || ! command -v apt-get >/dev/null 2>&1; then \
			echo "make bench: wrk is missing (apt-get install wrk, as root); the HTTP benchmark will say so" >&2; \
		else \
			$$sudo apt-get update -q && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; \
		fi; }
	@command -v pgbench >/dev/null 2>&1 || echo "make bench: pgbench is missing (Debian's postgresql-client):" \
		"the pgbench -S reference is skipped" >&2
	$(BENCH_ENV) $(BIN)/python -m bench.http_load $(BENCH_HTTP)
	$(BENCH_ENV) $(BIN)/python -m bench.request_ladder $(BENCH_LADDER)
	$(BENCH_ENV) $(BIN)/python -m bench.patient_search $(BENCH_PATIENTS)
	$(BENCH_ENV) $(BIN)/python -m bench.communications_search $(BENCH_MESSAGES)
	$(BENCH_ENV) $(BIN)/python -m bench.journeys_bench $(BENCH_JOURNEYS)
	$(BENCH_ENV) $(BIN)/python -m bench.worker_memory $(BENCH_WORKER_MEMORY)
	$(BENCH_ENV) $(BIN)/python -m bench.analytics_dashboard $(BENCH_DASHBOARD)
	$(BENCH_ENV) $(BIN)/python -m bench.cohort_preview $(BENCH_COHORTS)
	$(BENCH_ENV) $(BIN)/python -m bench.campaigns_bench $(BENCH_CAMPAIGNS)
	$(BENCH_ENV) $(BIN)/python -m bench.pacing_bench $(BENCH_PACING)
	$(BENCH_ENV) $(BIN)/python -m bench.message_campaign_bench $(BENCH_MESSAGE_CAMPAIGN)

clean: ## Remove build and tool caches (never .venv, never the data in .prm/)
	rm -rf build dist site *.egg-info .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
