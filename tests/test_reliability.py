"""Numerical faults, the run lock, damaged checkpoints."""
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from antlm.config import build_config
from antlm.train import checkpoint as ckpt
from antlm.train.loop import train
from antlm.train.setup import RunError, lock_out_dir
from conftest import REPO, tiny_overrides

QUIET = lambda message: None  # noqa: E731


def test_nonfinite_steps_are_skipped(text_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTLM_FAULT_NAN_STEPS", "3,4")
    messages = []
    result = train(build_config(None, tiny_overrides(text_corpus)), tmp_path / "run", log=messages.append)
    assert result["finished"] and sum("update skipped" in m for m in messages) == 2
    rows = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"skipped_steps": 2' in line]
    assert len(rows) == 1 and '"loss": NaN' not in rows[0]
    weights = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_too_many_nonfinite_steps_stop_the_run(text_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTLM_FAULT_NAN_STEPS", ",".join(str(i) for i in range(12, 20)))
    with pytest.raises(RunError, match="non-finite"):
        train(build_config(None, tiny_overrides(text_corpus, **{"train.max_bad_steps": 3})), tmp_path / "run", log=QUIET)
    kept = ckpt.latest_valid(tmp_path / "run" / "checkpoints", QUIET)
    assert kept is not None and kept.name == "step_00000010"
    assert not (tmp_path / "run" / "final").exists()


def test_second_run_on_a_locked_dir_is_refused(text_corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    held = lock_out_dir(out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [a for item in tiny_overrides(text_corpus) for a in ("--set", item)]
    result = subprocess.run([sys.executable, "-m", "antlm", "train", "--out", str(out), *args],
                            env=env, capture_output=True, text=True, timeout=120)
    held.close()
    assert result.returncode == 2 and "in use by another antlm process" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".antlm.lock"]


def test_damaged_checkpoint_falls_back_to_the_previous(text_corpus, tmp_path):
    out = tmp_path / "run"
    train(build_config(None, tiny_overrides(text_corpus, **{"train.max_steps": 20})), out, log=QUIET)
    newest = ckpt.list_checkpoints(out / "checkpoints")[-1]
    with open(newest / "model.safetensors", "r+b") as handle:
        handle.truncate(100)
    assert "checksum" in ckpt.verify(newest)
    with pytest.raises(ckpt.CheckpointError, match="model.safetensors"):
        ckpt.load_checkpoint(newest, torch.nn.Linear(1, 1), torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1))
    messages = []
    train(build_config(None, tiny_overrides(text_corpus)), out, resume=True, log=messages.append)
    assert any("skipping damaged checkpoint" in m and newest.name in m for m in messages)
    assert any("resumed from" in m and "step_00000010" in m for m in messages)
