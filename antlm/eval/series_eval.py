"""`antlm eval RUN --series`: every word checkpoint of a run on the fast sets, then the final model.

The 2025 challenge scores a submission's intermediate checkpoints (`chck_1M` ... `chck_100M`) on
the fast_eval sets only and its main revision on the full sets: `eval_zero_shot_fast.sh` runs
blimp, supplement, ewok, the two wug tasks, entity tracking and reading on `fast_eval/`, once per
revision (`eval_zero_shot_fast_all_revisions.sh`), and `collate_preds.py --fast` then requires
`<results>/<model>/<chck_N>/zero_shot/<backend>/blimp/blimp_fast/predictions.json` and its
siblings for each revision (`_check_validity_of_dir(..., fast=True)`). This module is that loop
over `run_eval`: milestones in words-seen order with `eval_set="fast"` and the fast tasks only
(AoA and GLUE are main-revision tasks), then the final model with the options as given.

Nothing half-done looks done: each revision's 2025 files go to temporary names as soon as it is
scored (so predictions do not pile up in memory), the results file last, and all are renamed into
place together once every checkpoint is scored (outputs.py's staging), or removed on failure.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import yaml

from antlm.errors import UserError
from antlm.eval import pipelines
from antlm.eval.outputs import Staged, build_submission, compat_of, write_2025_layout
from antlm.eval.runner import EvalOptions, check_options, run_eval
from antlm.eval.tasks import detect_layout
from antlm.train.series import SERIES_DIR, SERIES_FILE, written_series

# What eval_zero_shot_fast.sh scores at every intermediate revision (reference: 2025 pipeline @ bf55c11).
FAST_TASKS = ("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "reading")


def run_dir_of(model_path: Path) -> Path:
    model_path = Path(model_path)
    return model_path.parent if model_path.name == "final" else model_path


def _schedule_of(run_dir: Path, steps_per_epoch: Optional[int]):
    """The run's schedule bound to its data size, or None when the run dir does not say enough
    (a phase label is a courtesy: a missing one must not stop an evaluation)."""
    from antlm.schedule import Schedule, ScheduleError

    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        tokens_per_step = int(config["train"]["batch_size"]) * int(config["data"]["seq_len"])
        return Schedule.of_saved_run(config, int(steps_per_epoch), tokens_per_step)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, ScheduleError):
        return None


def phase_at(schedule, step: int) -> tuple[Optional[str], Optional[str]]:
    """(phase text, objective) of the step that brought a checkpoint's weights to `step` steps."""
    if schedule is None or step < 1:
        return None, None
    try:
        return schedule.phases[schedule.phase_index(step - 1)].phase.text, schedule.objective_at(step - 1)
    except IndexError:
        return None, None


def compact_scores(results: dict) -> dict[str, dict[str, float]]:
    """{backend: {task: score}}; reading, which has two scores and no single one, as reading_et and
    reading_spr (the two numbers calculate_results_from_pred.py prints)."""
    out: dict[str, dict[str, float]] = {}
    for backend, entry in results["results"].items():
        scores = {}
        for task, task_entry in entry["tasks"].items():
            if task == "reading":
                scores["reading_et"] = task_entry["subtasks"]["eye_tracking"]
                scores["reading_spr"] = task_entry["subtasks"]["self_paced_reading"]
            elif task_entry.get("score") is not None:
                scores[task] = task_entry["score"]
        out[backend] = scores
    return out


def _milestone_options(options: EvalOptions) -> EvalOptions:
    tasks = [t for t in options.tasks if t in FAST_TASKS]
    if not tasks:
        raise UserError(f"--series scores the word checkpoints on the fast sets ({', '.join(FAST_TASKS)}); "
                        f"--tasks {','.join(options.tasks)} has none of them")
    return replace(options, tasks=tasks, eval_set="fast", glue={}, glue_tasks=None)


def _check(options: EvalOptions) -> EvalOptions:
    """check_options on a copy (it fills in the default tasks), so both passes fail before any scoring."""
    checked = replace(options, tasks=list(options.tasks) if options.tasks else None)
    check_options(checked, pipelines.get(checked.compat))
    return checked


def _stage(staged: Staged, results: dict, submission: dict, run_dir: Path, results_dir: Path, revision: str) -> None:
    # The 2025 folder is named after the model path's stem (collate_preds.py: model_path_or_name.stem):
    # the run's, for the checkpoints as for the final model, not the checkpoint's own directory name.
    write_2025_layout({**results, "model": str(run_dir)}, submission, results_dir, revision, staged)


def evaluate_series(run_dir: Path, data_dir: Path, options: EvalOptions, log: Callable = print,
                    results_dir: Optional[Path] = None, revision: str = "main", out: Optional[Path] = None,
                    submission_path: Optional[Path] = None) -> dict:
    """Scores every word checkpoint of `run_dir` (a run dir or its final/) on the fast sets, in
    words-seen order, then the final model with `options`. Returns the final model's results (as
    `run_eval`, without its predictions) with a `series` list, one entry per checkpoint:
    {revision, words, words_seen, step, phase, objective, path, eval_set, scores: {backend: {task:
    score}}, results, complete, seconds}. With `results_dir`, writes the 2025 results folder:
    revision `chck_<N>` per checkpoint, `revision` for the final; with `out`, the results JSON; with
    `submission_path`, the final model's 2024-layout submission. All files appear together at the end."""
    run_dir = run_dir_of(Path(run_dir))
    series = written_series(run_dir, "--series")
    if not (run_dir / "final" / "config.json").is_file():
        raise UserError(f"--series: {run_dir} has no final/ model (an unfinished run); its checkpoints are evaluated "
                        "with the final one: finish it with antlm train --resume")
    if revision in {name for name, _, _ in series}:
        raise UserError(f"--revision {revision} is also the name of a word checkpoint; give the final model another")
    if "fast" not in pipelines.get(options.compat).eval_sets:
        raise UserError(f"--series scores the word checkpoints on the 2025 fast sets: --compat {options.compat} has no fast "
                        "sets (use --compat babylm2025 or clean)")
    final_options = _check(options)
    milestone_options = _check(_milestone_options(final_options))
    detect_layout(data_dir)
    index = json.loads((run_dir / SERIES_DIR / SERIES_FILE).read_text())
    schedule = _schedule_of(run_dir, index.get("steps_per_epoch"))

    staged, committed = Staged(), False
    # Folders made for uncommitted files are removed on failure, up to what existed before.
    existing = next((p for p in [Path(results_dir), *Path(results_dir).parents] if p.exists()), None) if results_dir else None
    try:
        entries, start = [], time.perf_counter()
        for number, (name, path, meta) in enumerate(series, 1):
            step = meta.get("step")
            phase, objective = phase_at(schedule, step or 0)
            log(f"[series {number}/{len(series)}] {name}: step {step}, {meta.get('words_seen', 0):,} words seen"
                + (f", phase {phase} ({objective})" if phase else "") + ", fast sets")
            began = time.perf_counter()
            results = run_eval(path, data_dir, replace(milestone_options, tasks=list(milestone_options.tasks)), log)
            predictions = results.pop("submission")
            if results_dir is not None:
                _stage(staged, results, predictions, run_dir, Path(results_dir), name)
            del predictions
            seconds = time.perf_counter() - began
            entries.append({"revision": name, "words": meta.get("words"), "words_seen": meta.get("words_seen"), "step": step,
                            "phase": phase, "objective": objective, "path": str(path), "eval_set": "fast",
                            "scores": compact_scores(results), "complete": results["complete"],
                            "results": results["results"], "seconds": round(seconds, 1)})
            log(f"[series {number}/{len(series)}] {name} scored in {seconds:.0f}s")
        log(f"[series] final model ({revision}), {final_options.eval_set} sets")
        began = time.perf_counter()
        results = run_eval(run_dir / "final", data_dir, final_options, log)
        predictions = results.pop("submission")
        final_seconds = time.perf_counter() - began
        final_meta = json.loads((run_dir / "final" / "config.json").read_text())
        results["words_seen"] = final_meta.get("words_seen")
        results["scores"] = compact_scores(results)
        results["seconds"] = round(final_seconds, 1)
        results["revision"] = revision
        results["series"] = entries
        results["series_eval"] = {
            "run": str(run_dir), "checkpoints": len(entries), "eval_set": "fast", "tasks": milestone_options.tasks,
            "results_dir": str(results_dir) if results_dir is not None else None,
            "seconds": round(time.perf_counter() - start, 1),
            "note": "checkpoints on the fast sets (the 2025 rule for intermediate revisions); the final model "
                    f"on the {final_options.eval_set} sets"}
        results["complete"] = results["complete"] and all(e["complete"] for e in entries)
        if results_dir is not None:
            _stage(staged, results, predictions, run_dir, Path(results_dir), revision)
        if submission_path is not None:
            backend = "causal" if "causal" in predictions else next(iter(predictions))
            staged.write_gzip_json(Path(submission_path), build_submission(predictions[backend]))
        if out is not None:
            staged.write_text(Path(out), json.dumps(results, indent=1))
        staged.commit()
        committed = True
    finally:
        staged.discard()
        if not committed and existing is not None:
            _remove_empty_dirs(staged, existing)
    return results


def _remove_empty_dirs(staged: Staged, root: Path) -> None:
    """The folders below `root` made for files that were never committed, so an interrupted run
    leaves no revision folder behind (rmdir removes empty ones only: earlier results stay)."""
    for folder in sorted({tmp.parent for tmp, _ in staged.files}, key=lambda p: len(p.parts), reverse=True):
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent


def _cell(value: Optional[float]) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def format_series_table(results: dict) -> str:
    """Milestone x task, one block per backend; the final model last, marked with its set."""
    series = results["series"]
    rows = [(e["revision"], e["words_seen"], e.get("phase"), "fast", e["scores"]) for e in series]
    rows.append((results.get("revision", "main"), results.get("words_seen"), None, results.get("eval_set", "full"),
                 results["scores"]))
    lines = [f"run {results['series_eval']['run']} ({results['backbone']}), compat {compat_of(results)}, "
             f"{len(series)} word checkpoints on the fast sets, final model on the {results.get('eval_set', 'full')} sets"
             + (f", limit {results['limit']} per subtask" if results.get("limit") else "")]
    backends = list(results["scores"])
    for backend in backends:
        tasks: list[str] = []
        for *_, scores in rows:
            tasks += [t for t in scores.get(backend, {}) if t not in tasks]
        lines += ["", f"{backend}:", "| revision | words seen | phase | set | " + " | ".join(tasks) + " |",
                  "|---|---:|---|---|" + "---:|" * len(tasks)]
        for name, words, phase, eval_set, scores in rows:
            cells = " | ".join(_cell(scores.get(backend, {}).get(t)) for t in tasks)
            seen = "n/a" if words is None else f"{words:,}"
            lines.append(f"| {name} | {seen} | {phase or ''} | {eval_set} | {cells} |")
    return "\n".join(lines)
