"""CPU-scale distillation study: does a BabyLlama student gain from a teacher ensemble, with the
plain CLM schedule and with an AntLM schedule?

    python experiments/distillation/run.py              # the study (see README.md here)
    python experiments/distillation/run.py --smoke      # seconds: the CI check of the recipe

Two teachers (BabyLlama, wider than the student, trained with the AntLM schedule so that they
serve both CLM and MLM phases, at the student's MNTP target offset) are trained first on the same
fixed sample of the shared corpus; then each student condition with each seed. Every student uses
the first teacher's tokenizer, so all models share one vocabulary. Finished runs are skipped.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments" / "cpu_replication"))

from run import SHARED, draw_sample, run_condition  # noqa: E402  (the replication recipe's helpers)

from antlm.report import write_report  # noqa: E402

STUDENT = "babyllama-clm-24-cpu"
TEACHER_WIDTHS = (192, 256)
# (label, schedule, distilled); the first is the baseline every other condition is tested against.
CONDITIONS = [("clm", "6_clm", False), ("clm-distill", "6_clm", True),
              ("antlm", "1_clm+4_mlm+1_clm", False), ("antlm-distill", "1_clm+4_mlm+1_clm", True)]
SMOKE = ["data.corpus=embedded", "data.embedded_sentences=600", "data.vocab_size=400", "data.seq_len=32",
         "model.max_seq_len=96", "model.hidden_size=32", "model.num_layers=2", "model.num_heads=4",
         "model.ffn_size=64", "train.batch_size=16"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "distillation")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--windows", type=int, default=2, help="10k-word windows per source in the sample")
    parser.add_argument("--eval-limit", type=int, default=50, help="items per zero-shot subtask")
    parser.add_argument("--smoke", action="store_true", help="tiny runs on the embedded corpus (CI)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra override for every run")
    parser.add_argument("--teacher-schedule", default="1_clm+4_mlm+1_clm",
                        help="the teachers' schedule; one without MLM phases serves CLM phases only, and distilled "
                             "AntLM students then skip distillation in their MLM phases")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads per run")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = args.threads
    corpus = SMOKE if args.smoke else [f"data.corpus={draw_sample(args.out, args.windows)}", "data.word_budget=10000000",
                                      "train.eval_every=40", "train.log_every=10"]
    common = [*corpus, "train.progress=false", f"train.threads={threads}", *args.overrides]
    has_eval_data = (SHARED / "blimp_filtered").is_dir()
    evaluation = None if not has_eval_data else dict(tasks=["blimp", "blimp_supplement", "ewok"], backend="hybrid",
                                                      limit=2 if args.smoke else args.eval_limit)

    teachers = []
    for index, width in enumerate(TEACHER_WIDTHS):
        run_dir = args.out / f"teacher-{width}"
        size = [] if args.smoke else [f"model.hidden_size={width}", f"model.ffn_size={3 * width}"]
        tokenizer = [f"data.tokenizer={teachers[0] / 'tokenizer.json'}"] if teachers else []
        if not (run_dir / "final" / "config.json").is_file():
            print(*run_condition({"run_dir": str(run_dir), "preset": STUDENT, "threads": threads, "eval": None,
                                  "overrides": [*common, *size, *tokenizer, f"schedule={args.teacher_schedule}",
                                                f"train.seed={100 + index}"]}), flush=True)
        teachers.append(run_dir)

    run_dirs = []
    for label, schedule, distilled in CONDITIONS:
        for seed in (int(s) for s in args.seeds.split(",")):
            run_dir = args.out / f"student-{label}-s{seed}"
            run_dirs.append(run_dir)
            if (run_dir / "results.json").is_file() or (evaluation is None and (run_dir / "final").is_dir()):
                continue
            extra = [f"data.tokenizer={teachers[0] / 'tokenizer.json'}", f"schedule={schedule}", f"train.seed={seed}"]
            if distilled:
                extra.append("distill.teachers=[" + ",".join(map(str, teachers)) + "]")
                if "mlm" not in args.teacher_schedule:
                    extra.append("distill.skip_unsupported_phases=true")
            print(*run_condition({"run_dir": str(run_dir), "preset": STUDENT, "threads": threads, "eval": evaluation,
                                  "overrides": [*common, *extra]}), flush=True)
    if evaluation is not None:
        report = write_report(run_dirs, args.out / "report", baseline=run_dirs[0].name, log=lambda m: None, force=True)
        print(f"report: {report}")
    print(f"study: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
