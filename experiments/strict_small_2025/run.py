"""AntLM against its single-objective baselines under the BabyLM 2025 strict-small rules (10 epochs,
word checkpoints scored on the fast sets as learning curves, the full 2025 suite on the final
models), at CPU scale or paper scale with one command (issue 20; README.md here has the design):

    python experiments/strict_small_2025/run.py --scale smoke     # seconds: the CI form
    python experiments/strict_small_2025/run.py --scale cpu       # ~20-25 h on 2 cores, resumable across sessions
    python experiments/strict_small_2025/run.py --scale paper     # one GPU, the paper-size presets
    python experiments/strict_small_2025/run.py --scale cpu --report-only

Every finished stage of a run (training, each word checkpoint's fast-set scores, the final model's
scores) lands in a small JSON record inside the repository (records/<scale>/<run>.json, written
atomically). An invocation skips every stage whose record exists, even when the run directory is
gone (a new session); a run interrupted inside a session resumes from its last checkpoint; the
report (RESULTS.md, summary.json, figures/) is rebuilt from the records alone.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

if __package__ in (None, ""):  # run as a script: the study's modules import as the experiments package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.strict_small_2025.design import (BACKBONES, CONDITIONS, DEFAULT_DATA, HERE, MIX, OTHER_BACKEND,
                                                  OWN_BACKEND, REPO, SCALES, SOURCES, Scale, limit_for, load_record,
                                                  record_done, run_overrides, scaled_milestones,
                                                  write_json_atomic)
from experiments.strict_small_2025.report import write_report


# ----------------------------------------------------------------------------------- small helpers

def count_words(corpus: Path) -> int:
    """Training words as the tracks count them: whitespace words of every *.train / *.txt file."""
    return sum(len(p.read_text(encoding="utf-8").split()) for p in sorted(corpus.iterdir())
               if p.suffix in (".train", ".txt"))


def code_commit() -> str:
    """The last commit that changed the code the study runs (the library, the study's Python files, the package
    metadata), `-dirty` when the working tree differs from it. Not HEAD: with --commit-records HEAD
    moves with every record, while the code stays at the commit the study started from."""
    code = ["antlm", f"{HERE.relative_to(REPO)}/*.py", "pyproject.toml"]
    try:
        head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H", "--", *code], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", *code],
                               capture_output=True, text=True).stdout.strip()
        return (head or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError, ValueError):
        return "unknown"

# ------------------------------------------------------------------------------------------ data

def draw_sample(root: Path, data: Path, windows: Optional[int]) -> Path:
    """The first N 10,000-word windows (lines) of each source of the shared snippets corpus (all of
    them with None): a fixed, documented sample with the six sources in equal shares."""
    sample = root / (f"sample-{windows}w" if windows else "snippets-all")
    if (sample / "DONE").is_file():
        return sample
    sample.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        lines = (data / "babylm_2024_100M_snippets" / f"{source}.txt").read_text(encoding="utf-8").splitlines()
        (sample / f"{source}.train").write_text("\n".join(lines[:windows] if windows else lines) + "\n", encoding="utf-8")
    (sample / "DONE").write_text("")
    return sample


def prepare_corpus(scale: Scale, root: Path, data: Path, windows: int) -> tuple[Path, str]:
    """(corpus directory, how the records describe it: no path)."""
    if scale.corpus == "embedded":
        from antlm.data.synthetic import write_corpus

        corpus = write_corpus(root / f"embedded-{scale.smoke_sentences}", num_sentences=scale.smoke_sentences) / "corpus"
        return corpus, f"the embedded synthetic corpus, {scale.smoke_sentences} sentences"
    if scale.corpus == "all":
        return draw_sample(root, data, None), "the whole shared snippets corpus (all windows of the six sources)"
    return draw_sample(root, data, windows), (f"the first {windows} 10,000-word windows of each of the six sources "
                                              "of the shared snippets corpus")


# ------------------------------------------------------------------------------------------- plan

def plan_runs(args, scale: Scale) -> list[dict]:
    """The runs in the order they run: seed 0 of every condition of the first backbone, then seed 1,
    ..., so that partial results stay balanced between conditions."""
    runs = []
    for backbone in args.backbones:
        conditions = CONDITIONS[backbone] + ([MIX[backbone]] if args.with_mix else [])
        seeds = args.seeds if args.seeds is not None else list(range(scale.seeds[backbone]))
        for seed in seeds:
            for condition, preset, schedule in conditions:
                runs.append({"name": f"{backbone}-{condition}-s{seed}", "backbone": backbone, "condition": condition,
                             "preset": preset, "schedule": scale.schedules.get(f"{backbone}-{condition}", schedule),
                             "seed": seed})
    return runs


def record_mismatch(record: dict, corpus_words: int, overrides: list[str]) -> Optional[str]:
    """What differs between a run's existing record and the settings it would run with now (None:
    nothing, or no record): mixing them would compare runs of two different studies. The thread
    count is left out: it changes speed, not the model."""
    if "train" not in record:
        return None
    if record.get("corpus_words") != corpus_words:
        return f"a {record.get('corpus_words'):,}-word corpus, not {corpus_words:,}"

    def keep(items):
        return [o for o in items if not o.startswith(("data.corpus=", "train.threads="))]
    old, new = keep(record.get("settings", [])), keep(overrides)
    if old != new:
        return "other settings: " + ", ".join(sorted(set(old) ^ set(new)))
    return None


# -------------------------------------------------------------------------------------- one run

def _die_with_parent() -> None:
    """Pool initializer: a worker gets SIGTERM when the study process dies (Linux), so stopping the
    study never leaves orphans writing into its run directories."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


TRAIN_CLOCK = "train_clock.json"


def start_train_clock(run_dir: Path, fresh: bool) -> dict:
    """The training's wall time over every invocation, kept in the run directory: a run cut off by a
    session's end resumes in the next one, and its record must give the whole time, not the last
    share. An invocation that was killed left its start time behind; it counts until the last line
    it wrote to metrics.jsonl, so a kill loses at most one logging interval of the count."""
    path, metrics = run_dir / TRAIN_CLOCK, run_dir / "metrics.jsonl"
    clock = {"seconds": 0.0, "interruptions": 0}
    since = None
    if not fresh and path.is_file():
        clock = json.loads(path.read_text())
        since = clock.pop("running_since", None)
    elif not fresh and (run_dir / "config.yaml").is_file():
        # Started by a runner without the clock (commit 4dc449b and earlier): from its config.yaml.
        since = (run_dir / "config.yaml").stat().st_mtime
    if since is not None:
        clock["seconds"] += max(0.0, metrics.stat().st_mtime - since) if metrics.is_file() else 0.0
        clock["interruptions"] += 1
    write_json_atomic(path, {**clock, "running_since": time.time()})
    return clock


def stop_train_clock(run_dir: Path, clock: dict, began: float) -> dict:
    clock = {**clock, "seconds": round(clock["seconds"] + time.time() - began, 1)}
    write_json_atomic(run_dir / TRAIN_CLOCK, clock)
    return clock


def _train(job: dict, run_dir: Path, log: Callable) -> dict:
    """Train or resume; returns the training clock: {"seconds", "interruptions"} over all invocations."""
    from antlm.config import build_config
    from antlm.train.loop import train
    from antlm.train.setup import RunError

    cfg = build_config(job["preset"], job["overrides"])
    run_dir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    if (run_dir / "config.yaml").is_file():
        # Started before an interruption (in this session or an earlier one, the run directory kept):
        # resume from the last checkpoint (a no-op once trained); a changed config makes resume
        # refuse, and then it trains afresh.
        clock = start_train_clock(run_dir, fresh=False)
        try:
            log("resuming training")
            train(cfg, run_dir, resume=True, log=lambda m: None)
        except RunError:
            log("cannot resume (changed config): training afresh")
            clock = start_train_clock(run_dir, fresh=True)
            began = time.time()
            train(cfg, run_dir, force=True, log=lambda m: None)
    else:
        log("training")
        clock = start_train_clock(run_dir, fresh=True)
        train(cfg, run_dir, force=True, log=lambda m: None)
    return stop_train_clock(run_dir, clock, began)


def training_facts(run_dir: Path) -> dict:
    """What the record keeps of a trained run: size, words seen, dev losses of both objectives."""
    from safetensors import safe_open

    final = json.loads((run_dir / "final" / "config.json").read_text())
    with safe_open(str(run_dir / "final" / "model.safetensors"), "pt") as handle:
        params = sum(int(np.prod(handle.get_slice(k).get_shape())) for k in handle.keys())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    dev = [r for r in rows if r.get("split") == "dev"]
    speeds = [r["tokens_per_s"] for r in rows if r.get("split") == "train" and r.get("tokens_per_s")]
    last = dev[-1] if dev else {}
    return {"params": params, "words_seen": final.get("words_seen"), "steps": max((r["step"] for r in rows), default=None),
            "dev_clm_loss": last.get("dev_clm_loss"), "dev_mlm_loss": last.get("dev_mlm_loss"),
            "dev_curve": [[r.get("words_seen"), r.get("dev_clm_loss"), r.get("dev_mlm_loss")] for r in dev],
            "tokens_per_s": round(float(np.median(speeds)), 1) if speeds else None}


def _eval(model_dir: Path, job: dict, eval_set: str, tasks: list, backend: str, limit, glue: bool):
    from antlm.eval.runner import EvalOptions, run_eval

    options = EvalOptions(tasks=list(tasks) + (["glue"] if glue else []), backend=backend, compat="babylm2025",
                          eval_set=eval_set, limit=limit, device=job["device"], overlong=job["overlong"],
                          glue=dict(job["glue"]) if glue else {}, glue_tasks=list(job["glue_tasks"]) if glue else None,
                          glue_backends=[job["own"]] if glue else None)
    return run_eval(model_dir, Path(job["data"]), options, log=lambda m: None)


def _flat_scores(results: dict, suffix: str = "") -> tuple[dict, dict]:
    """({"<task><suffix>_<backend>": score}, {same key: items skipped}) from run_eval's results; GLUE
    as glue_<task>_<backend> per task and glue_mean_<backend> over the tasks that ran."""
    from antlm.eval.series_eval import compact_scores

    scores, skipped = {}, {}
    for backend, tasks in compact_scores(results).items():
        for task, value in tasks.items():
            if task != "glue":  # NaN (a correlation over constant scores) as null: summary.json stays strict JSON
                scores[f"{task}{suffix}_{backend}"] = value if value is None or math.isfinite(value) else None
        for task, entry in results["results"][backend]["tasks"].items():
            if entry.get("overlong", {}).get("items_skipped"):
                skipped[f"{task}{suffix}_{backend}"] = entry["overlong"]["items_skipped"]
        glue = results["results"][backend]["tasks"].get("glue")
        if glue:
            for task, value in glue["scores"].items():
                scores[f"glue_{task}_{backend}"] = value
            if glue["scores"]:
                scores[f"glue_mean_{backend}"] = float(np.mean(list(glue["scores"].values())))
    return scores, skipped


def _constant_glue(results: dict) -> list[str]:
    """The glue_<task>_<backend> scores whose validation predictions were all one class (the score is
    then that class's rate, whatever the model knows)."""
    return sorted(f"glue_{task}_{backend}" for backend, entry in results["results"].items()
                  for task, task_entry in (entry["tasks"].get("glue") or {}).get("tasks", {}).items()
                  if task_entry.get("note", "").startswith("every validation prediction"))


NOT_STARTED = "not started: past the time given to --start-before"
NOT_FINISHING = "not started: by the study's own timings it would not finish before the time given to --finish-by"


def start_deadline(text: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """`--start-before HH:MM` (or `--finish-by`) as a time stamp: today at that clock time, or tomorrow when it has
    passed today (a study started at 23:00 with 01:30). None without the option."""
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"a clock time HH:MM is needed, not '{text}'")
    now = time.time() if now is None else now
    today = time.localtime(now)
    stamp = time.mktime((today.tm_year, today.tm_mon, today.tm_mday, int(match[1]), int(match[2]), 0, 0, 0, -1))
    return stamp if stamp > now else stamp + 24 * 3600


def grown_plan(recorded: dict, scale: str, names: list[str], design: str) -> tuple[list[str], str]:
    """The study's plan only grows: an invocation for a subset (say `--seeds 1 --backbones babyllama`,
    to run a few runs now) keeps the runs and design already planned, and one that adds runs appends
    them. Returns (run names, design text)."""
    earlier = recorded.get("runs", []) if recorded.get("scale") == scale else []
    added = [n for n in names if n not in earlier]
    if not earlier or set(names) >= set(earlier):
        return earlier + added, design
    if not added:
        return earlier, recorded.get("design", design)
    return earlier + added, f"{recorded.get('design', '')} Runs added later ({', '.join(added)}): {design}"


def remaining_seconds(record: dict, needs_training: bool, finished: list[dict]) -> Optional[float]:
    """How long the stages a run still lacks took in the study's finished runs most like it (the same
    backbone and condition, else the same backbone, else any): the longest of them, the cautious
    estimate, since they ran two to a machine. None when no run has finished to go by."""
    for alike in (lambda r: (r["backbone"], r["condition"]) == (record["backbone"], record["condition"]),
                  lambda r: r["backbone"] == record["backbone"], lambda r: True):
        references = [r for r in finished if alike(r) and r.get("final_parts") and r.get("curve")]
        if references:
            break
    else:
        return None
    estimates = []
    for ref in references:
        seconds = ref["train"]["train_s"] if needs_training else 0.0
        if not record.get("curve_done"):
            share = 1 - len(record.get("curve", {})) / max(1, len(ref["curve"]))
            seconds += max(0.0, share) * sum(e.get("seconds", 0) for e in ref["curve"].values())
        if "final" not in record:
            seconds += sum(part["seconds"] for backend, part in ref["final_parts"].items()
                           if backend not in record.get("final_parts", {}))
        estimates.append(seconds)
    return max(estimates)


def run_one(job: dict) -> tuple[str, Optional[str]]:
    """Train, score the word checkpoints, score the final model: each stage skipped when its record
    exists, each recorded as it finishes. Returns (name, error or None)."""
    import torch

    torch.set_num_threads(job["threads"])
    name, run_dir, record_path = job["name"], Path(job["run_dir"]), Path(job["record"])

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {name}: {message}", flush=True)

    if job.get("start_before") and time.time() > job["start_before"]:
        log(NOT_STARTED)
        return name, NOT_STARTED
    if job.get("finish_by") and job.get("expected_s") and time.time() + job["expected_s"] > job["finish_by"]:
        log(f"{NOT_FINISHING} (expected {job['expected_s'] / 60:.0f} min)")
        return name, NOT_FINISHING
    try:
        record = load_record(record_path)
        record.update({k: job[k] for k in ("name", "scale", "backbone", "condition", "preset", "schedule", "seed",
                                           "corpus", "corpus_words", "milestones", "settings")})
        needs_model = not record_done(record, job["has_eval"])
        if needs_model and ("train" not in record or not (run_dir / "final" / "config.json").is_file()):
            clock = _train(job, run_dir, log)
            seconds = clock["seconds"]
            facts = training_facts(run_dir)
            if "train" in record:  # a new session without the run dir: retrained (same seed, same data)
                # The curve points already recorded came from the first training: say whether the
                # retrained model is the same one (same steps and dev losses of both objectives).
                identical = all(facts[k] == record["train"].get(k) for k in ("steps", "dev_clm_loss", "dev_mlm_loss"))
                record["train"]["retrain_s"] = round(record["train"].get("retrain_s", 0) + seconds, 1)
                record["train"]["retrain_identical"] = identical
                log("retrained: " + ("the same model (steps and dev losses identical)" if identical else
                                     f"NOT the same model: dev clm {facts['dev_clm_loss']} against "
                                     f"{record['train'].get('dev_clm_loss')} recorded"))
            else:
                record["train"] = {**facts, "train_s": round(seconds, 1), "commit": job["commit"],
                                   "threads": job["threads"], "device": job["device"],
                                   "interruptions": clock["interruptions"]}
            save_record(job, record)
            log(f"trained in {seconds / 60:.1f} min, dev clm {facts['dev_clm_loss']}, dev mlm {facts['dev_mlm_loss']}")
        if not job["has_eval"]:
            return name, None
        _curve(job, run_dir, record, record_path, log)
        if "final" not in record:
            # Own backend (with GLUE) first, then the other one; each recorded as it finishes.
            parts = record.setdefault("final_parts", {})
            for backend in (job["own"], OTHER_BACKEND[job["backbone"]]):
                if backend in parts:
                    continue
                glue = bool(job["glue_tasks"]) and backend == job["own"]
                log(f"final model: full 2025 suite, {backend}" + (", GLUE" if glue else ""))
                began = time.perf_counter()
                limit = limit_for(job["final_limit"], backend)
                results = _eval(run_dir / "final", job, "full", job["final_tasks"], backend, limit, glue)
                scores, skipped = _flat_scores(results)
                parts[backend] = {"scores": scores, "items_skipped": skipped, "limit": limit,
                                  "complete": results["complete"], "glue_constant": _constant_glue(results),
                                  "seconds": round(time.perf_counter() - began, 1)}
                save_record(job, record)
                log(f"final {backend} scored in {parts[backend]['seconds'] / 60:.1f} min")
            record["final"] = {"scores": {k: v for p in parts.values() for k, v in p["scores"].items()},
                               "items_skipped": {k: v for p in parts.values() for k, v in p["items_skipped"].items()},
                               "limit": {b: p["limit"] for b, p in parts.items()}, "glue": job["glue"],
                               "glue_tasks": job["glue_tasks"],
                               "glue_constant": sorted(k for p in parts.values() for k in p.get("glue_constant", [])),
                               "complete": all(p["complete"] for p in parts.values()),
                               "seconds": round(sum(p["seconds"] for p in parts.values()), 1), "commit": job["commit"]}
            save_record(job, record)
        return name, None
    except Exception as err:  # one failed run must not stop the others; its record keeps what finished
        import traceback

        traceback.print_exc()
        return name, f"{type(err).__name__}: {err}"


def _curve(job: dict, run_dir: Path, record: dict, record_path: Path, log: Callable) -> None:
    """Each word checkpoint, then the final model, on the fast sets with the backbone's own backend;
    recorded one checkpoint at a time, so an interruption loses at most one checkpoint's scoring."""
    from antlm.train.series import read_series

    if record.get("curve_done"):
        return
    curve = record.setdefault("curve", {})
    final_words = json.loads((run_dir / "final" / "config.json").read_text()).get("words_seen")
    points = [(n, p, m) for n, p, m in read_series(run_dir)] + [("final", run_dir / "final", {"words_seen": final_words})]
    for revision, path, meta in points:
        if revision in curve:
            continue
        same = [e for e in curve.values() if e["words_seen"] == meta.get("words_seen")]
        began = time.perf_counter()
        if revision == "final" and same:  # the last milestone holds the final weights: scored already
            scores = same[0]["scores"]
        else:
            results = _eval(path, job, "fast", job["curve_tasks"], job["own"], limit_for(job["curve_limit"], job["own"]),
                            False)
            scores = {t: v for t, v in _flat_scores(results)[0].items()}
        curve[revision] = {"milestone": meta.get("words"), "words_seen": meta.get("words_seen"), "step": meta.get("step"),
                           "scores": scores, "seconds": round(time.perf_counter() - began, 1)}
        save_record(job, record)
        log(f"curve {revision} ({meta.get('words_seen'):,} words seen) scored")
    record["curve_done"] = True
    save_record(job, record)

# ------------------------------------------------------------------------------------------- main

def _limit_text(limits: dict) -> str:
    return ", ".join(f"{kind} {'all' if n is None else f'first {n}'}" for kind, n in limits.items())


def save_record(job: dict, record: dict) -> None:
    """Write a run's record atomically; with --commit-records also commit it, so that a session that
    ends in the middle of a run keeps every stage finished so far (nothing else survives it)."""
    write_json_atomic(Path(job["record"]), record)
    if job.get("commit_records"):
        commit_records([Path(job["record"])], f"strict_small_2025 ({job['scale']}): {job['name']} record",
                       Path(job["git_lock"]))


def commit_records(paths: list[Path], message: str, lock: Optional[Path] = None) -> None:
    """`git add` + `git commit` of the records and the report, in the repository the study runs from.
    Parallel workers take `lock` first, so their commits do not race on the index."""
    import fcntl

    rel = []
    for path in paths:  # only what the repository can hold: not outside it, not ignored (smoke's runs/)
        if path.exists() and REPO in path.resolve().parents and subprocess.run(
                ["git", "-C", str(REPO), "check-ignore", "-q", str(path.resolve())]).returncode != 0:
            rel.append(str(path.resolve().relative_to(REPO)))
    if not rel:
        return
    handle = open(lock, "a") if lock is not None else None
    try:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        subprocess.run(["git", "-C", str(REPO), "add", "--", *rel], check=True, capture_output=True)
        if subprocess.run(["git", "-C", str(REPO), "diff", "--cached", "--quiet", "--", *rel]).returncode == 0:
            return  # nothing new (a worker committed it already)
        subprocess.run(["git", "-C", str(REPO), "commit", "-q", "-m", message, "--", *rel], check=True,
                       capture_output=True)
    except subprocess.CalledProcessError as err:
        print(f"warning: could not commit the records: {err.stderr.decode(errors='replace').strip()}", flush=True)
    finally:
        if handle is not None:
            handle.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=tuple(SCALES), default="cpu")
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--seeds", default=None, help="comma-separated seeds for every backbone (default: the scale's)")
    parser.add_argument("--with-mix", action="store_true", help="add the GPT-BERT-style mix (opt-in, after the rest)")
    parser.add_argument("--windows", type=int, default=None, help="cpu: 10k-word windows per source (default 17)")
    parser.add_argument("--jobs", type=int, default=None, help="runs in parallel, one thread each on CPU")
    parser.add_argument("--curve-entity-tracking", action="store_true", help="entity tracking in the learning curves")
    parser.add_argument("--final-limit", default=None,
                        help="items per subtask, final suite: N, or causal=N,masked=M (0: all; default: the scale's)")
    parser.add_argument("--curve-limit", default=None, help="items per subtask, learning curves (as --final-limit)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "strict_small_2025", help="run directories")
    parser.add_argument("--records", type=Path, default=None, help="default: records/<scale>/ here")
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="RESULTS.md, summary.json, figures/ (default: here for cpu, paper/ for paper, OUT for smoke)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the records, run nothing")
    parser.add_argument("--commit-records", action="store_true", help="git commit records + report after each run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override, every run")
    parser.add_argument("--start-before", default=None, metavar="HH:MM",
                        help="start no run after this clock time (a run that cannot finish in the session "
                             "trains for nothing: its run directory is lost with the session)")
    parser.add_argument("--finish-by", default=None, metavar="HH:MM",
                        help="start a run only if, by the times of the study's finished runs most like it, its "
                             "remaining stages end before this clock time (a run with nothing to go by starts)")
    args = parser.parse_args(argv)
    deadlines = {}
    for option in ("start_before", "finish_by"):
        try:
            deadlines[option] = start_deadline(getattr(args, option))
        except ValueError as err:
            print(f"error: --{option.replace('_', '-')}: {err}", file=sys.stderr)
            return 2
    start_before, finish_by = deadlines["start_before"], deadlines["finish_by"]

    scale = SCALES[args.scale]
    if args.curve_entity_tracking and "entity_tracking" not in scale.curve_tasks:
        scale = replace(scale, curve_tasks=scale.curve_tasks + ("entity_tracking",))
    for name in ("final_limit", "curve_limit"):  # --final-limit N, or causal=N,masked=M (0: all items)
        text = getattr(args, name)
        if text is not None:
            parsed = dict(part.split("=") for part in text.split(",")) if "=" in text else {"causal": text, "masked": text}
            limits = {**getattr(scale, name), **{k: (int(v) or None) for k, v in parsed.items()}}
            scale = replace(scale, **{name: limits})
    args.seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    records_dir = args.records or HERE / "records" / args.scale
    out = args.out / args.scale
    report_dir = args.report_dir or {"cpu": HERE, "paper": HERE / "paper"}.get(args.scale, out / "report")
    runs = plan_runs(args, scale)
    if args.report_only and (records_dir / "plan.json").is_file():
        print(f"report: {write_report(records_dir, report_dir)}")
        return 0

    jobs = args.jobs or scale.jobs
    threads = max(1, (os.cpu_count() or 1) // jobs) if scale.device == "cpu" else max(1, os.cpu_count() or 1)
    windows = args.windows if args.windows is not None else scale.windows
    has_eval = (args.data / "babylm_2025_eval").is_dir()
    out.mkdir(parents=True, exist_ok=True)
    corpus, corpus_text = prepare_corpus(scale, out, args.data, windows)
    corpus_words = count_words(corpus)
    milestones = scaled_milestones(corpus_words, scale.milestones_m)
    commit = code_commit()
    design = (f"scale `{args.scale}`; corpus: {corpus_text}, {corpus_words:,} words; 10 epochs per run; conditions "
              + "; ".join(f"{r['backbone']} {r['condition']} `{r['schedule']}` ({r['preset']})"
                          for r in {(r['backbone'], r['condition']): r for r in runs}.values())
              + f"; seeds {sorted({r['seed'] for r in runs})}; overrides {scale.common + args.overrides} and per "
              f"backbone {scale.model}; word checkpoints at {', '.join(f'{m:,}' for m in milestones)} words seen (the "
              f"BabyLM milestones {', '.join(f'{m}M' for m in scale.milestones_m)} scaled by corpus words / 10M), "
              f"each scored on the 2025 fast sets ({', '.join(scale.curve_tasks)}) with the backbone's own backend "
              f"(BabyLlama causal, LTG-BERT mlm), items per subtask {_limit_text(scale.curve_limit)}; "
              f"final models on the full 2025 zero-shot suite ({', '.join(scale.final_tasks)}) with both backends "
              f"(BabyLlama causal and mntp, LTG-BERT mlm and causal)"
              f", items per subtask {_limit_text(scale.final_limit)}, over-long items "
              f"{scale.overlong or 'by the pipeline rule'}, and GLUE {', '.join(scale.glue_tasks) or 'none'} under the "
              f"2025 recipe with the own backend ({scale.glue or 'full size'}); statistics paired over seeds, "
              f"macro = mean of BLiMP, supplement, EWoK and entity tracking of one backend.")
    names, design = grown_plan(load_record(records_dir / "plan.json"), args.scale, [r["name"] for r in runs], design)
    write_json_atomic(records_dir / "plan.json", {"scale": args.scale, "runs": names,
                                                  "has_eval": has_eval, "design": design, "commit": commit})
    if args.report_only:  # no plan recorded yet: the report of a study not started
        print(f"report: {write_report(records_dir, report_dir)}")
        return 0
    pending = []
    records = {run["name"]: load_record(records_dir / f"{run['name']}.json") for run in runs}
    done = [r for r in records.values() if record_done(r, has_eval)]
    for run in runs:
        record_path = records_dir / f"{run['name']}.json"
        overrides = [*run_overrides(scale, run["backbone"], corpus, run["schedule"], run["seed"], threads, milestones),
                     *args.overrides]
        record = records[run["name"]]
        mismatch = record_mismatch(record, corpus_words, overrides)
        if mismatch:
            print(f"error: {record_path.name} was made with {mismatch}; a study's runs must share their settings "
                  "(--records DIR starts a separate study)", file=sys.stderr)
            return 2
        if record_done(record, has_eval):
            continue
        pending.append({**run, "scale": args.scale, "run_dir": str(out / run["name"]), "record": str(record_path),
                        "overrides": overrides, "threads": threads, "device": scale.device, "commit": commit,
                        "data": str(args.data), "has_eval": has_eval, "own": OWN_BACKEND[run["backbone"]],
                        "curve_tasks": list(scale.curve_tasks), "final_tasks": list(scale.final_tasks),
                        "curve_limit": scale.curve_limit, "final_limit": scale.final_limit,
                        "glue_tasks": list(scale.glue_tasks), "glue": dict(scale.glue),
                        "overlong": scale.overlong.get(run["backbone"]), "corpus": corpus_text,
                        "corpus_words": corpus_words, "milestones": milestones,
                        "settings": [o for o in overrides if not o.startswith("data.corpus=")],
                        "commit_records": args.commit_records, "git_lock": str(out / ".git-commit.lock"),
                        "start_before": start_before, "finish_by": finish_by,
                        "expected_s": remaining_seconds({**run, **record}, not (out / run["name"] / "final" /
                                                                              "config.json").is_file(), done)})
    print(f"{len(runs) - len(pending)} of {len(runs)} runs already recorded; {len(pending)} to run, {jobs} at a time; "
          f"code {commit}" + ("" if has_eval else "; no 2025 eval data: training only"), flush=True)
    failures, not_started = [], []

    def finished(name: str, error: Optional[str]) -> None:
        if error in (NOT_STARTED, NOT_FINISHING):
            not_started.append(name)
            return
        if error:
            failures.append(name)
            print(f"{name} FAILED: {error}", flush=True)
        if args.scale != "smoke" or args.commit_records:  # partial results readable (and committed) as they come
            write_report(records_dir, report_dir)
        if args.commit_records:
            commit_records([records_dir, report_dir / "RESULTS.md", report_dir / "summary.json",
                            report_dir / "figures"], f"strict_small_2025 ({args.scale}): {name}",
                           out / ".git-commit.lock")
        print(f"{name} done", flush=True)

    if jobs == 1 or len(pending) <= 1:
        for job in pending:
            finished(*run_one(job))
    else:
        # One-thread processes beat one two-thread process at these sizes (less synchronisation per
        # small matmul); spawn, so no torch state is forked.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_die_with_parent) as pool:
            for future in as_completed([pool.submit(run_one, job) for job in pending]):
                finished(*future.result())
    if not_started:
        print(f"{len(not_started)} runs not started (--start-before / --finish-by); the same command continues with "
              "them", flush=True)
    print(f"report: {write_report(records_dir, report_dir)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
