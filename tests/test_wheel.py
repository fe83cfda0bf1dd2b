"""The built wheel, installed into a fresh environment outside the repository, works on its own:
presets found by name, `antlm --version`, a short `antlm train --config tiny`, `antlm demo`, `antlm eval`.

A source checkout on sys.path would hide a missing package-data entry, so every command runs from
a temporary directory, with no PYTHONPATH, in a venv that has only the wheel (and torch) installed.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from antlm import __version__
from conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.slow
SMALL = ["data.embedded_sentences=800", "data.vocab_size=300", "data.seq_len=32", "model.max_seq_len=96",
         "model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.ffn_size=64",
         "train.batch_size=16", "train.threads=1"]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "dist", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache"))
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(source)], check=True, cwd=root)
    (wheel,) = dist.glob("antlm-*.whl")
    venv = root / "venv"
    subprocess.run(["bash", str(REPO / "scripts" / "setup_venv.sh"), str(venv), str(wheel)], check=True, cwd=root,
                   env={**os.environ, "PYTHON": sys.executable})
    work = root / "work"
    work.mkdir()
    return venv, work


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ANTLM_CORPUS")}
    return {**env, "OMP_NUM_THREADS": "1"}


def _antlm(installed, *args, timeout=600):
    venv, work = installed
    return subprocess.run([str(venv / "bin" / "antlm"), *args], cwd=work, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_wheel_is_self_contained(installed):
    venv, work = installed
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import antlm; print(antlm.__file__)"], cwd=work,
                           env=_env(), capture_output=True, text=True, check=True).stdout
    assert str(venv) in where and str(REPO) not in where
    version = _antlm(installed, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"antlm {__version__}"


def test_wheel_trains_the_tiny_preset_and_evaluates_it(installed):
    run = _antlm(installed, "train", "--config", "tiny", "--out", "runs/tiny", *_sets(SMALL + ["schedule=6st_clm+6st_mlm"]))
    assert run.returncode == 0, run.stderr
    assert "done: 12/12 steps" in run.stderr
    _, work = installed
    assert (work / "runs" / "tiny" / "final" / "model.safetensors").is_file()
    if not (SHARED_DATA / "blimp_filtered").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}: antlm eval not checked")
    scored = _antlm(installed, "eval", "runs/tiny", "--data", str(SHARED_DATA), "--tasks", "blimp", "--limit", "2",
                    "--out", "results.json")
    assert scored.returncode == 0, scored.stderr
    assert (work / "results.json").is_file()


def test_wheel_runs_the_demo(installed):
    demo = _antlm(installed, "demo", "--out", "runs/demo", *_sets(SMALL))
    assert demo.returncode == 0, demo.stderr
    assert "| **mean** |" in demo.stdout


def test_wheel_real_data_preset_asks_for_a_corpus(installed):
    refused = _antlm(installed, "train", "--config", "babyllama-antlm-4-16-4", "--out", "runs/x")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "antlm: error: babyllama-antlm-4-16-4 trains on a corpus in the BabyLM layout: "
        "pass --set data.corpus=DIR (or set $ANTLM_CORPUS)"]
