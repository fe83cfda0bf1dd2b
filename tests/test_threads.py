"""antlm sets OMP_WAIT_POLICY=PASSIVE before torch loads, unless the user chose a policy (antlm/threads.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = "import os, sys; {first}import antlm; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy(first: str = "", **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=environ, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_passive_is_set_before_torch_loads():
    assert _policy() == "PASSIVE"


@pytest.mark.parametrize("value", ["ACTIVE", "passive"])
def test_the_users_policy_is_kept(value):
    assert _policy(OMP_WAIT_POLICY=value) == value


def test_no_policy_once_torch_is_loaded_first():
    # Too late to reach the OpenMP runtime: setting it would only mislead run_info.json.
    assert _policy(first="import torch; ") == "None"

