# One obvious command per task; the same locally and in CI. `make help` lists them.
SHELL := /bin/bash
# Every recipe line stops at its first failure, a failure anywhere in a pipe included.
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# pip's "WARNING: Location" noise is dropped; pip's own exit status is kept (pipefail), and
# the stamp is written only once everything succeeded. pip >= 25.1 reads dependency groups.
QUIET_PIP = 2>&1 | { grep -v '^WARNING: Location' || true; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1' $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet -e . --group dev $(QUIET_PIP)
	@$(BIN)/python -c 'import gpucloud'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install gpucloud with its development tools

.PHONY: run
run: $(STAMP) ## Migrate, create a demo API key if there is none, serve on 127.0.0.1:8000
	@$(BIN)/gpucloud db upgrade >&2
	@key=$$($(BIN)/gpucloud api-keys create --owner demo --if-none); \
	  if [ -n "$$key" ]; then echo; echo "Demo API key (owner demo): $$key"; echo; \
	  else echo "(The demo owner already has an API key; make another with: $(BIN)/gpucloud api-keys create --owner demo)"; fi
	exec $(BIN)/gpucloud serve --host $(HOST) --port $(PORT)

.PHONY: test
test: $(STAMP) ## Run the whole test suite (SQLite and PostgreSQL)
	$(BIN)/pytest $(PYTEST_ARGS)

LOWEST := .venv-lowest

.PHONY: test-lowest
test-lowest: ## Run the unit tests on the lowest versions pyproject.toml allows (in .venv-lowest)
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	@$(LOWEST)/bin/python -m pip install --quiet --upgrade 'pip>=25.1' $(QUIET_PIP)
	$(LOWEST)/bin/python .ci/lowest_constraints.py pyproject.toml > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/constraints.txt -e . --group test $(QUIET_PIP)
	$(LOWEST)/bin/python .ci/lowest_constraints.py --check pyproject.toml
	$(LOWEST)/bin/pytest tests/unit -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: screenshot
screenshot: $(STAMP) ## Retake docs/images/console.png, the README's picture of the console
	GPUCLOUD_SCREENSHOT=docs/images/console.png GPUCLOUD_TEST_REQUIRE_BROWSER=1 \
	  $(BIN)/pytest tests/browser/test_screenshot.py -p no:randomly -q

BENCH_ARGS ?=

.PHONY: bench
bench: $(STAMP) ## Benchmark against a bare-ASGI ceiling with wrk; BENCH_ARGS=--quick for a smoke run
	$(BIN)/python -m bench.run $(BENCH_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff and mypy (strict on src/)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## Auto-fix and format with ruff, the same paths make lint checks
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

.PHONY: clean
clean: ## Remove the venv, caches and local databases
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache .hypothesis gpucloud.db gpucloud.db-wal gpucloud.db-shm
