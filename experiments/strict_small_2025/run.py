"""AntLM against its single-objective baselines under the BabyLM 2025 strict-small rules (10 epochs,
word checkpoints scored on the fast sets as learning curves, the full 2025 suite on the final
models), at CPU scale or paper scale with one command (issue 20; README.md here has the design):

    python experiments/strict_small_2025/run.py --scale smoke     # seconds: the CI form
    python experiments/strict_small_2025/run.py --scale cpu       # ~12 h on 2 cores, resumable
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
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_DATA = Path(os.environ.get("ANTLM_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki", "switchboard")
BACKBONES = ("babyllama", "ltgbert")
OWN_BACKEND = {"babyllama": "causal", "ltgbert": "mlm"}
OTHER_BACKEND = {"babyllama": "mntp", "ltgbert": "causal"}
# The BabyLM 2025 revisions chck_1M ... chck_100M (on a 10M-word corpus) that become the word
# checkpoints, scaled by corpus words / 10M: about 10 points, denser early where curves move.
BABYLM_MILESTONES_M = (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100)
BABYLM_CORPUS_WORDS = 10_000_000

# (condition, preset, schedule), the baseline first. Equal words seen (10 epochs) in a backbone;
# AntLM keeps the paper's proportions (4:16:4, 6:60:6) scaled to 10 epochs, as the presets do.
CONDITIONS = {
    "babyllama": [("clm", "babyllama-clm-10ep", "10_clm"),
                  ("antlm", "babyllama-antlm-10ep", "1.67_clm+6.66_mlm+1.67_clm")],
    "ltgbert": [("mlm", "ltgbert-mlm-10ep", "10_mlm"),
                ("antlm", "ltgbert-antlm-10ep", "0.83_clm+8.33_mlm+0.83_clm")],
}
# --with-mix: the GPT-BERT-style mix on the same data (1 causal in 16 batches), same 10 epochs.
MIX = {"babyllama": ("mix", "babyllama-antlm-10ep", "10_mix(clm=1,mlm=15)"),
       "ltgbert": ("mix", "ltgbert-antlm-10ep", "10_mix(clm=1,mlm=15)")}


@dataclass
class Scale:
    """Everything that differs between the smoke test, the CPU study and the paper-scale study."""
    corpus: str  # "embedded" (smoke), "sample" (N windows per source) or "all" (the whole snippets corpus)
    windows: int  # 10k-word windows per source for "sample"
    seeds: dict  # backbone -> number of seeds
    device: str
    jobs: int
    common: list  # config overrides for every run
    model: dict  # backbone -> config overrides
    curve_tasks: tuple
    final_tasks: tuple
    curve_limit: dict  # items per subtask by scoring kind ("causal", "masked": PLL, far costlier); None: all
    final_limit: dict
    glue_tasks: tuple  # the 2025 GLUE tasks with training data here
    glue: dict  # GlueSettings overrides (train_limit, eval_limit, max_epochs); {}: the recipe as is
    overlong: dict = field(default_factory=dict)  # backbone -> over-long policy; absent: the pipeline's
    smoke_sentences: int = 0
    milestones_m: tuple = BABYLM_MILESTONES_M  # which BabyLM milestones become word checkpoints


def _limits(causal: Optional[int], masked: Optional[int] = -1) -> dict:
    return {"causal": causal, "masked": causal if masked == -1 else masked}


def limit_for(limits: dict, backend: str) -> Optional[int]:
    return limits["causal" if backend == "causal" else "masked"]


# Measured on the shared 2-core machine (README "Measured evaluation costs"): causal scoring of the
# whole fast BLiMP (13,400 items) takes ~1.5 min for the 5M BabyLlama, masked (PLL) scoring ~20x
# that. So PLL reads a fixed subset: the first N items of every subtask.
CPU_CURVE_LIMIT = {"causal": None, "masked": 20}
CPU_FINAL_LIMIT = {"causal": None, "masked": 50}
ZERO_SHOT_2025 = ("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "reading")
GLUE_2025_HERE = ("mnli", "mrpc", "qqp", "rte", "wsc")  # boolq and multirc have no training data here
CURVE_TASKS = ("blimp", "blimp_supplement", "ewok", "wug_adj", "wug_past")

# The CPU scale: change these numbers here (or with --windows / --set on the command line).
SCALES = {
    "smoke": Scale(
        corpus="embedded", windows=0, seeds={"babyllama": 2, "ltgbert": 2}, device="cpu", jobs=1,
        common=["data.vocab_size=400", "data.seq_len=32", "train.batch_size=16", "train.eval_every=20",
                "train.checkpoint_every=20", "train.eval_batches=2", "train.log_every=20"],
        model={b: ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.ffn_size=64",
                   "model.max_seq_len=128"] for b in BACKBONES},
        curve_tasks=("blimp",), final_tasks=("blimp", "wug_adj"), curve_limit=_limits(2), final_limit=_limits(2),
        glue_tasks=("rte",), glue={"train_limit": 16, "eval_limit": 16, "max_epochs": 1},
        overlong={"babyllama": "skip", "ltgbert": "skip"}, smoke_sentences=300, milestones_m=(10, 100)),
    "cpu": Scale(
        # 17 windows (1.02M words), the probe's choice: README "The probe" has its figures and the
        # budget that ruled out 25 windows (1.5M words).
        corpus="sample", windows=17, seeds={"babyllama": 4, "ltgbert": 3}, device="cpu", jobs=2,
        common=["data.vocab_size=8000", "data.seq_len=128", "train.batch_size=32", "optim.warmup_fraction=0.03",
                "optim.min_lr_ratio=0.1", "train.eval_every=200", "train.eval_batches=8", "train.log_every=50",
                "train.checkpoint_every=200"],
        model={"babyllama": ["model.hidden_size=192", "model.num_layers=4", "model.num_heads=6", "model.ffn_size=576",
                             "model.max_seq_len=128", "optim.lr=1.33e-3"],
               # LTG-BERT's GEGLU has three ffn matrices to Llama's three: the same ffn width, ~the same size.
               "ltgbert": ["model.hidden_size=192", "model.num_layers=4", "model.num_heads=6", "model.ffn_size=576",
                           "optim.lr=5e-3"]},
        curve_tasks=CURVE_TASKS, final_tasks=ZERO_SHOT_2025, curve_limit=CPU_CURVE_LIMIT, final_limit=CPU_FINAL_LIMIT,
        glue_tasks=GLUE_2025_HERE, glue={"train_limit": 2000, "eval_limit": 1000, "max_epochs": 3},
        overlong={"ltgbert": "skip"}),
    "paper": Scale(
        corpus="all", windows=0, seeds={"babyllama": 4, "ltgbert": 3}, device="cuda", jobs=1, common=[], model={},
        curve_tasks=CURVE_TASKS + ("entity_tracking",), final_tasks=ZERO_SHOT_2025, curve_limit=_limits(None),
        final_limit=_limits(None),
        glue_tasks=GLUE_2025_HERE, glue={}, overlong={"ltgbert": "skip"}),
}


# ----------------------------------------------------------------------------------- small helpers

def scaled_milestones(corpus_words: int, marks_m=BABYLM_MILESTONES_M) -> list[int]:
    """The BabyLM milestones (in millions of words seen on a 10M corpus) scaled to a corpus of
    `corpus_words` words, so that chck_1M stays at a tenth of an epoch and chck_100M at 10 epochs."""
    return sorted({max(1, m * 1_000_000 * corpus_words // BABYLM_CORPUS_WORDS) for m in marks_m})


def count_words(corpus: Path) -> int:
    """Training words as the tracks count them: whitespace words of every *.train / *.txt file."""
    return sum(len(p.read_text(encoding="utf-8").split()) for p in sorted(corpus.iterdir())
               if p.suffix in (".train", ".txt"))


def parse_schedule(text: str) -> list[tuple[float, str]]:
    """`1.67_clm+6.66_mlm+1.67_clm` -> [(1.67, "clm"), (6.66, "mlm"), (1.67, "clm")] (epochs, objective)."""
    phases = []
    for part in text.split("+"):
        match = re.match(r"^([\d.]+)_([a-z]+)", part.strip())
        phases.append((float(match[1]), match[2]))
    return phases


def write_json_atomic(path: Path, data) -> None:
    text = json.dumps(data, indent=1, sort_keys=False)
    check_no_paths(text, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_no_paths(text: str, what: str) -> None:
    """Records and reports travel between machines: none may hold a path of this one."""
    for root in {str(REPO), str(REPO.parent), str(Path.home())}:
        if len(root) > 1 and root in text:
            raise ValueError(f"{what} would contain the machine path {root}")


def code_commit() -> str:
    """The last commit that changed the code the study runs (the library, this script, the package
    metadata), `-dirty` when the working tree differs from it. Not HEAD: with --commit-records HEAD
    moves with every record, while the code stays at the commit the study started from."""
    code = ["antlm", str(Path(__file__).resolve().relative_to(REPO)), "pyproject.toml"]
    try:
        head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H", "--", *code], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", *code],
                               capture_output=True, text=True).stdout.strip()
        return (head or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError, ValueError):
        return "unknown"


# ------------------------------------------------------------------------------------- statistics

def paired_stats(base: dict, other: dict) -> dict:
    """other - base over the seeds both have (seed k paired with seed k): mean difference, its 95%
    confidence interval from the t distribution, the paired t-test p. CI and p are None under two
    pairs, p is None when every difference is the same (t undefined)."""
    from scipy import stats

    seeds = sorted(set(base) & set(other))
    out = {"n": len(seeds), "base_mean": None, "other_mean": None, "diff": None, "ci_low": None, "ci_high": None,
           "p": None}
    if not seeds:
        return out
    a, b = np.array([base[s] for s in seeds], float), np.array([other[s] for s in seeds], float)
    diffs = b - a
    out.update(base_mean=float(a.mean()), other_mean=float(b.mean()), diff=float(diffs.mean()))
    if len(seeds) < 2:
        return out
    half = float(stats.t.ppf(0.975, len(seeds) - 1) * diffs.std(ddof=1) / math.sqrt(len(seeds)))
    out.update(ci_low=out["diff"] - half, ci_high=out["diff"] + half)
    if not np.allclose(diffs, diffs[0], rtol=0, atol=1e-12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["p"] = float(stats.ttest_rel(b, a).pvalue)
    return out


def holm(pvalues: list) -> list:
    """Holm-Bonferroni adjusted p-values (None stays None and does not count as a test)."""
    ranked = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list = [None] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[index] = running
    return adjusted


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
                             "preset": preset, "schedule": schedule, "seed": seed})
    return runs


def load_record(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


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


def record_done(record: dict, has_eval: bool) -> bool:
    return "train" in record and (not has_eval or ("final" in record and record.get("curve_done", False)))


# -------------------------------------------------------------------------------------- one run

def _die_with_parent() -> None:
    """Pool initializer: a worker gets SIGTERM when the study process dies (Linux), so stopping the
    study never leaves orphans writing into its run directories."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _train(job: dict, run_dir: Path, log: Callable) -> float:
    from antlm.config import build_config
    from antlm.train.loop import train
    from antlm.train.setup import RunError

    cfg = build_config(job["preset"], job["overrides"])
    start = time.perf_counter()
    if (run_dir / "config.yaml").is_file():
        # Started in this session before an interruption: resume from the last checkpoint (a
        # no-op once trained); a changed config makes resume refuse, and then it trains afresh.
        try:
            log("resuming training")
            train(cfg, run_dir, resume=True, log=lambda m: None)
        except RunError:
            log("cannot resume (changed config): training afresh")
            train(cfg, run_dir, force=True, log=lambda m: None)
    else:
        log("training")
        train(cfg, run_dir, force=True, log=lambda m: None)
    return time.perf_counter() - start


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


NOT_STARTED = "not started: past the time given to --start-before"


def start_deadline(text: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """`--start-before HH:MM` as a time stamp: today at that clock time, or tomorrow when it has
    passed today (a study started at 23:00 with 01:30). None without the option."""
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"--start-before takes a clock time HH:MM, not '{text}'")
    now = time.time() if now is None else now
    today = time.localtime(now)
    stamp = time.mktime((today.tm_year, today.tm_mon, today.tm_mday, int(match[1]), int(match[2]), 0, 0, 0, -1))
    return stamp if stamp > now else stamp + 24 * 3600


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
    try:
        record = load_record(record_path)
        record.update({k: job[k] for k in ("name", "scale", "backbone", "condition", "preset", "schedule", "seed",
                                           "corpus", "corpus_words", "milestones", "settings")})
        needs_model = not record_done(record, job["has_eval"])
        if needs_model and ("train" not in record or not (run_dir / "final" / "config.json").is_file()):
            seconds = _train(job, run_dir, log)
            facts = training_facts(run_dir)
            if "train" in record:  # a new session without the run dir: retrained (same seed, same data)
                record["train"]["retrain_s"] = round(record["train"].get("retrain_s", 0) + seconds, 1)
            else:
                record["train"] = {**facts, "train_s": round(seconds, 1), "commit": job["commit"],
                                   "threads": job["threads"], "device": job["device"]}
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
                                  "complete": results["complete"], "seconds": round(time.perf_counter() - began, 1)}
                save_record(job, record)
                log(f"final {backend} scored in {parts[backend]['seconds'] / 60:.1f} min")
            record["final"] = {"scores": {k: v for p in parts.values() for k, v in p["scores"].items()},
                               "items_skipped": {k: v for p in parts.values() for k, v in p["items_skipped"].items()},
                               "limit": {b: p["limit"] for b, p in parts.items()}, "glue": job["glue"],
                               "glue_tasks": job["glue_tasks"], "complete": all(p["complete"] for p in parts.values()),
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


# ----------------------------------------------------------------------------------------- report

def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value) -> str:
    return "n/a" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def final_scores(record: dict) -> dict:
    """The final model's scores: the full suite under both backends, GLUE, and (from the curve's
    last point) the fast sets with the own backend, as `<task>_fast_<backend>`."""
    scores = dict(record.get("final", {}).get("scores", {}))
    last = record.get("curve", {}).get("final")
    if last:
        for key, value in last["scores"].items():
            task, backend = key.rsplit("_", 1)
            scores[f"{task}_fast_{backend}"] = value
    for backend in ("causal", "mlm", "mntp"):
        parts = [scores.get(f"{t}_{backend}") for t in ("blimp", "blimp_supplement", "ewok", "entity_tracking")]
        if all(p is not None for p in parts):
            scores[f"macro_{backend}"] = float(np.mean(parts))
    return scores


def backbone_stats(records: list[dict], backbone: str) -> list[dict]:
    """Every condition against the backbone's baseline, per score and per dev loss, paired by seed,
    Holm-corrected over all the tests of the backbone."""
    mine = [r for r in records if r["backbone"] == backbone and "train" in r]
    base_name = CONDITIONS[backbone][0][0]
    rows = []
    for condition in [c for c in dict.fromkeys(r["condition"] for r in mine) if c != base_name]:
        values: dict = {}
        for r in mine:
            if r["condition"] not in (base_name, condition):
                continue
            metrics = {**final_scores(r), "dev_clm_loss": r["train"].get("dev_clm_loss"),
                       "dev_mlm_loss": r["train"].get("dev_mlm_loss")}
            for key, value in metrics.items():
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    values.setdefault(key, {}).setdefault(r["condition"], {})[r["seed"]] = value
        for key in sorted(values):
            both = values[key]
            if base_name in both and condition in both:
                rows.append({"condition": condition, "baseline": base_name, "metric": key,
                             **paired_stats(both[base_name], both[condition])})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = adjusted
    return rows


def plot_curves(records: list[dict], backbone: str, path: Path) -> Optional[Path]:
    """One panel per fast-set task: mean over seeds per condition against words seen, the spread
    (min-max over seeds) as a band, the phases of the other objective shaded."""
    mine = [r for r in records if r["backbone"] == backbone and r.get("curve")]
    if not mine:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = OWN_BACKEND[backbone]
    tasks = sorted({k for r in mine for e in r["curve"].values() for k in e["scores"]})
    cols = min(3, len(tasks))
    fig, axes = plt.subplots(math.ceil(len(tasks) / cols), cols, figsize=(max(6.0, 4.2 * cols), 0.6 + 3.3 * math.ceil(len(tasks) / cols)),
                             squeeze=False)
    conditions = list(dict.fromkeys(r["condition"] for r in mine))
    for ax, task in zip(axes.flat, tasks):
        for index, condition in enumerate(conditions):
            runs = [r for r in mine if r["condition"] == condition]
            by_words: dict = {}
            for r in runs:
                for e in r["curve"].values():
                    if e["scores"].get(task) is not None and e["words_seen"]:
                        by_words.setdefault(e["words_seen"], []).append(e["scores"][task])
            words = sorted(by_words)
            mean = [np.mean(by_words[w]) for w in words]
            color = f"C{index}"
            ax.plot(words, mean, marker="o", ms=3, color=color, label=f"{condition} (n={len(runs)})")
            ax.fill_between(words, [min(by_words[w]) for w in words], [max(by_words[w]) for w in words],
                            color=color, alpha=0.15, lw=0)
            # Shade the phases of the other objective than the backbone's baseline (AntLM's MLM
            # phases for BabyLlama, its CLM phases for LTG-BERT; the whole of a mix run is one phase).
            epoch, start, baseline = runs[0]["corpus_words"], 0.0, OWN_BACKEND[backbone].replace("causal", "clm")
            for epochs, objective in parse_schedule(runs[0]["schedule"]):
                if objective not in (baseline, "mix"):
                    ax.axvspan(max(start * epoch, 1), (start + epochs) * epoch, color=color, alpha=0.08, lw=0)
                start += epochs
        ax.set_xscale("log")
        ax.set_title(task.replace(f"_{own}", f" ({own})"), fontsize=9)
        ax.set_xlabel("words seen")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{backbone}: fast sets at the word checkpoints\n(band: min-max over seeds; shaded: the other "
                 "objective's phases)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dev(records: list[dict], backbone: str, path: Path) -> Optional[Path]:
    mine = [r for r in records if r["backbone"] == backbone and r.get("train", {}).get("dev_curve")]
    if not mine:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for index, condition in enumerate(dict.fromkeys(r["condition"] for r in mine)):
        for column, ax in enumerate(axes):
            for n, r in enumerate(x for x in mine if x["condition"] == condition):
                points = [(row[0], row[1 + column]) for row in r["train"]["dev_curve"]
                          if row[0] and row[1 + column] is not None]
                if points:
                    ax.plot(*zip(*points), color=f"C{index}", alpha=0.7, label=condition if n == 0 else None)
    for ax, objective in zip(axes, ("clm", "mlm")):
        ax.set_title(f"dev {objective} loss", fontsize=9)
        ax.set_xlabel("words seen")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# Issue 20's bar for a scale whose answer says something: the 10-epoch CLM BabyLlama's fast BLiMP.
BASELINE_TARGET = 60.0


def baseline_target_line(records: list[dict]) -> str:
    values = [final_scores(r)["blimp_fast_causal"] for r in records
              if r["condition"] == "clm" and "blimp_fast_causal" in final_scores(r)]
    if not values:
        return f"The CLM baseline's fast BLiMP (causal) is not scored yet (target: at least {BASELINE_TARGET:.0f})."
    mean = float(np.mean(values))
    return (f"**The CLM baseline's fast BLiMP (causal): {mean:.2f}** (runs: {', '.join(f'{v:.2f}' for v in values)}), "
            f"{'at or above' if mean >= BASELINE_TARGET else 'below'} the target of {BASELINE_TARGET:.0f} that the "
            "scale was chosen for (chance: 50).")


def write_report(records_dir: Path, report_dir: Path) -> Path:
    """RESULTS.md, summary.json and figures/ from the records alone (any machine, any time)."""
    plan = load_record(records_dir / "plan.json")
    records = [load_record(p) for p in sorted(records_dir.glob("*.json")) if p.name != "plan.json"]
    records = [r for r in records if "train" in r]
    planned = plan.get("runs", [r["name"] for r in records])
    has_eval = plan.get("has_eval", True)
    finished = {r["name"] for r in records if record_done(r, has_eval)}
    complete = bool(planned) and all(n in finished for n in planned)
    report_dir.mkdir(parents=True, exist_ok=True)
    summary = {"scale": plan.get("scale"), "complete": complete, "runs_planned": len(planned),
               "runs_finished": len(finished & set(planned)), "runs": []}
    for r in records:
        summary["runs"].append({"backbone": r["backbone"], "condition": r["condition"], "schedule": r["schedule"],
                                "seed": r["seed"], "words_seen": r["train"]["words_seen"], "params": r["train"]["params"],
                                "scores": final_scores(r), "dev_clm_loss": r["train"]["dev_clm_loss"],
                                "dev_mlm_loss": r["train"]["dev_mlm_loss"]})
    write_json_atomic(report_dir / "summary.json", summary)

    scale = plan.get("scale", "?")
    lines = ["# AntLM against its baselines under the BabyLM 2025 strict-small rules: results", "",
             f"Written by `python experiments/strict_small_2025/run.py --scale {scale}` from its records "
             f"(`records/{scale}/`); README.md here has the design. Do not edit by hand.", "",
             "**Question.** At equal words seen (10 epochs), does alternating CLM and MLM (AntLM) beat the "
             "single-objective baseline of the same backbone: BabyLlama trained causally, LTG-BERT trained masked?", ""]
    if plan:
        lines += ["**Design.** " + plan.get("design", ""), ""]
    lines += ["**Data caveat.** The embedded synthetic corpus and tiny models: a check that the recipe runs, "
              "no evidence about the question." if scale == "smoke" else "**Data caveat.** The corpus is drawn from the shared snippets corpus, a ~7.45M-word approximation of "
              "the BabyLM 2024 text: not the official strict-small split; scores are not comparable with the "
              "leaderboard." + (" At CPU scale the models are ~5M parameters: a statement about small models." if
                                scale == "cpu" else ""), ""]
    lines += ["## Status", "", f"{len(finished & set(planned))} of {len(planned)} planned runs are finished "
              f"({len(records)} have at least finished training)."]
    if not complete:
        lines += ["", "**The study is incomplete: no conclusions are drawn from incomplete data.** The numbers below "
                  "are the runs done so far; run the same command again to continue."]
    lines += ["", "| run | params | words seen | dev clm | dev mlm | train min | eval min | tokens/s | stages | commit |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in records:
        t = r["train"]
        eval_s = sum(e.get("seconds", 0) for e in r.get("curve", {}).values()) + r.get("final", {}).get("seconds", 0)
        stages = "train" + (f", curve {len(r.get('curve', {}))} pts" if r.get("curve") else "") + \
                 (", final" if "final" in r else "")
        lines.append(f"| {r['name']} | {t['params']:,} | {t['words_seen']:,} | {_fmt(t['dev_clm_loss'], 3)} | "
                     f"{_fmt(t['dev_mlm_loss'], 3)} | {t['train_s'] / 60:.1f} | {eval_s / 60:.1f} | "
                     f"{_fmt(t.get('tokens_per_s'), 0)} | {stages} | {str(t.get('commit'))[:12]} |")
    figures = report_dir / "figures"
    for backbone in BACKBONES:
        mine = [r for r in records if r["backbone"] == backbone]
        if not mine:
            continue
        own = OWN_BACKEND[backbone]
        lines += ["", f"## {backbone}", ""]
        curve = plot_curves(records, backbone, figures / f"{scale}-{backbone}-curves.png")
        dev = plot_dev(records, backbone, figures / f"{scale}-{backbone}-dev.png")
        lines += [f"![learning curves](figures/{p.name})" for p in (curve, dev) if p is not None]
        keys = sorted({k for r in mine for k in final_scores(r)})
        if keys:
            conditions = list(dict.fromkeys(r["condition"] for r in mine))
            lines += ["", "Final models, mean ± sd over seeds (n):", "",
                      "| score | " + " | ".join(conditions) + " |", "|---|" + "---:|" * len(conditions)]
            for key in keys:
                cells = []
                for c in conditions:
                    v = [final_scores(r)[key] for r in mine if r["condition"] == c and key in final_scores(r)]
                    cells.append("n/a" if not v else f"{np.mean(v):.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2f} "
                                                     f"({len(v)})")
                lines.append(f"| {key} | " + " | ".join(cells) + " |")
        if backbone == "babyllama":
            lines += ["", baseline_target_line(mine)]
        backbone_complete = all(n in finished for n in planned if n.startswith(backbone + "-"))
        if not backbone_complete:
            lines += ["", f"Statistics for {backbone} follow once all its planned runs are finished."]
            continue
        rows = backbone_stats(records, backbone)
        primary = [r for r in rows if r["metric"] in (f"blimp_fast_{own}", f"blimp_{own}", f"macro_{own}")]
        lines += ["", "**Answer (paired over seeds, 95% CI from the t distribution, Holm over "
                  f"{sum(r['p'] is not None for r in rows)} tests):**", ""]
        for r in primary:
            survives = r["p_holm"] is not None and r["p_holm"] < 0.05
            lines.append(f"- {r['condition']} - {r['baseline']}, {r['metric']}: {_fmt(r['diff'])} "
                         f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}], p = {_p(r['p'])}, Holm p = {_p(r['p_holm'])} "
                         f"(n = {r['n']}): " + ("**a difference that survives the correction**" if survives else
                                                "no difference that survives the correction"))
        lines += ["", "| comparison | metric | baseline | other | difference [95% CI] | p | Holm p | n |",
                  "|---|---|---:|---:|---|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['condition']} - {r['baseline']} | {r['metric']} | {_fmt(r['base_mean'])} | "
                         f"{_fmt(r['other_mean'])} | {_fmt(r['diff'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | "
                         f"{_p(r['p'])} | {_p(r['p_holm'])} | {r['n']} |")
        lines += ["", "Dev losses: lower is better, so a negative difference favours the other condition."]
    lines += ["", "## What this does and does not mean", "",
              "It compares training objectives at equal words seen on one corpus sample and one model size per "
              "backbone, with a paired test over seeds. It does not say how the conditions compare at other sizes, "
              "on the official strict-small corpus, or with other hyper-parameters (tuned for the baseline, not per "
              "condition)."]
    text = "\n".join(lines).rstrip() + "\n"
    check_no_paths(text, "RESULTS.md")
    (report_dir / "RESULTS.md").write_text(text, encoding="utf-8")
    return report_dir / "RESULTS.md"


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
    args = parser.parse_args(argv)
    try:
        start_before = start_deadline(args.start_before)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

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
    write_json_atomic(records_dir / "plan.json", {"scale": args.scale, "runs": [r["name"] for r in runs],
                                                  "has_eval": has_eval, "design": design, "commit": commit})
    if args.report_only:  # no plan recorded yet: the report of a study not started
        print(f"report: {write_report(records_dir, report_dir)}")
        return 0
    pending = []
    for run in runs:
        record_path = records_dir / f"{run['name']}.json"
        overrides = [f"data.corpus={corpus}", *scale.common, *scale.model.get(run["backbone"], []),
                     f"schedule={run['schedule']}", f"train.seed={run['seed']}", "train.progress=false",
                     f"train.threads={threads}", f"train.device={scale.device}",
                     f"train.word_checkpoints={','.join(map(str, milestones))}", *args.overrides]
        record = load_record(record_path)
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
                        "start_before": start_before})
    print(f"{len(runs) - len(pending)} of {len(runs)} runs already recorded; {len(pending)} to run, {jobs} at a time; "
          f"code {commit}" + ("" if has_eval else "; no 2025 eval data: training only"), flush=True)
    failures, not_started = [], []

    def finished(name: str, error: Optional[str]) -> None:
        if error == NOT_STARTED:
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
        print(f"{len(not_started)} runs not started (--start-before); the same command continues with them", flush=True)
    print(f"report: {write_report(records_dir, report_dir)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
