# Two commands from a fresh clone: `make smoke` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: install smoke test lint bench docs clean

# torch goes in first: on this machine torch==2.13.0 is a CPU wheel on disk; letting pip
# resolve torch through the project's dependencies could pull a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

smoke: install
	$(BIN)/lstmpipe smoke

LINTED := pipeline jobs benchmarks tests

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

test: lint
	$(BIN)/python -m pytest tests -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# docs/configuration.md is rendered from the schema (tests/unit/test_docs.py fails when it is stale).
docs: install
	$(BIN)/python -m pipeline.config.reference > docs/configuration.md

# Benchmarks B1-B12: benchmarks/RESULTS.md and the MLflow experiment `benchmarks`. B12 compares with
# neuralforecast and darts: the `benchmarks` extra, never a runtime dependency.
$(BIN)/.benchmarks: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev,benchmarks]"
	touch $@

bench: $(BIN)/.benchmarks
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) runs data mlflow.db mlruns mlartifacts .pytest_cache
