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


def _fail_second_checkpoint(monkeypatch, code: int, message: str) -> None:
    """Make the second checkpoint's optimizer file fail as a full disk (or revoked permission) would."""
    real_save_file = ckpt.save_file
    calls = []

    def failing(tensors, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            with open(path, "wb") as handle:  # a partial file, as a real ENOSPC leaves behind
                handle.write(b"\0" * 64)
            raise OSError(code, message)
        return real_save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", failing)


@pytest.mark.parametrize("code,message", [(28, "No space left on device"), (13, "Permission denied")])
def test_failed_checkpoint_write_keeps_the_previous_and_resumes_exactly(text_corpus, tmp_path, monkeypatch, code, message):
    overrides = tiny_overrides(text_corpus, **{"train.max_steps": 30})
    reference = tmp_path / "reference"
    train(build_config(None, overrides), reference, log=QUIET)
    out = tmp_path / "run"
    _fail_second_checkpoint(monkeypatch, code, message)
    with pytest.raises(ckpt.CheckpointError) as raised:
        train(build_config(None, overrides), out, log=QUIET)
    text = str(raised.value)
    assert message in text and "step_00000020" in text and "step_00000010, is untouched" in text and "\n" not in text
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000010"]  # no partial copy left
    assert ckpt.verify(out / "checkpoints" / "step_00000010") is None
    monkeypatch.undo()
    train(build_config(None, overrides), out, resume=True, log=QUIET)
    got = load_file(str(out / "final" / "model.safetensors"))
    want = load_file(str(reference / "final" / "model.safetensors"))
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_cli_reports_a_full_disk_in_one_line(text_corpus, tmp_path):
    """Through the real CLI in a subprocess: ENOSPC at the first checkpoint, injected by a
    sitecustomize shim, ends with exit 2, one line, and no partial checkpoint on disk."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import errno, safetensors.torch as st\n"
        "def full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "st.save_model = full\n")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{REPO}"}
    args = [a for item in tiny_overrides(text_corpus, **{"train.max_steps": 12}) for a in ("--set", item)]
    result = subprocess.run([sys.executable, "-m", "antlm", "train", "--out", str(out), *args],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("antlm: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert not any(p.name.startswith(".tmp") for p in (out / "checkpoints").iterdir())


def test_unwritable_out_dir_is_a_one_line_error(text_corpus, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: directory permissions do not stop root (the checkpoint test covers EACCES)")
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        args = [a for item in tiny_overrides(text_corpus) for a in ("--set", item)]
        result = subprocess.run([sys.executable, "-m", "antlm", "train", "--out", str(out), *args],
                                env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    finally:
        out.chmod(0o700)
    assert result.returncode == 2 and "Permission denied" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_refused_resume_leaves_no_lock_file(text_corpus, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with pytest.raises(RunError, match="holds no run"):
        train(build_config(None, tiny_overrides(text_corpus)), out, resume=True, log=QUIET)
    assert list(out.iterdir()) == []
