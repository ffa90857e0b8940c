# Two entry points: `make demo` (the pipeline on the embedded demo data) and `make test`.
# Each creates .venv and installs the package into it on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: demo test venv bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m kvasir_tf.demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) tools/benchmark_data.py
	$(PY) tools/benchmark_train.py
	$(PY) tools/benchmark_convert.py

clean:
	rm -rf $(VENV) runs demo_data bench_results
