#!/usr/bin/env bash
# Create (or update) a virtual environment and install what `make demo` / `make test` need.
#   scripts/setup_venv.sh VENV PACKAGE_SPEC [PACKAGE_SPEC ...]
# torch is pinned to the CPU build 2.13.0 when the environment has no torch: a bare `torch`
# requirement can pull a multi-GB CUDA build. uv (from the registry, ~15 s for everything on a
# warm index) installs the rest; where uv cannot be had or cannot reach the registry, pip does the
# same steps, only slower.
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

# uv runs with its own certificate store: behind a proxy whose certificate only the system's store
# holds, uv fails ("invalid peer certificate: UnknownIssuer") where pip, which reads the system's
# store, gets through. So any failed uv install is tried again with pip, said in one line.
use_uv=
if "$py" -m uv --version >/dev/null 2>&1 || "$py" -m pip install -q uv >/dev/null 2>&1; then
  use_uv=1
else
  echo "setup: uv is not available, installing with pip (slower)" >&2
fi
uv_log=$(mktemp)
trap 'rm -f "$uv_log"' EXIT
install() {
  if [ -n "$use_uv" ]; then
    if "$py" -m uv pip install -q --python "$py" "${uv_args[@]}" "$@" 2>"$uv_log"; then
      return 0
    fi
    use_uv=
    echo "setup: uv failed ($(grep -v '^[[:space:]]*$' "$uv_log" | tail -n 1 | cut -c1-160)); installing with pip instead" >&2
  fi
  "$py" -m pip install -q "$@"
}
"$py" -c "import torch" 2>/dev/null || install "torch==2.13.0"
install "$@"
