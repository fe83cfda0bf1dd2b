#!/usr/bin/env bash
# Create (or update) a virtual environment and install what `make demo` / `make test` need.
#   scripts/setup_venv.sh VENV PACKAGE_SPEC [PACKAGE_SPEC ...]
# torch is pinned to the CPU build 2.13.0 when the environment has no torch: a bare `torch`
# requirement can pull a multi-GB CUDA build. uv (from the registry, ~15 s for everything on a
# warm index) installs the rest; where uv cannot be had, pip does the same steps, only slower.
set -euo pipefail
venv=$1; shift
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
py="$venv/bin/python"

# uv reads neither pip.conf nor PIP_* variables: hand it pip's local wheel folders (where a
# machine keeps its CPU torch build, for example) so both installers see the same packages.
links=$( { "$py" -m pip config get global.find-links 2>/dev/null || true; echo "${PIP_FIND_LINKS:-}"; } | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')
uv_args=()
for link in $links; do uv_args+=(--find-links "$link"); done

if "$py" -m uv --version >/dev/null 2>&1 || "$py" -m pip install -q uv >/dev/null 2>&1; then
  install() { "$py" -m uv pip install -q --python "$py" "${uv_args[@]}" "$@"; }
else
  echo "setup: uv is not available, installing with pip (slower)" >&2
  install() { "$py" -m pip install -q "$@"; }
fi
"$py" -c "import torch" 2>/dev/null || install "torch==2.13.0"
install "$@"
