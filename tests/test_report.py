"""`antlm report`: grouping by condition, tables with paired seed tests, plots, and bad inputs."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from antlm.config import build_config, dump_yaml
from antlm.errors import UserError
from antlm.report import PLOTS, SNIPPETS_CAVEAT, group_conditions, paired_test, phase_spans, read_run, write_report
from antlm.schedule import Schedule
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731
SNIPPETS = "/data/shared/babylm_2024_100M_snippets"
STEPS_PER_EPOCH, BATCH, SEQ = 10, 32, 128
# condition -> seed -> (blimp, ewok) for both backends; macro and the rest follow from them
SCORES = {"2_clm+4_mlm": {0: (70.0, 60.0), 1: (72.0, 61.0)},
          "1_clm+4_mix(clm=1,mlm=3)+1_clm": {0: (73.0, 60.5), 1: (76.0, 62.0)}}


def fake_run(root: Path, name: str, schedule: str, seed: int, scores=None, corpus=SNIPPETS, extra=()) -> Path:
    """A run dir as `antlm train` + `antlm eval --backend hybrid` leave it (no checkpoints)."""
    run = root / name
    run.mkdir(parents=True)
    overrides = [f"schedule={schedule}", f"train.seed={seed}", f"data.corpus={corpus}", f"train.batch_size={BATCH}",
                 f"data.seq_len={SEQ}", *extra]
    (run / "config.yaml").write_text(dump_yaml(build_config(None, overrides)))
    sched = Schedule(schedule, STEPS_PER_EPOCH, BATCH * SEQ)
    rows = []
    for step in range(5, sched.total_steps + 1, 5):
        objective = sched.objective_at(step - 1)
        rows.append({"split": "train", "step": step, "epoch": round(step / STEPS_PER_EPOCH, 4),
                     "phase": sched.phases[sched.phase_index(step - 1)].phase.text, "objective": objective,
                     "loss": round(9.0 * np.exp(-step / 30) + (2.5 if objective == "clm" else 1.5) + 0.05 * seed, 5),
                     "lr": 3e-4, "tokens": step * BATCH * SEQ, "tokens_per_s": 1000.0})
        if step % 20 == 0 or step == sched.total_steps:
            rows.append({"split": "dev", "step": step, "epoch": round(step / STEPS_PER_EPOCH, 4),
                         "dev_clm_loss": round(8 * np.exp(-step / 40) + 3, 5), "dev_mlm_loss": round(8 * np.exp(-step / 40) + 2, 5)})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "final").mkdir()
    if scores is not None:
        blimp, ewok = scores
        results = {}
        for backend, shift in (("causal", 0.0), ("mlm", -2.0)):
            tasks = {"blimp": {"score": blimp + shift, "subtasks": {"anaphor": blimp + shift}},
                     "blimp_supplement": {"score": 55.0 + seed, "subtasks": {}}, "ewok": {"score": ewok + shift, "subtasks": {}},
                     "glue": {"score": 65.0, "tasks": {}, "tasks_not_run": []}}
            macro = sum(t["score"] for t in tasks.values()) / 4
            results[backend] = {"reduction": "sum", "tasks": tasks, "macro": macro, "missing": []}
        (run / "results.json").write_text(json.dumps({
            "model": str(run), "backbone": "babyllama", "mode": "babylm2024", "backend": "hybrid", "variant": "original",
            "limit": None, "complete": True, "results": results}))
    return run


def make_runs(root: Path, with_results=True) -> list[Path]:
    return [fake_run(root, f"{'ant' if 'mix' in sched else 'base'}-s{seed}", sched, seed, scores if with_results else None)
            for sched, by_seed in SCORES.items() for seed, scores in by_seed.items()]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024, path


def test_report_tables_plots_and_caveat(tmp_path):
    report = write_report(make_runs(tmp_path / "runs"), tmp_path / "report", log=QUIET)
    text = report.read_text()
    assert report == tmp_path / "report" / "report.md"
    for name in PLOTS:
        assert_png(tmp_path / "report" / name)
        assert f"({name})" in text
    assert SNIPPETS_CAVEAT in text and f"`{Path(SNIPPETS).name}` (a corpus folder)" in text and SNIPPETS not in text
    # mean ± sample std (n seeds), per condition and backend
    assert "| babyllama 2_clm+4_mlm (baseline) | 71.00 ± 1.41 (n=2) |" in text
    assert "| babyllama 1_clm+4_mix(clm=1,mlm=3)+1_clm | 74.50 ± 2.12 (n=2) |" in text
    assert "### causal scoring" in text and "### mlm scoring" in text
    # the paired test: blimp differences 3 and 4 over seeds 0 and 1
    p = stats.ttest_rel([73.0, 76.0], [70.0, 72.0]).pvalue
    assert "p-value (paired t-test)" in text
    assert f"| babyllama 1_clm+4_mix(clm=1,mlm=3)+1_clm | blimp | 71.00 | 74.50 | +3.50 | {p:.3f} | 2 |" in text
    # glue is 65 for everyone: the difference is constant, so t is undefined
    assert "| glue | 65.00 | 65.00 | +0.00 | n/a (identical differences) | 2 |" in text
    assert "indicative only" in text and "Seeds per condition: 2" in text


def test_grouping_labels_and_phase_spans(tmp_path):
    runs = [read_run(p) for p in make_runs(tmp_path)]
    runs.append(read_run(fake_run(tmp_path, "rate", "2_clm+4_mlm", 0, extra=["mlm.mask_rate=0.3"])))
    conditions = group_conditions(runs)
    assert [c.label for c in conditions] == ["babyllama 2_clm+4_mlm [mlm.mask_rate=0.15]",
                                             "babyllama 1_clm+4_mix(clm=1,mlm=3)+1_clm",
                                             "babyllama 2_clm+4_mlm [mlm.mask_rate=0.3]"]
    assert [[r.seed for r in c.runs] for c in conditions] == [[0, 1], [0, 1], [0]]
    # exact boundaries (steps), recovered from the logged epochs
    assert phase_spans(conditions[1].runs[0]) == [(0, 10, "1_clm"), (10, 50, "4_mix(clm=1,mlm=3)"), (50, 60, "1_clm")]


def test_paired_test_edge_cases():
    assert paired_test({0: 70.0}, {0: 72.0}) == ("70.00", "72.00", "+2.00", "n/a (1 seed)", 1)
    assert paired_test({0: 70.0}, {1: 72.0})[3:] == ("n/a (no shared seeds)", 0)
    # seed 3 has no partner: left out of the means and the test
    base, other, delta, p, n = paired_test({0: 70.0, 1: 71.0, 2: 69.0}, {0: 72.0, 1: 71.5, 2: 70.0, 3: 99.0})
    assert (base, other, delta, n) == ("70.00", "71.17", "+1.17", 3)
    assert p == f"{stats.ttest_rel([72, 71.5, 70], [70, 71, 69]).pvalue:.3f}"


def test_baseline_option_one_seed_and_run_without_results(tmp_path):
    paths = make_runs(tmp_path / "runs")
    no_results = fake_run(tmp_path / "runs", "ltg", "6st_mlm", 0, scores=None, extra=["model.backbone=ltgbert"])
    one_seed = fake_run(tmp_path / "runs", "clm", "6_clm", 1, scores=(71.0, 60.0))
    text = write_report(paths + [no_results, one_seed], tmp_path / "r", baseline="babyllama 1_clm+4_mix(clm=1,mlm=3)+1_clm",
                        log=QUIET).read_text()
    assert "| babyllama 2_clm+4_mlm | blimp | 74.50 | 71.00 | -3.50 |" in text
    # the one-seed condition (seed 1) pairs with the baseline's seed 1 only
    assert "| babyllama 6_clm | blimp | 76.00 | 71.00 | -5.00 | n/a (1 seed) | 1 |" in text
    assert "ltg: no evaluation results (results.json or eval/*.json); plots only" in text
    for name in PLOTS:
        assert_png(tmp_path / "r" / name)
    # a baseline can be named by one of its run dirs too; an unknown one is an error
    assert "baseline **babyllama 6_clm**" in write_report(paths + [one_seed], tmp_path / "r2", baseline="clm", log=QUIET).read_text()
    with pytest.raises(UserError, match="matches no condition"):
        write_report(paths, tmp_path / "r3", baseline="nope", log=QUIET)
    assert not (tmp_path / "r3").exists()


def test_runs_without_any_results_get_loss_plots_only(tmp_path):
    text = write_report(make_runs(tmp_path / "runs", with_results=False), tmp_path / "r", log=QUIET).read_text()
    assert_png(tmp_path / "r" / "loss_by_objective.png")
    assert_png(tmp_path / "r" / "dev_loss.png")
    assert not (tmp_path / "r" / "scores.png").exists() and "No run has evaluation results" in text


def test_results_from_eval_dir_are_merged_by_backend(tmp_path):
    run = fake_run(tmp_path, "a", "2_clm+4_mlm", 0, scores=(70.0, 60.0))
    full = json.loads((run / "results.json").read_text())
    (run / "results.json").unlink()
    (run / "eval").mkdir()
    for backend in ("causal", "mlm"):
        part = {**full, "backend": backend, "results": {backend: full["results"][backend]}}
        (run / "eval" / f"{backend}.json").write_text(json.dumps(part))
    (run / "eval" / "notes.json").write_text("[1, 2]")
    loaded = read_run(run)
    assert loaded.scores["causal"]["blimp"] == 70.0 and loaded.scores["mlm"]["blimp"] == 68.0
    assert any("notes.json is not an `antlm eval` results file" in n for n in loaded.notes)


def test_bad_inputs_are_one_line_user_errors(tmp_path):
    paths = make_runs(tmp_path / "runs")
    (paths[1] / "metrics.jsonl").unlink()
    with pytest.raises(UserError) as err:
        write_report(paths, tmp_path / "r", log=QUIET)
    assert str(paths[1] / "metrics.jsonl") in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()
    with pytest.raises(UserError, match="run directory not found"):
        write_report([tmp_path / "missing"], tmp_path / "r", log=QUIET)


def test_existing_out_dir_is_refused_unless_force(tmp_path):
    paths = make_runs(tmp_path / "runs")
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        write_report(paths, out, log=QUIET)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    write_report(paths, out, log=QUIET, force=True)
    # --force replaces the report's own files only; a report without scores drops the old scores.png
    write_report(make_runs(tmp_path / "noscores", with_results=False), out, log=QUIET, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["dev_loss.png", "keep.txt", "loss_by_objective.png", "report.md"]


def test_end_to_end_two_tiny_runs(text_corpus, tmp_path):
    import torch

    from antlm.train.loop import train

    # One thread: on a shared 2-core machine, two spinning threads make these tiny matmuls 10-40x slower.
    threads = torch.get_num_threads()
    try:
        for name, schedule in (("clm", "6st_clm"), ("antlm", "2st_clm+2st_mlm+2st_clm")):
            overrides = tiny_overrides(text_corpus, schedule=schedule, **{
                "train.log_every": 1, "train.eval_every": 2, "train.checkpoint_every": 100, "train.threads": 1})
            train(build_config(None, overrides), tmp_path / name, log=QUIET)
    finally:
        torch.set_num_threads(threads)
    report = write_report([tmp_path / "clm", tmp_path / "antlm"], tmp_path / "report", log=QUIET)
    text = report.read_text()
    assert "babyllama 6st_clm" in text and "babyllama 2st_clm+2st_mlm+2st_clm" in text
    assert "No run has evaluation results" in text and SNIPPETS_CAVEAT not in text
    # A report is shared: it names the corpus folder, never a path of the machine it ran on.
    assert f"`{text_corpus.name}` (a corpus folder)" in text and str(tmp_path) not in text
    assert_png(tmp_path / "report" / "loss_by_objective.png")
    assert_png(tmp_path / "report" / "dev_loss.png")


def test_learning_curves_from_a_series_results_file(tmp_path):
    """A results file from `antlm eval --series`: scores per checkpoint against words seen, phases shaded."""
    from matplotlib.colors import to_rgba

    from antlm.report import CURVES, PHASE_SHADE, plot_learning_curves

    run = fake_run(tmp_path, "series", "2_clm+4_mlm", 0, scores=(70.0, 60.0))  # 60 steps, 10 an epoch
    (run / "word_checkpoints").mkdir()
    (run / "word_checkpoints" / "series.json").write_text(json.dumps({"corpus_words": 1000, "steps_per_epoch": 10}))
    results = json.loads((run / "results.json").read_text())
    results["series"] = [{"revision": f"chck_{w}", "words_seen": w, "step": w // 100, "phase": p, "eval_set": "fast",
                          "scores": {"causal": {"blimp": 50.0 + i, "wug_adj": 10.0 * i}, "mntp": {"blimp": 49.0 + i}}}
                         for i, (w, p) in enumerate(((1000, "2_clm"), (3000, "4_mlm"), (5000, "4_mlm")))]
    results.update(revision="main", words_seen=6000, eval_set="full", scores={"causal": {"blimp": 71.0}})
    (run / "results.json").write_text(json.dumps(results))
    loaded = read_run(run)
    figure = plot_learning_curves([loaded], tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    score_axes, dev_axes = figure.axes[:2], figure.axes[2]
    # 2_clm is steps 0-20 (0-2,000 words, drawn from the axis' left edge), 4_mlm steps 20-60
    for ax in figure.axes:
        assert [(round(p.get_x() + p.get_width())) for p in ax.patches] == [2000, 6000] and ax.get_xscale() == "log"
        assert [p.get_facecolor() for p in ax.patches] == [to_rgba(PHASE_SHADE["clm"]), to_rgba(PHASE_SHADE["mlm"])]
        assert ax.patches[1].get_x() == 2000
    assert [line.get_label() for line in score_axes[0].get_lines() if not line.get_label().startswith("_")] == ["blimp", "wug_adj"]
    assert list(score_axes[0].get_lines()[-2].get_xdata()) == [1000, 3000, 5000]  # the blimp line (after 3 milestone marks)
    assert dev_axes.get_lines()  # the dev losses, on the steps' words
    text = write_report([run], tmp_path / "r", log=QUIET).read_text()
    assert_png(tmp_path / "r" / CURVES)
    assert f"![learning curves]({CURVES})" in text and "| chck_3000 | 3,000 | 30 | 4_mlm | fast | 51.00 | 10.00 |" in text
    assert "| main | 6,000 | 60 |  | full | 71.00 | n/a |" in text
    # a report without a series has no curves, and --force removes an earlier one
    write_report(make_runs(tmp_path / "plain"), tmp_path / "r", log=QUIET, force=True)
    assert not (tmp_path / "r" / CURVES).exists()
