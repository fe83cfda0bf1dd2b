"""End-to-end training on a tiny model: outputs, exact resume after a kill, determinism."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from antlm import load_model
from antlm.config import build_config
from antlm.train.loop import train
from conftest import REPO, tiny_overrides

QUIET = lambda message: None  # noqa: E731


def _train(corpus, out, resume=False, **extra):
    return train(build_config(None, tiny_overrides(corpus, **extra)), out, resume=resume, log=QUIET)


def _weights(run: Path) -> dict:
    return load_file(str(run / "final" / "model.safetensors"))


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
def test_run_layout_metrics_and_load_model(text_corpus, tmp_path, backbone):
    out = tmp_path / "run"
    result = _train(text_corpus, out, **{"model.backbone": backbone})
    assert result["finished"] and result["steps"] == 25
    for name in ("config.yaml", "metrics.jsonl", "tokenizer.json", "run_info.json", "final/model.safetensors",
                 "final/config.json", "final/tokenizer.json"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "final" / "config.json").read_text())
    assert meta["backbone"] == backbone and meta["mlm_target_offset"] == (1 if backbone == "babyllama" else 0)
    rows = _rows(out)
    train_rows = [r for r in rows if r["split"] == "train"]
    assert {"step", "epoch", "phase", "objective", "loss", "lr", "tokens", "tokens_per_s"} <= set(train_rows[0])
    assert [r["objective"] for r in train_rows] == ["clm", "clm", "mlm", "mlm", "clm"]
    dev_rows = [r for r in rows if r["split"] == "dev"]
    assert all("dev_clm_loss" in r and "dev_mlm_loss" in r for r in dev_rows) and dev_rows[-1]["step"] == 25
    # Training lowers the loss from chance (ln 300 = 5.7).
    assert train_rows[-1]["loss"] < 4.5
    model, tokenizer = load_model(out)
    ids = torch.tensor([[1] + tokenizer.encode("the dog runs .").ids])
    assert model(ids, causal=True).shape == (1, ids.size(1), tokenizer.get_vocab_size())
    assert torch.equal(load_model(out / "final")[0].state_dict()[next(iter(model.state_dict()))],
                       model.state_dict()[next(iter(model.state_dict()))])


def test_same_seed_same_weights_and_metrics(text_corpus, tmp_path):
    _train(text_corpus, tmp_path / "a", **{"mlm.mask_rate_end": 0.05, "train.micro_batch_size": 4})
    _train(text_corpus, tmp_path / "b", **{"mlm.mask_rate_end": 0.05, "train.micro_batch_size": 4})
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "a")) == strip(_rows(tmp_path / "b"))


def test_gradient_accumulation_matches_full_batch(text_corpus, tmp_path):
    _train(text_corpus, tmp_path / "full", schedule="4st_clm+4st_mlm")
    _train(text_corpus, tmp_path / "accum", schedule="4st_clm+4st_mlm", **{"train.micro_batch_size": 2})
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "accum")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_resume_after_stop_is_bitwise_equal(text_corpus, tmp_path):
    _train(text_corpus, tmp_path / "whole", **{"model.dropout": 0.1})
    _train(text_corpus, tmp_path / "split", **{"model.dropout": 0.1, "train.max_steps": 13})
    assert not (tmp_path / "split" / "final").exists()
    _train(text_corpus, tmp_path / "split", resume=True, **{"model.dropout": 0.1})
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Dev losses are functions of the weights: equal at every step both runs evaluated.
    dev = lambda run: {r["step"]: r for r in _rows(run) if r["split"] == "dev"}  # noqa: E731
    whole, split = dev(tmp_path / "whole"), dev(tmp_path / "split")
    assert all(split[step] == row for step, row in whole.items())


def _cli(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "antlm", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigkill_then_resume_is_bitwise_equal(text_corpus, tmp_path):
    extra = {"schedule": "30st_clm+30st_mlm+20st_clm", "train.checkpoint_every": 3, "model.dropout": 0.1}
    _train(text_corpus, tmp_path / "whole", **extra)
    args = ["train", "--out", str(tmp_path / "killed")]
    for item in tiny_overrides(text_corpus, **extra):
        args += ["--set", item]
    kills = 0
    for delay in (0.0, 0.15, 0.35):
        proc = _cli(*args, *(["--resume"] if kills else []))
        checkpoints = tmp_path / "killed" / "checkpoints"
        deadline = time.time() + 60
        seen = len(list(checkpoints.glob("step_*"))) if checkpoints.exists() else 0
        # Wait for a new checkpoint, then kill at a varying moment after it (possibly mid-write).
        while time.time() < deadline and proc.poll() is None:
            if checkpoints.exists() and len(list(checkpoints.glob("step_*"))) > seen or \
               checkpoints.exists() and any(checkpoints.glob(".tmp-*")):
                break
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    proc = _cli(*args, "--resume")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
