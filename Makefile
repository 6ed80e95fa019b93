# churn-pipeline: every target sets up the virtual environment it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/demo.yaml
AS_OF  ?=
TO     ?= csv
AS_OF_OPT := $(if $(AS_OF),--as-of $(AS_OF),)
# 2: the cores of the project's machines (the tests of the one trained model stay on one worker)
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help setup demo simulate validate features training-set train evaluate score export kpis campaign-report report test test-slow test-all lint bench clean clean-bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@

setup: $(VENV)/.installed ## Create .venv and install the project with the dev and spark extras

demo: setup ## Simulate a ~20k-customer company, validate, train, score and export the at-risk list
	$(BIN)/churn simulate --config $(CONFIG)
	$(BIN)/churn validate --config $(CONFIG)
	$(BIN)/churn train --config $(CONFIG)
	$(BIN)/churn score --config $(CONFIG) $(AS_OF_OPT)
	$(BIN)/churn export --config $(CONFIG) --to csv $(AS_OF_OPT)

simulate: setup ## Simulate the company of CONFIG
	$(BIN)/churn simulate --config $(CONFIG)

validate: setup ## Check the data source of CONFIG against the data contract
	$(BIN)/churn validate --config $(CONFIG)

features: setup ## Feature table as of AS_OF (default: last date in the data)
	$(BIN)/churn features --config $(CONFIG) $(AS_OF_OPT)

training-set: setup ## Rolling labelled snapshots for training
	$(BIN)/churn build-training-set --config $(CONFIG)

train: setup ## Train the candidates (LightGBM, logistic, blend), register the best, gate the champion
	$(BIN)/churn train --config $(CONFIG)

evaluate: setup ## Evaluate the champion on the out-of-time test snapshots
	$(BIN)/churn evaluate --config $(CONFIG)

score: setup ## Score active customers as of AS_OF into the at-risk list
	$(BIN)/churn score --config $(CONFIG) $(AS_OF_OPT)

export: setup ## Export the at-risk list of AS_OF to TO (csv, jsonl, webhook, postgres)
	$(BIN)/churn export --config $(CONFIG) --to $(TO) $(AS_OF_OPT)

kpis: setup ## Churn, retention, support, NPS and CLV KPIs per period and segment (written and printed)
	$(BIN)/churn kpis --config $(CONFIG)

campaign-report: setup ## Every retention campaign measured against its control group (saved customers, ROI)
	$(BIN)/churn campaign-report --config $(CONFIG)

report: setup ## One self-contained HTML report of the at-risk list of AS_OF (KPIs, tiers, reasons, model, drift, campaigns)
	$(BIN)/churn report --config $(CONFIG) $(AS_OF_OPT)

test: setup ## The test suite without the slow tests (end to end, Spark, fresh venv), on TEST_WORKERS processes (xdist)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow"

test-slow: setup ## Only the slow tests (CI runs them after `make test`)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m slow

test-all: setup ## Every test, slow ones included
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: setup ## Ruff lint and format check, and the import layers (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

bench: setup ## Benchmarks: speed at 1M customers and model quality (minutes; not part of the tests)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean: ## Remove generated data, the working dir and caches (keeps .venv and the benchmark companies)
	rm -rf data .churn .pytest_cache .ruff_cache

clean-bench: ## Remove the cached benchmark companies and figures (bench/out, about 1.5 GB)
	rm -rf bench/out
