# dl-train: `make train` runs the default experiment, `make test` the test suite.
# Both create .venv and install the package (editable, every extra and the dev tools) first.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ../shared/datasets

.PHONY: help install train test test-docs test-min mutate smoke lint bench docs clean

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
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=15

# Every dl-* command of the tutorials and how-tos, run as written (shortened: one batch per
# stage, 2 sweep trials): ~100 processes, so apart from make test's ~10 minutes; CI runs both.
test-docs: $(STAMP) ## run every command of the docs' tutorials and how-tos
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto -m docs_commands tests/test_docs_commands.py

# The declared floors, tested: a throwaway venv with every dependency of pyproject.toml at
# the lowest release its range admits (scripts/min_constraints.py), then a fast subset: a
# training run + dl-eval, a 2-trial sweep, resume. torch/torchvision are the exception: pip
# here takes them only from local disk, so they come at the newest release it allows.
MIN_VENV ?= .venv-min
MIN_TESTS := tests/test_train.py::test_eval_reproduces_test_metrics_of_its_checkpoint \
	tests/test_resume.py::test_resume_auto_continues_and_resume_never_starts_fresh \
	tests/test_resume.py::test_ckpt_path_resumes_from_a_given_file \
	tests/test_sweep.py::test_digits_sweep_prunes_reports_and_continues
test-min: ## the fast subset on the lowest dependency versions pyproject.toml declares
	rm -rf $(MIN_VENV) && python3 -m venv $(MIN_VENV)
	@echo "installing the declared floors into $(MIN_VENV) (a few minutes)..."
	@$(MIN_VENV)/bin/pip install -q 'torch>=2.4,<3' 'torchvision>=0.19,<1' > $(MIN_VENV)/install.log 2>&1 \
	  || { cat $(MIN_VENV)/install.log; exit 1; }
	$(MIN_VENV)/bin/python scripts/min_constraints.py --extras dev > $(MIN_VENV)/constraints.txt
	@$(MIN_VENV)/bin/pip install -q -c $(MIN_VENV)/constraints.txt -e '.[dev]' >> $(MIN_VENV)/install.log 2>&1 \
	  || { cat $(MIN_VENV)/install.log; exit 1; }
	@$(MIN_VENV)/bin/pip freeze | grep -i -E '^(torch|lightning|hydra-core|optuna|pandas|scikit-learn|numpy)=='
	OMP_NUM_THREADS=1 $(MIN_VENV)/bin/python -m pytest -q -n 2 -p no:cacheprovider $(MIN_TESTS)

mutate: $(STAMP) ## mutation testing of the sweep rules and the table preprocessing (mutmut)
	@$(BIN)/pip install -q 'mutmut>=3.8,<4'
	scripts/mutate.sh sweep
	scripts/mutate.sh tabular

smoke: $(STAMP) ## every experiment config for one batch on the CPU: a pass/fail table
	$(BIN)/dl-smoke paths.data_dir=$(abspath $(DATA_DIR))

lint: $(STAMP) ## ruff
	$(BIN)/ruff check src tests scripts

bench: $(STAMP) ## speed/memory vs plain loops, start-up and cost curves (DATA_DIR=../shared/datasets)
	$(BIN)/python scripts/bench.py --data-dir $(DATA_DIR)
	$(BIN)/python scripts/bench_startup.py --data-dir $(DATA_DIR)
	$(BIN)/python scripts/bench_serve.py  # dl-serve: 1 and 8 clients, RSS; dl-predict start-up
	$(BIN)/python scripts/bench_export.py --data-dir $(DATA_DIR)  # checkpoint vs ONNX fp32 vs int8

docs: $(STAMP) ## build the documentation site into site/ (mkdocs build --strict: a warning fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean: ## remove run outputs (keeps .venv)
	rm -rf outputs/*/ bench.json
