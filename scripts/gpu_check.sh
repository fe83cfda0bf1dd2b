#!/usr/bin/env bash
# The first GPU session's one command (issue 23; benchmarks/gpu_check.py lists the parts):
#   scripts/gpu_check.sh OUT_DIR [--data DIR] [--budget SECONDS] [--only PART,...]
#   scripts/gpu_check.sh OUT_DIR --cpu-dry-run          # the same parts on CPU, tiny shapes (CI)
# Writes OUT_DIR/results.json, results.md and gpu_check.log. Set-up installs nothing: the GPU
# machine has no network, so antlm runs from this source tree on that machine's python3 and its
# packages (torch, transformers, tokenizers, safetensors, accelerate, pyyaml, pytest). A package it
# lacks can travel as wheels in .whl/ (the device notes say how); they are installed first.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
if compgen -G "$repo/.whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/antlm-site \
    "$repo"/.whl/*.whl && export PYTHONPATH="/tmp/antlm-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
missing=$("$py" -c '
import importlib.util as u
need = ["torch", "numpy", "tokenizers", "safetensors", "yaml", "tqdm", "transformers", "accelerate", "pytest"]
print(" ".join(n for n in need if u.find_spec(n) is None))')
if [ -n "$missing" ]; then
  # The parts that need them fail and say so; the others still run.
  echo "gpu_check: missing Python packages: $missing" >&2
fi
exec "$py" "$repo/benchmarks/gpu_check.py" "$@"
