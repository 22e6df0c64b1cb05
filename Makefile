# One command to run, one to test; each sets itself up in .venv on a fresh machine.
#   make run    the workflow on config/config.yaml with 2 cores (CONFIG=..., CORES=...)
#   make test   the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
CORES  ?= 2
CONFIG ?= config/config.yaml
# torch first and pinned: a bare "torch" requirement would pull the newest CUDA build
# (several GB) even on CPU-only machines. On a GPU cluster set TORCH to the build that
# matches the site's CUDA driver.
TORCH  ?= torch==2.13.0

export PATH := $(BIN):$(PATH)

.PHONY: setup run test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,mpi]"
	# `snakemake` with its --configfile checked first: one line for a missing or malformed
	# file, where Snakemake answers with a traceback (hinqs.loop.front)
	ln -sf hinqs-snakemake $(BIN)/snakemake
	# numba's kernels compiled once here, into its cache, not by every worker of the first run
	$(BIN)/python -m hinqs.steps.warm
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakemake --lint --configfile $(CONFIG)

clean:
	rm -rf results .snakemake
