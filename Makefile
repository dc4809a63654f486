# Set-up, the default demo and the tests. torch is installed first, as torch==2.13.0: on
# this project's CI machines pip's index serves a local CPU build; elsewhere PyPI's Linux
# wheel is the CUDA build (several GB). On a CPU-only machine elsewhere, name torch's
# CPU-only wheel index: make setup TORCH_INDEX=<that index's URL> (torch's install page gives it).
VENV ?= .venv
# The interpreter the venv is built with: Python 3.11, the one the pinned set is installed
# for (requires-python in pyproject.toml); python3.11 if on PATH, else python3 if it is 3.11.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
TORCH_INDEX ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup setup-gguf demo quick estimate gflops test test-fast lint gpu-check clean-results

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "make setup: needs Python 3.11 (pyproject.toml: requires-python >=3.11,<3.12; torch 2.13.0's CPU build," \
	       "gptqmodel 7.6.0 and llmcompressor 0.14.0.1 are pinned for it), found '$(PYTHON)'" \
	       "($$($(PYTHON) --version 2>&1 || echo 'no such interpreter'));" \
	       "install Python 3.11 or run: make setup PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m compress_recover.config.offline
	touch $(STAMP)

setup: $(STAMP)

# llama.cpp (llama-cpp-python, pinned) for GGUF quant levels and the llama.cpp evaluation
# path: built from source once (about 3 min on 2 cores; gcc and cmake needed), the wheel
# cached in .wheels/ and reused. A portable x86-64 build (AVX2, FMA, F16C; no -march=native):
# the same wheel runs on every machine of the fleet, and llama.cpp's AMX kernels, which a
# native build enables on Intel Xeons with AMX, crashed (SIGSEGV in ggml_backend_amx_mul_mat) here.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_CMAKE := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
GGUF_STAMP := $(VENV)/.llama-cpp-installed

$(GGUF_STAMP): $(STAMP)
	@mkdir -p .wheels
	@ls .wheels/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "make setup-gguf: building llama-cpp-python $(LLAMA_CPP_VERSION) (llama.cpp from source, once)"; \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PY) -m pip wheel --quiet --no-deps "llama-cpp-python==$(LLAMA_CPP_VERSION)" -w .wheels/; }
	$(PY) -m pip install --quiet "diskcache==5.6.3" .wheels/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PY) -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
	touch $@

setup-gguf: $(GGUF_STAMP)

demo: setup
	snakemake --cores $(CORES)

# A quick look at the whole pipeline and its report (studies/quick.yaml: 50% Wanda only, 40
# questions per task, 10 training steps): in quick/, apart from the demo's results/. Not evidence.
quick: setup
	snakemake --cores $(CORES) --directory quick --configfile studies/quick.yaml

# This machine's speed (matmul GFLOPS per dtype and threads, a job's start-up): every time in
# the docs is given beside the GFLOPS of the machine that measured it.
gflops: setup
	$(PY) -m compress_recover.estimate --gflops

# Before a run: the predicted minutes per stage of the jobs `make demo` would run now, from a
# short probe of this machine (matmul GFLOPS per dtype and threads, a job's start-up); written
# to logs/estimate.json, which benchmarks/stage_times.py sets against the run afterwards.
estimate: setup
	$(PY) -m compress_recover.estimate --cores $(CORES)

test: setup setup-gguf
	$(PY) -m pytest -q -p no:cacheprovider --durations=10

# The unit tier (2-3 min; pyproject.toml's markers): no Snakemake, llama.cpp, browser or Slurm,
# no test over 2 s. Run it on every edit; `make test` (everything, what CI runs) before committing.
test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not workflow and not cuda" --durations=5

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
