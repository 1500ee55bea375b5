# One obvious command per task; the same locally and in CI. `make help` lists them.
SHELL := /bin/bash
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
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c 'import gpucloud' && touch $(STAMP)

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
fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

.PHONY: clean
clean: ## Remove the venv, caches and local databases
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis gpucloud.db gpucloud.db-wal gpucloud.db-shm
