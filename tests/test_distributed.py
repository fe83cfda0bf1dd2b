"""torchrun data parallelism on CPU (gloo): 2 ranks equal 1 process with the same global batch."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, tiny_overrides


def _run(corpus, out, nproc, extra=()):
    args = []
    for item in tiny_overrides(corpus, schedule="10st_clm+10st_mlm", **{"train.log_every": 1, "train.micro_batch_size": 2}):
        args += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    result = subprocess.run([*launcher, "-m", "antlm", "train", "--out", str(out), *args, *extra],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("done: ") == 1, result.stderr[-3000:]  # rank 0 alone sums up the run
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_two_ranks_match_one_process(text_corpus, tmp_path):
    one = _run(text_corpus, tmp_path / "one", 1)
    two = _run(text_corpus, tmp_path / "two", 2)
    losses = lambda rows: [r["loss"] for r in rows if r["split"] == "train"]  # noqa: E731
    assert len(losses(one)) == 20
    # metrics.jsonl rounds losses to 5 decimals, so two values whose true difference is below 1e-5
    # may be logged 2e-5 apart: the bound sits above that, not at the rounding step.
    assert max(abs(a - b) for a, b in zip(losses(one), losses(two))) < 3e-5
    dev = lambda rows: [r["dev_mlm_loss"] for r in rows if r["split"] == "dev"]  # noqa: E731
    assert max(abs(a - b) for a, b in zip(dev(one), dev(two))) < 1e-4
    a, b = load_file(str(tmp_path / "one/final/model.safetensors")), load_file(str(tmp_path / "two/final/model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    info = json.loads((tmp_path / "two" / "run_info.json").read_text())
    assert info["world_size"] == 2


def test_resume_on_a_different_number_of_ranks(text_corpus, tmp_path):
    whole = _run(text_corpus, tmp_path / "whole", 1)
    _run(text_corpus, tmp_path / "mixed", 2, ["--set", "train.max_steps=10"])
    resumed = _run(text_corpus, tmp_path / "mixed", 1, ["--resume"])
    a = load_file(str(tmp_path / "whole/final/model.safetensors"))
    b = load_file(str(tmp_path / "mixed/final/model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    assert [r["step"] for r in resumed if r["split"] == "train"] == [r["step"] for r in whole if r["split"] == "train"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_two_ranks_match_one_process_with_a_teacher(text_corpus, tmp_path):
    from antlm.config import build_config
    from antlm.train.loop import train

    teacher = tmp_path / "teacher"
    train(build_config(None, tiny_overrides(text_corpus, schedule="5st_clm+5st_mlm", **{"model.hidden_size": 48})),
          teacher, log=lambda message: None)
    extra = ["--set", f"data.tokenizer={teacher / 'tokenizer.json'}", "--set", f"distill.teachers=[{teacher}]",
             "--set", "distill.scale=reference"]
    one = _run(text_corpus, tmp_path / "one", 1, extra)
    two = _run(text_corpus, tmp_path / "two", 2, extra)
    losses = lambda rows: [r["loss"] for r in rows if r["split"] == "train"]  # noqa: E731
    assert len(losses(one)) == 20
    # metrics.jsonl rounds losses to 5 decimals: allow a few units of the last place
    assert max(abs(a - b) for a, b in zip(losses(one), losses(two))) < 3e-5
    a, b = load_file(str(tmp_path / "one/final/model.safetensors")), load_file(str(tmp_path / "two/final/model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
