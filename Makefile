# Everything a fresh machine needs: `make demo` runs the showcase, `make test` the suite.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv sandbox-tools demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: sandbox-tools $(STAMP)

# User code (Lambda functions, model servers, training jobs) runs under bubblewrap; install Debian's
# package where `bwrap` is missing (a no-op once it is there; needs root or sudo for apt-get).
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  echo "installing bubblewrap (the sandbox for user code)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap; }

demo: venv
	$(VENV)/bin/kennel demo

test: venv
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks examples

format: venv
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: venv
	$(PY) benchmarks/infer_throughput.py
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
