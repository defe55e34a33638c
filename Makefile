# nst: run `make help` for the targets. Every target sets itself up from nothing.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: help setup lock repro test test-all lint bench ui mlflow-server docs docs-serve figure
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the pinned dependencies and nst in editable mode

$(STAMP): pyproject.toml requirements.lock scripts/setup.sh
	@PY=$(PY) VENV=$(VENV) bash scripts/setup.sh
	@touch $(STAMP)

lock: ## regenerate requirements.lock (every package pinned) from pyproject.toml
	@PY=$(PY) bash scripts/lock.sh

repro: setup ## run the whole pipeline (fetch -> studies -> reports) with DVC
	@bash scripts/repro.sh

test: setup ## run the fast test suite (slow tests: make test-all)
	$(BIN)/pytest -q

test-all: setup ## run every test, the slow ones included
	$(BIN)/pytest -q -m ""

lint: setup ## ruff and mypy
	$(BIN)/ruff check nst tests benchmarks
	$(BIN)/ruff format --check nst tests benchmarks
	$(BIN)/mypy

bench: setup ## speed and memory benchmarks, ratios against baselines run side by side
	$(BIN)/python -m benchmarks

ui: setup ## browse runs in the MLflow UI on 127.0.0.1:5000
	$(BIN)/nst ui

mlflow-server: setup ## MLflow server on 127.0.0.1:5001, PostgreSQL store (db mlflow), for many workers
	@BIN=$(BIN) bash scripts/mlflow_server.sh

docs: setup ## build the documentation site into site/ (MkDocs, strict: a warning fails it)
	$(BIN)/mkdocs build --strict

figure: setup ## draw docs/assets/methods-grid.png (the README's figure) from the methods comparison
	@bash scripts/figure.sh

docs-serve: setup ## serve the documentation on 127.0.0.1:8000, rebuilt on every edit
	$(BIN)/mkdocs serve -a 127.0.0.1:8000

.PHONY: exps
# scripts/exps.py: one table per study in 100 columns; `dvc exp show` with every study's columns
# folds them all into "…" below about 200
exps: setup ## compare DVC experiments: per study, best values, complete trials, profile, budget
	@set -o pipefail; $(BIN)/dvc exp show --json | $(BIN)/python scripts/exps.py
