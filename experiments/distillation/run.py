"""CPU-scale distillation study: does a BabyLlama student gain from a teacher ensemble, with the
plain CLM schedule and with an AntLM schedule?

    python -m experiments.distillation.run              # the study (see README.md here), from the repo root
    python -m experiments.distillation.run --smoke      # seconds: the CI check of the recipe

Two teachers (BabyLlama, wider than the student) are trained first on the same fixed sample of the
shared corpus, beside the undistilled students; then the distilled students. Every run uses one
tokenizer, trained once on the sample before anything else, so all models share one vocabulary.
Teachers and students are scored on the same zero-shot sets. Finished runs are skipped and one
stopped mid-training resumes from its last checkpoint, so an interrupted study continues where it
stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from antlm.config import build_config
from antlm.data.corpus import find_corpus
from antlm.report import write_report
from antlm.train.setup import get_tokenizer, resolve_corpus
from experiments.common import SHARED, draw_sample, run_jobs
from experiments.distillation.ensemble_dev import SNIPPETS, dev_clm_losses, heldout_sample

REPO = Path(__file__).resolve().parents[2]

STUDENT = "babyllama-clm-24-cpu"
TEACHER_WIDTHS = (192, 256)
# The teachers are wider than the student on the same data, so they overfit first: they take the
# reference GPT-2 teacher's dropout (GPT2Config's 0.1) and a learning rate scaled down with width
# from the student's 2e-3. (Unregularised at 2e-3, a 192-wide teacher on 240k words ended at 3.76
# train / 4.49 dev CLM loss; regularised, at 4.51 dev: neither beats the student here, RESULTS.md.)
TEACHER_DROPOUT = ["model.dropout=0.1", "model.attention_dropout=0.1"]
STUDENT_LR, STUDENT_WIDTH = 2e-3, 128
# (label, schedule, distilled); the first is the baseline every other condition is tested against.
CONDITIONS = [("clm", "6_clm", False), ("clm-distill", "6_clm", True),
              ("antlm", "1_clm+4_mlm+1_clm", False), ("antlm-distill", "1_clm+4_mlm+1_clm", True)]
SMOKE = ["data.corpus=embedded", "data.embedded_sentences=600", "data.vocab_size=400", "data.seq_len=32",
         "model.max_seq_len=96", "model.hidden_size=32", "model.num_layers=2", "model.num_heads=4",
         "model.ffn_size=64", "train.batch_size=16"]
# (tasks, backend) of each pipeline's zero-shot evaluation, of the tasks that run on the shared data
# without a series of checkpoints. Entity tracking is scored causally only: its long contexts make
# MNTP scoring (one forward pass per completion token) cost ~12 min per model on one CPU thread.
EVALUATIONS = {"babylm2025": [(["blimp", "blimp_supplement", "ewok", "wug_adj", "wug_past"], "hybrid"),
                              (["entity_tracking"], "causal")],
               "babylm2024": [(["blimp", "blimp_supplement", "ewok"], "hybrid")]}


def shared_tokenizer(out: Path, common: list[str]) -> Path:
    """The tokenizer a run on the sample would train itself, trained once up front: parallel runs
    then never race to train it, and the teachers' vocabularies equal the students' by construction."""
    path = out / "tokenizer.json"
    if not path.is_file():
        cfg = build_config(STUDENT, common)
        tokenizer = get_tokenizer(cfg, find_corpus(resolve_corpus(cfg, print)), None, print)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tokenizer.save(str(tmp))
        os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "distillation")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--windows", type=int, default=4, help="10k-word windows per source in the sample")
    parser.add_argument("--compat", choices=tuple(EVALUATIONS), default="babylm2025",
                        help="babylm2025: the 2025 fast sets (whole); babylm2024: the 2024 sets, --eval-limit items")
    parser.add_argument("--eval-limit", type=int, default=None,
                        help="items per zero-shot subtask (default: all under babylm2025, 50 under babylm2024)")
    parser.add_argument("--masked-scoring", choices=("on", "off"), default="on",
                        help="off: score the students causally only (MNTP scoring of BLiMP-fast costs ~4 min per "
                             "model on one thread)")
    parser.add_argument("--smoke", action="store_true", help="tiny runs on the embedded corpus (CI)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra override for every run")
    parser.add_argument("--teacher-schedule", default="6_clm",
                        help="the teachers' schedule; one without MLM phases serves CLM phases only, and distilled "
                             "AntLM students then skip distillation in their MLM phases")
    parser.add_argument("--jobs", type=int, default=None, help="runs in parallel (default 2; 1 with --smoke)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = args.jobs or (1 if args.smoke else 2)
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    corpus = SMOKE if args.smoke else [f"data.corpus={draw_sample(args.out, args.windows)}", "data.word_budget=10000000",
                                      "train.eval_every=40", "train.log_every=10"]
    common = [*corpus, "train.progress=false", f"train.threads={threads}", *args.overrides]
    common.append(f"data.tokenizer={shared_tokenizer(args.out, common)}")
    evaluation = None
    if (SHARED / "blimp_filtered").is_dir():
        limit = 2 if args.smoke else (args.eval_limit or (None if args.compat == "babylm2025" else 50))
        evaluation = [dict(tasks=tasks, backend="causal" if args.masked_scoring == "off" else backend,
                           compat=args.compat, limit=limit,
                           eval_set="fast" if args.compat == "babylm2025" else "full")
                      for tasks, backend in EVALUATIONS[args.compat]]

    def job(run_dir: Path, overrides: list[str], scoring: list[dict] | None = evaluation) -> dict | None:
        done = (run_dir / "results.json").is_file() or (scoring is None and (run_dir / "final").is_dir())
        return None if done else {"run_dir": str(run_dir), "preset": STUDENT, "threads": threads, "eval": scoring,
                                  "overrides": [*common, *overrides]}

    teachers = [args.out / f"teacher-{width}" for width in TEACHER_WIDTHS]
    # CLM-only teachers are scored causally only: an MNTP score of a model never trained masked says nothing.
    teacher_eval = evaluation if evaluation is None or "mlm" in args.teacher_schedule else [
        {**options, "backend": "causal"} for options in evaluation]
    first, second, students = [], [], []
    for index, (run_dir, width) in enumerate(zip(teachers, TEACHER_WIDTHS)):
        size = [] if args.smoke else [f"model.hidden_size={width}", f"model.ffn_size={3 * width}",
                                      f"optim.lr={STUDENT_LR * STUDENT_WIDTH / width:.3g}"]
        first.append(job(run_dir, [*size, *TEACHER_DROPOUT, f"schedule={args.teacher_schedule}",
                                   f"train.seed={100 + index}"], teacher_eval))
    for label, schedule, distilled in CONDITIONS:
        for seed in seeds:
            run_dir = args.out / f"student-{label}-s{seed}"
            students.append(run_dir)
            extra = [f"schedule={schedule}", f"train.seed={seed}"]
            if distilled:
                extra.append("distill.teachers=[" + ",".join(map(str, teachers)) + "]")
                if "mlm" not in args.teacher_schedule:
                    extra.append("distill.skip_unsupported_phases=true")
            # Undistilled students need no teacher, so they train beside the teachers.
            (second if distilled else first).append(job(run_dir, extra))

    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    run_jobs([j for j in first if j], jobs, timings, timings_path)
    run_jobs([j for j in second if j], jobs, timings, timings_path)
    if any(first) or any(second):  # a call that only rebuilds the report keeps the study's wall time
        timings["study_s"] = round(time.perf_counter() - started, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
    # The diagnostic that decides whether distillation can help: the teachers' and their ensemble's
    # CLM loss against the students', on each seed's dev blocks (a few thousand tokens of the
    # sample's own documents) and on held-out text (the next window of every source, 60,000 words).
    heldout = heldout_sample(args.out, args.windows, 1, max_words=200 if args.smoke else None) if SNIPPETS.is_dir() else None
    target, cache = {}, {}
    for seed in seeds:
        student = args.out / f"student-clm-s{seed}"
        others = [d for d in students if d.name.endswith(f"-s{seed}") and d != student]
        target[f"dev blocks, seed {seed}"] = dev_clm_losses(student, teachers, others, cache=cache)
        if heldout is not None:
            target[f"held-out text, seed {seed}"] = dev_clm_losses(student, teachers, others, heldout=heldout, cache=cache)
    (args.out / "ensemble_dev.json").write_text(json.dumps(target, indent=1))
    print("dev CLM loss:", json.dumps(target, indent=1))
    if evaluation is not None:
        report = write_report([*students, *teachers], args.out / "report", baseline=students[0].name,
                              log=lambda m: None, force=True)
        print(f"report: {report}")
    print(f"study: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
