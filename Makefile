# Set-up and entry points. `make run` and `make test` work on a fresh machine: they create .venv and
# install everything first. The CPU build of torch is pinned here, not in pyproject.toml, so that GPU
# users keep their own build; an unpinned torch would pull a multi-GB CUDA wheel on a CPU machine.
# Every other version is the lock's (requirements.lock, `make lock`), the versions the images install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# uv writes the lock and pip-audit checks it, at the versions pinned here, from a venv of their own: inside .venv
# (ignored by git, removed by `make clean`), never on the project's path, so they change none of its versions.
TOOLS := $(VENV)/tools
TOOLS_SPEC ?= uv==0.13.9 pip-audit==2.10.1
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release that fits, `LOCK_FLAGS="-P NAME"` one;
# without, the pins already in the lock are kept where they still fit.
LOCK_FLAGS ?=
# The vulnerability database `make audit` asks (OSV, https://osv.dev; `pypi` is PyPI's own), and how long it waits
# for an answer (seconds) before failing.
AUDIT_SERVICE ?= osv
AUDIT_TIMEOUT ?= 30
# The lock's header, written by `make lock` above what uv resolves.
define LOCK_HEADER
# Every version the images install, pinned (name==version). Do not edit: `make lock` writes it with uv pip compile
# from pyproject.toml's dependencies and its `gpu` extra, resolved for CPython 3.11 on x86_64 Linux (the images'
# python:3.11-slim), torch held at the Makefile's TORCH_SPEC. `make lock LOCK_FLAGS=--upgrade` moves every pin,
# `make lock LOCK_FLAGS="-P NAME"` one; `make audit` checks them for known vulnerabilities.
# Installed under it (pip install -c requirements.lock): both images (docker/; the CPU one installs no extra, so the
# gpu extra's pins constrain nothing there) and `make install`'s .venv, so the tests run the images' versions.
# Not in it: torch's CUDA runtime (nvidia-* libraries, cuda-*, triton), which each torch build pins exactly itself
# (the GPU image's torch comes from the PyTorch CUDA index; the CPU build has none); and hashes, since torch and
# torchvision are installed as builds of the PyTorch index (+cpu, +cu128) whose files are not PyPI's.
endef
export LOCK_HEADER
export MLFLOW_DISABLE_TELEMETRY = true
export DO_NOT_TRACK = true
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install run test lint test-unit test-integration compile bench clean lock audit

# The lock holds every version the images install, so the tests run with those (the test tools, not in the images,
# are free).
$(STAMP): pyproject.toml Makefile $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[test]"
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

$(TOOLS)/.installed: Makefile
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet $(TOOLS_SPEC)
	touch $@

# The lock: pyproject.toml's dependencies and its `gpu` extra resolved for the images (CPython 3.11 on x86_64 Linux,
# glibc 2.36 or newer), torch held at TORCH_SPEC. Left out (awk): torch's CUDA runtime (nvidia-* but nvidia-ml-py,
# cuda-*, triton), which PyPI's torch, a CUDA build, brings; each torch build pins its own exactly and the CPU build
# has none. Run it after an edit of the dependencies in pyproject.toml or of TORCH_SPEC.
lock: $(TOOLS)/.installed
	printf '%s\n' "$(TORCH_SPEC)" | $(TOOLS)/bin/uv pip compile --quiet pyproject.toml - --extra gpu \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_36 --annotation-style line --no-header \
	    $(LOCK_FLAGS) --output-file $(LOCK)
	{ printf '%s\n' "$$LOCK_HEADER"; awk '!/^(nvidia-|cuda-|triton==)/ || /^nvidia-ml-py==/' $(LOCK); } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# Known vulnerabilities of every locked version (not part of `make test`: it needs the database, on the network).
audit: $(TOOLS)/.installed
	$(TOOLS)/bin/pip-audit --requirement $(LOCK) --no-deps --disable-pip --strict --progress-spinner off \
	    --vulnerability-service $(AUDIT_SERVICE) --timeout $(AUDIT_TIMEOUT) \
	    || { echo "make audit: failed: a known vulnerability, or $(AUDIT_SERVICE) not reached (above)" >&2; exit 1; }

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
