# `make demo` and `make test` each do the whole set-up on a fresh clone: create .venv,
# install manyhands with its development dependencies and the Dask, plot and blas extras, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,dask,plot,blas]'
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,dask,plot,blas,bench]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/lecture.py

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples
	$(PY) -m mypy

# Bytecode compiled first, as an installed wheel has it (this machine sets PYTHONDONTWRITEBYTECODE).
bench: $(VENV)/.bench-installed
	$(PY) -m compileall -q src benchmarks
	$(PY) benchmarks/planner.py
	$(PY) benchmarks/run.py
	$(PY) benchmarks/faults.py
	$(PY) benchmarks/output_cost.py
	$(PY) benchmarks/large_data.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
