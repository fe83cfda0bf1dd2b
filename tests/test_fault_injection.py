"""benchmarks/fault_injection.py --quick: a run SIGKILLed at random moments (some in the middle of
writing a checkpoint) and resumed each time ends bitwise equal to an uninterrupted one; and the
crash leftovers a resume must cope with."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from antlm.config import build_config
from antlm.train.loop import train
from conftest import tiny_overrides

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_injection.py"
QUIET = lambda message: None  # noqa: E731


def _load_bench():
    spec = importlib.util.spec_from_file_location("fault_injection", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_fault_injection_ends_bitwise_equal(tmp_path, capsys):
    bench = _load_bench()
    work = tmp_path / "fi"
    code = bench.main(["--quick", "--seed", "1", "--out", str(work)])
    out = capsys.readouterr().out
    result = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1 and out.rstrip().splitlines()[-1] == result[0], out
    match = re.fullmatch(r"RESULT fault_injection kills=(\d+) equal=(true|false)", result[0])
    assert match, result[0]
    assert match[2] == "true" and int(match[1]) >= 4 and code == 0, out
    assert f"kills survived: {match[1]}" in out
    # The harness's comparison is not vacuous: one changed bit in one tensor makes it say so.
    final = work / "killed" / "final" / "model.safetensors"
    weights = load_file(str(final))
    name = sorted(weights)[0]
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] = torch.nextafter(weights[name].view(-1)[0], torch.tensor(float("inf")))
    save_file(weights, str(final))
    equal, how = bench.compare_weights(work / "reference" / "final" / "model.safetensors", final)
    assert not equal and "1/" in how


def test_resume_survives_a_torn_metrics_line(text_corpus, tmp_path):
    out = tmp_path / "run"
    train(build_config(None, tiny_overrides(text_corpus, **{"train.max_steps": 12})), out, log=QUIET)
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write('{"split": "train", "step": 13, "lo')  # what a crash in the middle of an append leaves
    result = train(build_config(None, tiny_overrides(text_corpus)), out, resume=True, log=QUIET)
    assert result["finished"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 25
