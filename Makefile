# Set-up, the default demo and the tests. torch is installed first as torch==2.13.0 so
# that pip takes the local CPU build instead of the CUDA wheels.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test lint clean-results

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

lint: setup
	snakemake --lint
	snakefmt --check Snakefile rules/

clean-results:
	rm -rf results/* logs .snakemake
	touch results/.gitkeep
