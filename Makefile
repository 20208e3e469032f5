# Set-up and entry points. `make run` and `make test` work on a fresh machine: they create .venv and
# install everything first. The CPU build of torch is pinned here, not in pyproject.toml, so that GPU
# users keep their own build; an unpinned torch would pull a multi-GB CUDA wheel on a CPU machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY = true
export DO_NOT_TRACK = true
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install run test lint test-unit test-integration compile bench clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

# The whole pipeline, every step through kfp.local, on the embedded demo data and tiny model.
run: $(STAMP)
	$(BIN)/seavl run

compile: $(STAMP)
	$(BIN)/seavl compile --output sealion_vl_pipeline.yaml

test: lint
	$(BIN)/python -m pytest tests -q --durations=8

lint: $(STAMP)
	$(BIN)/ruff check .

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_trainer --tiny   # on a GPU: without --tiny (Gemma-3-4B shape)
	$(BIN)/python -m tests.benchmarks.bench_cached_rerun
	$(BIN)/python -m tests.benchmarks.bench_validate

clean:
	rm -rf $(VENV) .seavl build *.egg-info
