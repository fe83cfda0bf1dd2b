# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv, install
# torch==2.13.0 (CPU build) when the environment has no torch, then install antlm editable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo

.PHONY: demo test setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: setup
	$(PY) -m antlm demo --out $(DEMO_OUT) --force

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
