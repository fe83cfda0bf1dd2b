"""antlm chooses the OpenMP wait behaviour before torch loads: a short spin on a quiet machine,
threads that sleep at once when other processes hold cores; never over the user's choice
(antlm/threads.py)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from antlm.threads import SPIN_COUNT, busy_cores, choose_wait

REPO = Path(__file__).resolve().parents[1]
PROBE = ("import os, sys; {first}import antlm; "
         "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def _settings(first: str = "", **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    environ.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=environ, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_the_choice_follows_the_machine():
    assert choose_wait(0) == {"GOMP_SPINCOUNT": SPIN_COUNT}
    assert choose_wait(1) == choose_wait(5) == {"OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.skipif(not Path("/proc/loadavg").is_file(), reason="needs Linux /proc/loadavg")
def test_a_busy_process_is_seen_and_makes_threads_sleep():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores() >= 1
        assert _settings() == "PASSIVE None"  # set on import, before torch loads
    finally:
        busy.kill()
        busy.wait()


def test_import_sets_one_of_the_two():
    assert _settings() in ("PASSIVE None", f"None {SPIN_COUNT}")


@pytest.mark.parametrize("variable,value", [("OMP_WAIT_POLICY", "ACTIVE"), ("OMP_WAIT_POLICY", "passive"),
                                            ("GOMP_SPINCOUNT", "300000")])
def test_the_users_choice_is_kept(variable, value):
    expected = {"OMP_WAIT_POLICY": "None", "GOMP_SPINCOUNT": "None", variable: value}
    assert _settings(**{variable: value}) == f"{expected['OMP_WAIT_POLICY']} {expected['GOMP_SPINCOUNT']}"


def test_nothing_set_once_torch_is_loaded_first():
    # Too late to reach the OpenMP runtime: setting it would only mislead run_info.json.
    assert _settings(first="import torch; ") == "None None"
