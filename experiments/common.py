"""What the experiment recipes share: the shared corpus sample, and training plus evaluating one
(condition, seed) per worker process. Import it as `experiments.common`: the recipes run as
`python -m experiments.<study>.run` from the repository root."""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from antlm.config import build_config
from antlm.eval.outputs import write_outputs
from antlm.eval.runner import EvalOptions, run_eval
from antlm.train.loop import train
from antlm.train.setup import RunError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SOURCES = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki", "switchboard")


def draw_sample(out: Path, windows_per_source: int) -> Path:
    """The first N 10,000-word windows (lines) of each source file of the shared snippets corpus:
    a fixed, documented sample with all six sources in equal shares."""
    sample = out / f"sample-{windows_per_source}w"
    if (sample / "DONE").is_file():
        return sample
    sample.mkdir(parents=True, exist_ok=True)
    source_dir = SHARED / "babylm_2024_100M_snippets"
    for source in SOURCES:
        lines = (source_dir / f"{source}.txt").read_text(encoding="utf-8").splitlines()
        (sample / f"{source}.train").write_text("\n".join(lines[:windows_per_source]) + "\n", encoding="utf-8")
    (sample / "DONE").write_text("")
    return sample


def _die_with_parent() -> None:
    """Pool initializer: on Linux a worker gets SIGTERM when the study process dies, so killing the
    study never leaves orphans writing into its run directories."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_condition(job: dict) -> tuple[str, dict]:
    """Train and evaluate one (condition, seed); runs in a worker process when --jobs > 1."""
    import torch

    torch.set_num_threads(job["threads"])
    run_dir = Path(job["run_dir"])
    start = time.perf_counter()
    cfg = build_config(job["preset"], job["overrides"])
    if (run_dir / "config.yaml").is_file():
        # Started before the study was interrupted: resume from its last checkpoint (a no-op once
        # trained) rather than retrain; a changed config makes resume refuse, and then the run is
        # trained afresh.
        try:
            train(cfg, run_dir, resume=True, log=lambda m: None)
        except RunError:
            train(cfg, run_dir, force=True, log=lambda m: None)
    else:
        train(cfg, run_dir, force=True, log=lambda m: None)
    timing = {"train_s": round(time.perf_counter() - start, 1)}
    if job["eval"] is not None:
        # A list of evaluations (different backends per task set) is merged into one results.json.
        results = None
        for options in job["eval"] if isinstance(job["eval"], list) else [job["eval"]]:
            part = run_eval(run_dir, SHARED, EvalOptions(**options), log=lambda m: None)
            results = part if results is None else merge_results(results, part)
        write_outputs(results, run_dir / "results.json", None)
    timing["total_s"] = round(time.perf_counter() - start, 1)
    return run_dir.name, timing


def run_jobs(pending: list[dict], jobs: int, timings: dict, timings_path: Path) -> None:
    """run_condition on each job, `jobs` at a time, recording each run's timing as it finishes."""
    if not pending:
        return
    if jobs == 1:
        finished = map(run_condition, pending)
    else:
        # Separate processes with one thread each beat one process with two threads at these
        # model sizes (less synchronisation per small matmul).
        os.environ["OMP_NUM_THREADS"] = str(pending[0]["threads"])
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_die_with_parent)
        finished = pool.map(run_condition, pending)
    for name, timing in finished:
        timings[name] = timing
        print(f"{name}: {timing}", flush=True)
        timings_path.write_text(json.dumps(timings, indent=1))
    if jobs > 1:
        pool.shutdown()


def merge_results(results: dict, part: dict) -> dict:
    """Fold the backends x tasks of a second `run_eval` of the same model into the first."""
    for backend, entry in part["results"].items():
        results["results"].setdefault(backend, entry)["tasks"].update(entry["tasks"])
    for backend, predictions in part.get("submission", {}).items():
        results.setdefault("submission", {}).setdefault(backend, {}).update(predictions)
    for backend, rule in part.get("overlong", {}).items():
        results.setdefault("overlong", {}).setdefault(backend, rule)
    results["tasks"] = [*results.get("tasks", []), *[t for t in part.get("tasks", []) if t not in results.get("tasks", [])]]
    results["complete"] = bool(results.get("complete")) and bool(part.get("complete"))
    return results
