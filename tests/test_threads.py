"""antlm sets a short OpenMP spin (GOMP_SPINCOUNT) before torch loads, unless the user chose a wait
policy or a spin count (antlm/threads.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = ("import os, sys; {first}import antlm; "
         "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def _settings(first: str = "", **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    environ.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=environ, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_short_spin_is_set_before_torch_loads():
    from antlm.threads import SPIN_COUNT

    assert _settings() == f"None {SPIN_COUNT}"


@pytest.mark.parametrize("variable,value", [("OMP_WAIT_POLICY", "ACTIVE"), ("OMP_WAIT_POLICY", "passive"),
                                            ("GOMP_SPINCOUNT", "300000")])
def test_the_users_choice_is_kept(variable, value):
    expected = {"OMP_WAIT_POLICY": "None", "GOMP_SPINCOUNT": "None", variable: value}
    assert _settings(**{variable: value}) == f"{expected['OMP_WAIT_POLICY']} {expected['GOMP_SPINCOUNT']}"


def test_nothing_set_once_torch_is_loaded_first():
    # Too late to reach the OpenMP runtime: setting it would only mislead run_info.json.
    assert _settings(first="import torch; ") == "None None"
