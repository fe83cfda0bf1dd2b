"""Metric sinks (train.log_to) and the progress lines a log reader sees without a terminal."""
import json
import sys
import time

import pytest

from antlm.cli import main
from antlm.config import ConfigError, build_config
from antlm.train.loggers import scalars
from antlm.train.loop import train
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_log_to_parses_lists_and_refuses_unknown_names():
    assert build_config(None, ["train.log_to=jsonl,tensorboard"]).train.log_to == ["jsonl", "tensorboard"]
    assert build_config(None, ["train.log_to=[jsonl, wandb]"]).train.log_to == ["jsonl", "wandb"]
    with pytest.raises(ConfigError, match="unknown logger 'mlflow'"):
        build_config(None, ["train.log_to=jsonl,mlflow"])


def test_tensorboard_gets_the_jsonl_rows_under_the_same_names(text_corpus, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(build_config(None, tiny_overrides(text_corpus, **{"train.log_to": "jsonl,tensorboard"})), run, log=QUIET)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    expected = {}
    for row in _rows(run):
        for name, value in scalars(row).items():
            expected.setdefault(name, []).append((row["step"], value))
    assert {"train/loss", "train/tokens_per_s", "dev/dev_clm_loss", "dev/dev_mlm_loss"} <= set(expected)
    assert set(events.Tags()["scalars"]) == set(expected)
    for name, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in got] == [s for s, _ in points], name
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6), name  # stored as float32


def test_wandb_logs_offline_into_the_run_dir(text_corpus, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    # Online settings in the user's environment must not matter: the run is forced offline.
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    run = tmp_path / "run"
    train(build_config(None, tiny_overrides(text_corpus, **{"train.log_to": "jsonl,wandb"})), run, log=QUIET)
    (record,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    names = {name for row in _rows(run) for name in scalars(row)}
    # wandb's writer is a separate service process; on a loaded machine its last records reached the
    # file after finish() returned (seen once in a full-suite run), so wait for them, with a deadline.
    deadline = time.monotonic() + 60
    missing = lambda: sorted(n for n in names if n.encode() not in record.read_bytes())  # noqa: E731
    while missing() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert names and not missing(), missing()
    assert record.stem.endswith((run / "wandb_run_id").read_text().strip())


def test_missing_optional_logger_package_is_one_line_naming_the_extra(text_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    out = tmp_path / "run"
    code = main(["train", *sum((["--set", o] for o in tiny_overrides(text_corpus, **{"train.log_to": "jsonl,wandb"})), []),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "pip install 'antlm[wandb]'" in err[0]
    assert not out.exists()


def test_progress_lines_without_a_terminal(text_corpus, tmp_path):
    messages = []
    train(build_config(None, tiny_overrides(text_corpus, **{"train.progress_every_s": 1e-6})), tmp_path / "run",
          log=messages.append)
    beats = [m for m in messages if m.startswith("step ")]
    assert len(beats) >= 20  # every step, at this interval
    assert "phase 10st_mlm (mlm)" in beats[12] and "loss " in beats[12]
    quiet = []
    train(build_config(None, tiny_overrides(text_corpus, **{"train.progress_every_s": 0})), tmp_path / "run2",
          log=quiet.append)
    assert not [m for m in quiet if m.startswith("step ")]
