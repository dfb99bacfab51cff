# dl-train: `make train` runs the default experiment, `make test` the test suite.
# Both create .venv and install the package (editable, every extra and the dev tools) first.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ../shared/datasets

.PHONY: help install train test smoke lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	@echo "installing dl-train and its dependencies into $(VENV) (about a minute)..."
	@$(BIN)/pip install -q -e '.[all,dev]' > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install dl-train (editable, [all,dev] extras)

train: $(STAMP) ## run the default experiment (digits, offline) and print test accuracy
	$(BIN)/dl-train

test: $(STAMP) ## run the test suite (and the layer contracts)
	$(BIN)/lint-imports --no-cache > /dev/null || $(BIN)/lint-imports --no-cache
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --durations=15

smoke: $(STAMP) ## every experiment config for one batch on the CPU: a pass/fail table
	$(BIN)/dl-smoke paths.data_dir=$(abspath $(DATA_DIR))

lint: $(STAMP) ## ruff
	$(BIN)/ruff check src tests scripts

bench: $(STAMP) ## speed/memory benchmarks vs plain loops (DATA_DIR=../shared/datasets)
	$(BIN)/python scripts/bench.py --data-dir $(DATA_DIR)

clean: ## remove run outputs (keeps .venv)
	rm -rf outputs/*/ bench.json
