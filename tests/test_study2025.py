"""experiments/strict_small_2025/run.py (issue 20): its smoke form end to end, resuming from the
records alone, the statistics on hand-made numbers, the word-milestone scaling."""
import argparse
import json
import math
import shutil

import pytest

from antlm.report import paired_test
from antlm.stats import holm, paired_stats
from antlm.tracks import parse_milestones
from conftest import REPO, SHARED_DATA
from experiments.strict_small_2025 import report


@pytest.fixture(scope="module")
def study():
    from experiments.strict_small_2025 import run

    return run


def test_milestones_scale_with_the_corpus(study):
    # A 10M corpus gets the BabyLM revisions themselves; 1.5M words, the same fractions of an epoch.
    assert study.scaled_milestones(10_000_000) == [m * 1_000_000 for m in (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100)]
    marks = study.scaled_milestones(1_500_000)
    assert marks[0] == 150_000 and marks[5] == 1_500_000 and marks[-1] == 15_000_000 and len(marks) == 11
    # What the runner passes as train.word_checkpoints parses back to the same words.
    assert parse_milestones(",".join(map(str, marks)), None) == marks
    assert study.scaled_milestones(2_966, (10, 100)) == [2_966, 29_660]


def test_every_condition_trains_ten_epochs_as_its_preset_does(study):
    # 6:60:6 rounded to 0.83:8.33:0.83 stopped 4 of 3,760 steps short and never wrote its last word
    # checkpoint: each condition's phases must sum to the 10 epochs its preset trains.
    from antlm.config import build_config
    from antlm.schedule import Schedule, parse_schedule

    for backbone, conditions in study.CONDITIONS.items():
        for condition, preset, schedule in conditions:
            assert sum(phase.amount for phase in parse_schedule(schedule)) == pytest.approx(10), schedule
            assert build_config(preset, ["data.corpus=/corpora/babylm_10M"]).schedule == schedule
            assert Schedule(schedule, 376, 4096).total_steps == 3760  # the cpu sample's 376 steps per epoch
            assert Schedule(schedule, 376, 4096, "per_phase").total_steps == 3760  # as its records were made
    # The cpu study keeps the 9.99-epoch schedule its LTG-BERT AntLM records were made with.
    pinned = study.SCALES["cpu"].schedules["ltgbert-antlm"]
    assert Schedule(pinned, 376, 4096, "per_phase").total_steps == Schedule(pinned, 376, 4096).total_steps == 3756
    runs = study.plan_runs(argparse.Namespace(backbones=["ltgbert"], seeds=[0], with_mix=False), study.SCALES["cpu"])
    assert [r["schedule"] for r in runs] == ["10_mlm", pinned]


def test_paired_stats_on_hand_made_numbers():
    base, other = {0: 50.0, 1: 52.0, 2: 51.0, 3: 53.0}, {0: 52.0, 1: 55.0, 2: 52.0, 3: 56.0, 9: 99.0}
    result = paired_stats(base, other)  # seed 9 has no pair: left out
    # differences 2, 3, 1, 3: mean 2.25, sd sqrt(2.75 / 3), t(0.975, 3) = 3.182446
    half = 3.182446 * math.sqrt(2.75 / 3) / 2
    assert result["n"] == 4 and result["diff"] == pytest.approx(2.25)
    assert result["base_mean"] == pytest.approx(51.5) and result["other_mean"] == pytest.approx(53.75)
    assert result["ci_low"] == pytest.approx(2.25 - half, abs=1e-5) and result["ci_high"] == pytest.approx(2.25 + half, abs=1e-5)
    assert f"{result['p']:.3f}" == paired_test(base, other)[3] == "0.018"  # antlm.report's test agrees
    one = paired_stats({0: 1.0}, {0: 2.0})
    assert one["diff"] == 1.0 and one["ci_low"] is None and one["p"] is None
    same = paired_stats({0: 1.0, 1: 2.0}, {0: 2.0, 1: 3.0})
    assert same["p"] is None and same["ci_low"] == same["ci_high"] == pytest.approx(1.0)


def test_causal_first_token_glue_is_left_out():
    scores = {"glue_rte_causal": 53.96, "glue_rte_mlm": 60.0, "blimp_causal": 57.0}
    assert report.blind_glue({"final": {"scores": scores, "glue": {"train_limit": 2000}}}) == {"glue_rte_causal"}
    assert report.blind_glue({"final": {"scores": scores, "glue": {"pooling": "last"}}}) == set()
    records = [{"name": f"babyllama-{c}-s{s}", "backbone": "babyllama", "condition": c, "seed": s,
                "train": {"dev_clm_loss": 4.0, "dev_mlm_loss": 5.0},
                "final": {"scores": {**scores, "blimp_causal": 57.0 + s + (c == "antlm")}, "glue": {}}}
               for c in ("clm", "antlm") for s in (0, 1)]
    assert {r["metric"] for r in report.backbone_stats(records, "babyllama")} == {
        "blimp_causal", "glue_rte_mlm", "dev_clm_loss", "dev_mlm_loss"}


def test_a_fast_set_equal_to_its_whole_set_is_one_test():
    records = [{"name": f"babyllama-{c}-s{s}", "backbone": "babyllama", "condition": c, "seed": s,
                "train": {"dev_clm_loss": 4.0 + s / 10, "dev_mlm_loss": 5.0 - s / 7 - (c == "antlm")},
                "final": {"scores": {"wug_adj_causal": 60.0 + s * s + (c == "antlm") * (s + 1),
                                     "wug_adj_fast_causal": 60.0 + s * s + (c == "antlm") * (s + 1),
                                     "blimp_causal": 57.0 + s + (c == "antlm") * s / 3}, "glue": {}}}
               for c in ("clm", "antlm") for s in (0, 1, 2)]
    rows = {r["metric"]: r for r in report.backbone_stats(records, "babyllama")}
    assert rows["wug_adj_fast_causal"]["same_as"] == "wug_adj_causal" and rows["wug_adj_causal"]["same_as"] is None
    counted = [r["p"] for r in rows.values() if r["same_as"] is None]
    assert len(counted) == 4  # blimp, wug_adj and the two dev losses
    assert rows["wug_adj_fast_causal"]["p_holm"] == rows["wug_adj_causal"]["p_holm"] == pytest.approx(
        holm(counted)[[r["metric"] for r in rows.values() if r["same_as"] is None].index("wug_adj_causal")])


def test_holm():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_training_only_without_eval_data(study, tmp_path):
    """Without the 2025 eval data the smoke form trains and records the dev losses (as the older
    smoke tests do), and says the study is complete at that."""
    args = ["--scale", "smoke", "--backbones", "babyllama", "--seeds", "0", "--data", str(tmp_path / "no-data"),
            "--out", str(tmp_path / "runs"), "--records", str(tmp_path / "records"), "--set", "train.threads=1"]
    assert study.main(args) == 0
    record = json.loads((tmp_path / "records" / "babyllama-antlm-s0.json").read_text())
    assert record["train"]["dev_clm_loss"] > 0 and record["train"]["dev_mlm_loss"] > 0 and "final" not in record
    results = (tmp_path / "runs" / "smoke" / "report" / "RESULTS.md").read_text()
    assert "2 of 2 planned runs are finished" in results

    # A later invocation for part of the study (here: the same runs, done) keeps the larger plan.
    plan_path = tmp_path / "records" / "plan.json"
    plan = json.loads(plan_path.read_text())
    plan_path.write_text(json.dumps({**plan, "runs": ["ltgbert-mlm-s0", *plan["runs"]], "design": "the whole study"}))
    assert study.main(args) == 0
    kept = json.loads(plan_path.read_text())
    assert kept["runs"] == ["ltgbert-mlm-s0", *plan["runs"]] and kept["design"] == "the whole study"
    assert "2 of 3 planned runs are finished" in (tmp_path / "runs" / "smoke" / "report" / "RESULTS.md").read_text()

    # Run again with another setting over the same records: refused in one line, nothing trained.
    again = args + ["--set", "optim.lr=1e-3"]
    before = (tmp_path / "records" / "babyllama-antlm-s0.json").read_text()
    assert study.main(again) == 2
    assert (tmp_path / "records" / "babyllama-antlm-s0.json").read_text() == before


def test_plan_only_grows(study):
    plan = {"scale": "cpu", "runs": ["a", "b", "c"], "design": "abc"}
    assert study.grown_plan(plan, "cpu", ["b"], "b only") == (["a", "b", "c"], "abc")
    assert study.grown_plan(plan, "cpu", ["c", "a", "b", "d"], "abcd") == (["a", "b", "c", "d"], "abcd")
    assert study.grown_plan(plan, "cpu", ["b", "e"], "be") == (["a", "b", "c", "e"], "abc Runs added later (e): be")
    assert study.grown_plan({}, "cpu", ["b"], "b") == (["b"], "b")
    assert study.grown_plan(plan, "smoke", ["b"], "b") == (["b"], "b")  # another scale's plan is not this one


def test_start_before(study, tmp_path):
    import time

    noon = time.mktime((2026, 12, 3, 12, 0, 0, 0, 0, -1))
    assert study.start_deadline("13:30", now=noon) == noon + 5400
    assert study.start_deadline("11:00", now=noon) == noon + 23 * 3600  # passed today: tomorrow
    assert study.start_deadline(None) is None
    for bad in ("25:00", "1330", "soon"):
        with pytest.raises(ValueError, match="HH:MM"):
            study.start_deadline(bad)
    # A worker that takes a run after the deadline leaves it untouched: no record, no run directory.
    job = {"threads": 1, "name": "late", "run_dir": str(tmp_path / "late"), "record": str(tmp_path / "late.json"),
           "start_before": time.time() - 1}
    assert study.run_one(job) == ("late", study.NOT_STARTED)
    assert not any(tmp_path.iterdir())


def test_training_clock_counts_every_invocation(study, tmp_path):
    # A run killed by a session's end resumes in the next one: its record's train_s is the time of
    # every invocation, each killed one counted until the last line it wrote to metrics.jsonl.
    import os
    import time

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = study.start_train_clock(run_dir, fresh=True)
    assert first == {"seconds": 0.0, "interruptions": 0}
    since = json.loads((run_dir / study.TRAIN_CLOCK).read_text())["running_since"]
    metrics = run_dir / "metrics.jsonl"
    metrics.write_text("{}\n")
    os.utime(metrics, (since + 600, since + 600))  # the killed invocation logged for 600 s
    second = study.start_train_clock(run_dir, fresh=False)
    assert second["seconds"] == pytest.approx(600) and second["interruptions"] == 1
    done = study.stop_train_clock(run_dir, second, time.time() - 30)
    assert done["seconds"] == pytest.approx(630, abs=1) and done["interruptions"] == 1
    assert json.loads((run_dir / study.TRAIN_CLOCK).read_text()) == done  # stopped: nothing running
    # Resuming a finished run adds only its own (short) time; training afresh starts the count again.
    assert study.start_train_clock(run_dir, fresh=False)["seconds"] == done["seconds"]
    assert study.start_train_clock(run_dir, fresh=True) == {"seconds": 0.0, "interruptions": 0}
    # A run started by a runner without the clock counts from its config.yaml.
    (run_dir / study.TRAIN_CLOCK).unlink()
    (run_dir / "config.yaml").write_text("{}\n")
    os.utime(run_dir / "config.yaml", (since, since))
    older = study.start_train_clock(run_dir, fresh=False)
    assert older["seconds"] == pytest.approx(600) and older["interruptions"] == 1


def test_finish_by_estimates_from_finished_runs(study, tmp_path):
    import time

    ref = {"backbone": "babyllama", "condition": "clm", "train": {"train_s": 6000.0}, "curve_done": True,
           "curve": {"a": {"seconds": 60.0}, "b": {"seconds": 60.0}}, "final": {},
           "final_parts": {"causal": {"seconds": 1200.0}, "mntp": {"seconds": 400.0}}}
    other = {**ref, "condition": "antlm", "train": {"train_s": 5000.0}}
    fresh = {"backbone": "babyllama", "condition": "antlm"}
    assert study.remaining_seconds(fresh, True, [ref, other]) == 5000 + 120 + 1600  # its own condition's times
    # Trained already (the run directory is there), half its curve and one backend scored.
    half = {**fresh, "curve": {"a": {}}, "final_parts": {"causal": {}}}
    assert study.remaining_seconds(half, False, [ref, other]) == 60 + 400
    # Nothing of its backbone finished: the longest of any.
    assert study.remaining_seconds({"backbone": "ltgbert", "condition": "mlm"}, True, [ref, other]) == 6000 + 1720
    assert study.remaining_seconds(fresh, True, []) is None
    # A worker leaves a run that would end after --finish-by untouched.
    job = {"threads": 1, "name": "long", "run_dir": str(tmp_path / "long"), "record": str(tmp_path / "long.json"),
           "finish_by": time.time() + 600, "expected_s": 3600.0}
    assert study.run_one(job) == ("long", study.NOT_FINISHING)
    assert not any(tmp_path.iterdir())


def test_record_mismatch(study):
    record = {"train": {}, "corpus_words": 1000, "settings": ["schedule=10_clm", "train.threads=1", "optim.lr=1e-3"]}
    same = ["data.corpus=/x", "schedule=10_clm", "train.threads=2", "optim.lr=1e-3"]  # threads: speed, not the model
    assert study.record_mismatch(record, 1000, same) is None
    assert study.record_mismatch({}, 5, []) is None  # nothing recorded yet
    assert study.record_mismatch(record, 2000, same) == "a 1,000-word corpus, not 2,000"
    assert "optim.lr=2e-3" in study.record_mismatch(record, 1000, same[:-1] + ["optim.lr=2e-3"])


@pytest.mark.skipif(not (SHARED_DATA / "babylm_2025_eval").is_dir(), reason="shared data not found at ../shared/data")
def test_smoke_study_end_to_end(study, tmp_path):
    records, runs = tmp_path / "records", tmp_path / "runs"
    args = ["--scale", "smoke", "--data", str(SHARED_DATA), "--out", str(runs), "--records", str(records),
            "--set", "train.threads=1"]
    assert study.main(args) == 0
    report = runs / "smoke" / "report"
    names = [f"{b}-{c}-s{s}" for b in ("babyllama", "ltgbert") for s in (0, 1)
             for c in (("clm", "antlm") if b == "babyllama" else ("mlm", "antlm"))]
    for name in names:
        record = json.loads((records / f"{name}.json").read_text())
        assert {"train", "curve", "final"} <= set(record) and record["curve_done"]
        assert len(record["curve"]) >= 2 and "final" in record["curve"]  # word checkpoints + the final model
        assert record["train"]["commit"] and record["train"]["train_s"] >= 0
        assert record["train"]["interruptions"] == 0
        if name.startswith("babyllama"):  # the 2025 head reads <s> under the causal mask: one class, measured
            assert record["final"]["glue_constant"] == ["glue_rte_causal"]
    # No path of this machine in anything that is committed or reported.
    for path in [*records.glob("*.json"), report / "RESULTS.md", report / "summary.json"]:
        assert str(tmp_path) not in path.read_text() and str(REPO) not in path.read_text(), path
    summary = json.loads((report / "summary.json").read_text())
    assert summary["complete"] and len(summary["runs"]) == 8
    for run in summary["runs"]:
        assert {"backbone", "condition", "schedule", "seed", "words_seen", "params", "scores", "dev_clm_loss",
                "dev_mlm_loss"} <= set(run)
        own = "causal" if run["backbone"] == "babyllama" else "mlm"
        other = "mntp" if run["backbone"] == "babyllama" else "causal"
        assert {f"blimp_fast_{own}", f"blimp_{own}", f"blimp_{other}", f"glue_rte_{own}"} <= set(run["scores"])
    results = (report / "RESULTS.md").read_text()
    assert "8 of 8 planned runs are finished" in results and "Holm" in results and "incomplete" not in results
    assert "The CLM baseline's fast BLiMP (causal)" in results and "the target of 60" in results
    assert "glue_mean_causal, glue_rte_causal: the 2025 recipe's GLUE head reads the first token" in results
    assert "glue_rte_causal" not in results.split("Answer (paired")[1].split("## ltgbert")[0]  # not tested
    assert (report / "figures" / "smoke-babyllama-curves.png").is_file()
    assert (report / "figures" / "smoke-ltgbert-dev.png").is_file()

    # A second invocation finds every record and only rebuilds the same report.
    before = {p.name: p.read_text() for p in records.glob("*.json")}
    assert study.main(args) == 0
    assert {p.name: p.read_text() for p in records.glob("*.json")} == before
    assert (report / "RESULTS.md").read_text() == results

    # A new session: the run directory is gone, its record stays: nothing is retrained.
    shutil.rmtree(runs / "smoke" / "babyllama-clm-s0")
    assert study.main(args) == 0
    assert not (runs / "smoke" / "babyllama-clm-s0").exists()
    assert study.main(["--scale", "smoke", "--records", str(records), "--report-dir", str(tmp_path / "elsewhere"),
                       "--report-only"]) == 0
    assert (tmp_path / "elsewhere" / "RESULTS.md").read_text() == results

    # A new session that lacks a run's final suite trains the run again: the same seed and data give
    # the same model (the record says so), and the same final scores.
    shutil.rmtree(runs / "smoke" / "babyllama-antlm-s1")
    cut = json.loads(before["babyllama-antlm-s1.json"])
    del cut["final"], cut["final_parts"]
    (records / "babyllama-antlm-s1.json").write_text(json.dumps(cut))
    assert study.main(args) == 0
    redone = json.loads((records / "babyllama-antlm-s1.json").read_text())
    assert redone["train"]["retrain_identical"] is True and redone["train"]["retrain_s"] > 0
    assert redone["final"]["scores"] == json.loads(before["babyllama-antlm-s1.json"])["final"]["scores"]
    assert "babyllama-antlm-s1 |" in (report / "RESULTS.md").read_text()
    assert "retrained for the final suite (the same model)" in (report / "RESULTS.md").read_text()

    # Training stopped after its last checkpoint (no final/, no record): it resumes rather than
    # retrains (retraining would replace the checkpoint), then scores and records the run again.
    stopped = runs / "smoke" / "ltgbert-antlm-s1"
    checkpoint = next((stopped / "checkpoints").iterdir())
    inode = checkpoint.stat().st_ino
    shutil.rmtree(stopped / "final")
    (records / "ltgbert-antlm-s1.json").unlink()
    assert study.main(args) == 0
    assert checkpoint.stat().st_ino == inode
    again = json.loads((records / "ltgbert-antlm-s1.json").read_text())
    assert again["train"]["dev_mlm_loss"] == json.loads(before["ltgbert-antlm-s1.json"])["train"]["dev_mlm_loss"]
    assert again["final"]["scores"] == json.loads(before["ltgbert-antlm-s1.json"])["final"]["scores"]

    # A partial study says so and draws no conclusion.
    (records / "ltgbert-mlm-s1.json").unlink()
    assert study.main(["--scale", "smoke", "--records", str(records), "--report-dir", str(tmp_path / "partial"),
                       "--report-only"]) == 0
    partial = (tmp_path / "partial" / "RESULTS.md").read_text()
    assert "7 of 8 planned runs" in partial and "The study is incomplete" in partial
    assert "Statistics for ltgbert follow once" in partial and "Holm" in partial  # babyllama is complete


def test_ltgbert_probe_candidates_build_and_bad_input_exits(tmp_path, capsys):
    from antlm.config import build_config
    from experiments.strict_small_2025 import probe

    # The reference is the span-masked recipe ltgbert-mlm-s0 ran with, stopped after the probe's
    # epochs of the 10-epoch schedule; every candidate builds, with whole-epoch word checkpoints.
    reference = build_config("ltgbert-mlm-10ep", probe.overrides("reference", tmp_path, 3))
    assert reference.train.max_steps == 3 * probe.STEPS_PER_EPOCH and reference.schedule == "10_mlm"
    assert reference.model.dropout == 0.1 and reference.optim.name == "lamb"
    for name in probe.CANDIDATES:
        cfg = build_config("ltgbert-mlm-10ep", probe.overrides(name, tmp_path, 2))
        assert cfg.train.word_checkpoints == "1020000,2040000"
    assert build_config("ltgbert-mlm-10ep", probe.overrides("adamw", tmp_path, 3)).model.dropout == 0.0
    assert probe.main(["--candidates", "nonsense"]) == 2
    assert probe.main(["--epochs", "11"]) == 2
    assert probe.main(["--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("error:") == 3
