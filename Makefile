# Set-up, the default demo and the tests. torch is installed first as torch==2.13.0 so
# that pip takes the local CPU build instead of the CUDA wheels.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test lint gpu-check clean-results

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	snakemake --cores $(CORES)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=10

# On a machine with CUDA: the tests marked cuda and the tiny workflow on device: cuda, each
# stage's time (budget 8 min); without CUDA it says it was skipped and why, and exits 0.
gpu-check: setup
	$(PY) tests/gpu_check.py

lint: setup
	snakemake --lint
	snakefmt --check Snakefile rules/

clean-results:
	rm -rf results/* logs .snakemake
	touch results/.gitkeep
