# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv through
# scripts/setup_venv.sh (uv when the registry has it, else pip; torch==2.13.0 CPU build if the
# environment has no torch). The demo installs antlm's core dependencies only; the tests add the
# `test` extra (transformers, accelerate, minicons, tensorboard, wandb, pytest).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
GPU_CHECK_OUT ?= runs/gpu-check

.PHONY: demo test setup setup-test wheel clean gpu-check gpu-check-dry

setup: $(VENV)/.installed-core

$(VENV)/.installed-core: pyproject.toml scripts/setup_venv.sh
	PYTHON=$(PYTHON) scripts/setup_venv.sh $(VENV) -e .
	touch $@

setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed-core
	PYTHON=$(PYTHON) scripts/setup_venv.sh $(VENV) -e ".[test]"
	touch $@

demo: setup
	$(PY) -m antlm demo --out $(DEMO_OUT) --force

test: setup-test
	$(PY) -m pytest -q

# On the GPU machine (no network, no venv: its own python3 and packages); docs/performance.md.
gpu-check:
	scripts/gpu_check.sh $(GPU_CHECK_OUT)

gpu-check-dry: setup-test
	PYTHON=$(PY) scripts/gpu_check.sh $(GPU_CHECK_OUT) --cpu-dry-run

wheel: setup
	$(PY) -m uv build --wheel --out-dir dist . 2>/dev/null || $(PY) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) runs dist
