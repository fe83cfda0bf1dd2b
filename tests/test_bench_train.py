"""benchmarks/train_throughput.py runs end to end (tiny model, embedded corpus) and prints its RESULT lines."""
import importlib.util
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # HF Trainer needs it

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
TINY = {
    "data.corpus": "embedded", "data.embedded_sentences": 2000, "data.vocab_size": 300, "data.seq_len": 32,
    "model.max_seq_len": 32, "model.hidden_size": 32, "model.num_layers": 2, "model.num_heads": 4,
    "model.ffn_size": 64, "train.batch_size": 8,
}


def _load_bench():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_prints_results(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANTLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bench = _load_bench()
    # --in-process: one process measures all four runs (the default spawns one worker process per
    # measurement, which costs an import of torch + transformers each: too slow for a unit test).
    argv = ["--quick", "--steps", "8", "--warmup", "2", "--threads", "2", "--in-process",
            "--out", str(tmp_path / "runs")]
    for key, value in TINY.items():
        argv += ["--set", f"{key}={value}"]
    report = bench.main(argv)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert [line.split()[1] for line in lines] == ["train_clm", "train_mlm"], out
    for line in lines:
        assert re.fullmatch(r"RESULT train_(clm|mlm) antlm=\d+ baseline=\d+ ratio=\d+\.\d\d", line), line
    assert out.rstrip().splitlines()[-2:] == lines  # the RESULT lines come last
    assert set(report) == {"clm", "mlm"} and all(r["antlm"] > 0 and r["baseline"] > 0 for r in report.values())
    # Both sides really trained: each left its run directory (antlm) or output dir (HF) behind.
    assert (tmp_path / "runs" / "antlm-mlm" / "metrics.jsonl").is_file()
    assert os.path.isdir(tmp_path / "runs" / "hf-mlm")
