"""`antlm eval RUN --series`: every word checkpoint on the 2025 fast sets, then the final model, one
results file and the 2025 results folder (chck_* revisions) written together; `antlm report`'s
learning curves from it."""
import json
import random

import numpy as np
import pytest

from antlm.cli import main
from antlm.config import build_config
from antlm.errors import UserError
from antlm.eval.runner import EvalOptions
from antlm.eval.series_eval import evaluate_series, format_series_table
from antlm.report import CURVES, plot_learning_curves, read_run, write_report
from antlm.train.loop import train
from conftest import SHARED_DATA, WORDS, tiny_overrides

QUIET = lambda message: None  # noqa: E731
NEW_2025 = SHARED_DATA / "babylm_2025_eval"
needs_data = pytest.mark.skipif(not NEW_2025.is_dir(), reason=f"BabyLM 2025 evaluation data not found at {NEW_2025}")
# text_corpus: 9,846 words, 90 steps an epoch (109.4 words a step), 25 steps: 500 words are first seen
# at step 5 (547), 1k at step 10 (1,094), 2k at step 19 (2,078), in 10st_clm+10st_mlm+5st_clm.
MARKS = "500,1k,2k"
TASKS = ["blimp", "ewok", "wug_adj"]


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    rng = random.Random(0)
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("a.train", "b.txt", "c.dev"):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + " ." for _ in range(500)]
        (corpus / name).write_text("\n".join(lines) + "\n")
    run = root / "run"
    train(build_config(None, tiny_overrides(corpus, **{"train.word_checkpoints": MARKS, "train.eval_every": 5})), run, log=QUIET)
    return run


@needs_data
def test_series_scores_every_checkpoint_on_the_fast_sets(series_run, tmp_path):
    options = EvalOptions(tasks=list(TASKS), backend="hybrid", compat="babylm2025", limit=2)
    out, folder = series_run / "results-series.json", tmp_path / "results"  # the report reads it inside the run
    results = evaluate_series(series_run, SHARED_DATA, options, QUIET, results_dir=folder, out=out)
    series = results["series"]
    assert [e["revision"] for e in series] == ["chck_500", "chck_1k", "chck_2k"]
    assert [(e["step"], e["words_seen"]) for e in series] == [(5, 547), (10, 1094), (19, 2078)]
    assert [(e["phase"], e["objective"]) for e in series] == [("10st_clm", "clm"), ("10st_clm", "clm"), ("10st_mlm", "mlm")]
    for entry in series:
        assert entry["eval_set"] == "fast" and set(entry["scores"]) == {"causal", "mntp"}
        assert set(entry["scores"]["causal"]) == set(TASKS)
        assert entry["results"]["causal"]["tasks"]["blimp"]["dataset"] == "blimp_fast"
        assert entry["path"].endswith(f"word_checkpoints/{entry['revision']}")
    # the final model with the options as given: the full sets, revision main
    assert results["eval_set"] == "full" and results["revision"] == "main" and results["words_seen"] == 2735
    assert results["results"]["causal"]["tasks"]["blimp"]["dataset"] == "blimp_filtered"
    assert results["complete"] is False  # --limit
    assert json.loads(out.read_text())["series"] == json.loads(json.dumps(series))
    assert "submission" not in json.loads(out.read_text())
    # the 2025 folder as collate_preds.py --fast reads it: <model = the run's name>/<revision>/zero_shot/...
    base = folder / series_run.name
    assert sorted(p.name for p in base.iterdir()) == ["chck_1k", "chck_2k", "chck_500", "main"]
    for name in ("chck_500", "chck_1k", "chck_2k"):
        for backend in ("causal", "mntp"):
            zero_shot = base / name / "zero_shot" / backend
            assert (zero_shot / "blimp" / "blimp_fast" / "predictions.json").is_file()
            assert (zero_shot / "ewok" / "ewok_fast" / "predictions.json").is_file()
            assert (zero_shot / "wug_adj" / "wug_adj_nominalization" / "predictions.json").is_file()
    assert (base / "main" / "zero_shot" / "causal" / "blimp" / "blimp_filtered" / "predictions.json").is_file()
    assert not list(folder.rglob(".*tmp-*"))
    table = format_series_table(results)
    assert "| chck_1k | 1,094 | 10st_clm | fast |" in table and "| main | 2,735 |  | full |" in table

    # antlm report draws the learning curves from that file: one line per task and backend, phases shaded.
    run = read_run(series_run, results_name=out.name)
    assert [e["revision"] for e in run.series] == ["chck_500", "chck_1k", "chck_2k"]
    figure = plot_learning_curves([run], tmp_path / "curves.png")
    axes = figure.axes
    assert len(axes) == 3  # causal, mntp, dev losses
    spans = [[tuple(round(v) for v in p.get_x() + p.get_width() * np.array([0, 1])) for p in ax.patches] for ax in axes]
    # 10st_clm / 10st_mlm / 5st_clm in words: steps 0-10-20-25, the first from the axis' left edge
    assert all(len(s) == 3 for s in spans) and spans[0][1] == (1094, 2188) and spans[0][2] == (2188, 2735)
    assert [line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")] == TASKS
    assert axes[0].get_xscale() == "log"
    assert {line.get_label() for line in axes[2].get_lines()} >= {"dev clm loss", "dev mlm loss"}
    report = write_report([series_run], tmp_path / "report", results_name=out.name, log=QUIET)
    text = report.read_text()
    png = (tmp_path / "report" / CURVES).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1024
    assert "## Learning curves" in text and "| chck_2k | 2,078 | 19 | 10st_mlm | fast |" in text


@needs_data
def test_milestones_take_only_fast_tasks_and_a_failure_writes_nothing(series_run, tmp_path, monkeypatch):
    from antlm.eval import series_eval

    calls = []
    real = series_eval.run_eval

    def failing(path, data, options, log):
        calls.append((path.name, options.eval_set, list(options.tasks)))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, data, options, log)

    monkeypatch.setattr(series_eval, "run_eval", failing)
    options = EvalOptions(tasks=["wug_adj", "aoa"], backend="causal", compat="babylm2025", limit=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate_series(series_run / "final", SHARED_DATA, options, QUIET, results_dir=tmp_path / "results",
                        out=tmp_path / "s.json")
    # AoA scores the series as a whole: a main-revision task, not one of the fast ones
    assert calls == [("chck_500", "fast", ["wug_adj"]), ("chck_1k", "fast", ["wug_adj"]), ("chck_2k", "fast", ["wug_adj"])]
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "results").exists()


def test_bad_series_inputs(series_run, tmp_path, text_corpus):
    plain = tmp_path / "plain"
    train(build_config(None, tiny_overrides(text_corpus, schedule="4st_clm")), plain, log=QUIET)
    with pytest.raises(UserError, match="has no word-checkpoint series"):
        evaluate_series(plain, SHARED_DATA, EvalOptions(compat="babylm2025"), QUIET)
    with pytest.raises(UserError, match="--series scores the word checkpoints on the fast sets"):
        evaluate_series(series_run, SHARED_DATA, EvalOptions(tasks=["aoa"], compat="babylm2025"), QUIET)
    with pytest.raises(UserError, match="--compat babylm2024 has no fast sets"):
        evaluate_series(series_run, SHARED_DATA, EvalOptions(tasks=["blimp"], compat="babylm2024"), QUIET)
    with pytest.raises(UserError, match="--revision chck_1k is also the name of a word checkpoint"):
        evaluate_series(series_run, SHARED_DATA, EvalOptions(compat="babylm2025"), QUIET, revision="chck_1k")


def test_cli_series_of_a_run_without_one_is_one_line(tmp_path, text_corpus, capsys):
    plain = tmp_path / "plain"
    train(build_config(None, tiny_overrides(text_corpus, schedule="4st_clm")), plain, log=QUIET)
    out = tmp_path / "s.json"
    code = main(["eval", str(plain), "--series", "--data", str(SHARED_DATA), "--compat", "babylm2025",
                 "--out", str(out), "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has no word-checkpoint series" in err
    assert not out.exists() and not (tmp_path / "results").exists()
