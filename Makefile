# Cartero: `make run` brings the suite up locally; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint typecheck bench clean system-test-deps services

help:
	@echo "make run    start the whole suite locally (SQLite, local processes, local RabbitMQ)"
	@echo "make test   install what the tests need and run every test"
	@echo "make bench  run the benchmark harness (bench/results.json)"
	@echo "make lint   ruff + mypy"

# One virtualenv for the embedded mode; reinstalled when pyproject.toml changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed-local

run: $(VENV)/.installed-local
	@local/run.sh

# Debian packages the tests drive for real (browser, PHP client, Prometheus); root installs them.
system-test-deps:
	@local/install-test-deps.sh

# PostgreSQL and RabbitMQ (with its management API) up: started if installed but down.
services:
	@local/ensure-services.sh

test: $(VENV)/.installed-dev system-test-deps services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest

test-fast: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not e2e and not browser and not docker"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: $(VENV)/.installed-dev services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache test-artifacts
