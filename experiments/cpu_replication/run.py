"""CPU-scale replication of AntLM: does alternating CLM and MLM beat the single-objective baselines
at equal epochs? One command trains every condition with several seeds, evaluates each model and
writes a report (see README.md here for the design and the time budget).

    python -m experiments.cpu_replication.run                      # main comparison, from the repo root
    python -m experiments.cpu_replication.run --study ablations    # alternation frequency and order
    python -m experiments.cpu_replication.run --smoke              # seconds: the CI check of the recipe

Runs that already finished are skipped, so an interrupted study continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from antlm.report import write_report
from experiments.common import SHARED, draw_sample, run_jobs
from experiments.cpu_replication.results import write_results

REPO = Path(__file__).resolve().parents[2]

# (label, preset, schedule). Epoch budgets are equal within a backbone; AntLM keeps the paper's
# proportions (4:16:4 for BabyLlama, 6:60:6 for LTG-BERT) scaled to the budget.
MAIN = {
    "babyllama": [("clm", "babyllama-clm-24-cpu", "6_clm"),
                  ("antlm", "babyllama-antlm-4-16-4-cpu", "1_clm+4_mlm+1_clm"),
                  ("gptbert-mix", "babyllama-antlm-4-16-4-cpu", "6_mix(clm=1,mlm=15)")],
    "ltgbert": [("mlm", "ltgbert-mlm-72-cpu", "6_mlm"),
                ("antlm", "ltgbert-antlm-6-60-6-cpu", "0.5_clm+5_mlm+0.5_clm"),
                ("gptbert-mix", "ltgbert-antlm-6-60-6-cpu", "6_mix(clm=1,mlm=15)")],
}
ABLATIONS = {
    "babyllama": [("antlm-1-4-1", "babyllama-antlm-4-16-4-cpu", "1_clm+4_mlm+1_clm"),
                  ("halves-3-3", "babyllama-antlm-4-16-4-cpu", "3_clm+3_mlm"),
                  ("clm-last-5-1", "babyllama-antlm-4-16-4-cpu", "5_mlm+1_clm"),
                  ("clm-first-1-5", "babyllama-antlm-4-16-4-cpu", "1_clm+5_mlm"),
                  ("frequent-6x", "babyllama-antlm-4-16-4-cpu",
                   "+".join(["0.5_clm+0.5_mlm"] * 6))],
}
EVAL_BACKEND = {"babyllama": "hybrid", "ltgbert": "hybrid"}
GLUE_BACKEND = {"babyllama": "causal", "ltgbert": "mlm"}


def study_plan(args) -> list[tuple[str, str, str, str]]:
    table = ABLATIONS if args.study == "ablations" else MAIN
    plan = []
    for backbone, conditions in table.items():
        if args.backbones and backbone not in args.backbones:
            continue
        for label, preset, schedule in conditions:
            plan.append((backbone, label, preset, schedule))
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=("main", "ablations"), default="main")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "cpu_replication")
    parser.add_argument("--seeds", default=None, help="comma-separated (default 0,1,2; ablations 0,1)")
    parser.add_argument("--backbones", nargs="*", help="subset of babyllama ltgbert")
    parser.add_argument("--windows", type=int, default=2, help="10k-word windows per source in the sample")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs in parallel, each on cpu_count/jobs threads (default 2; 1 with --smoke)")
    parser.add_argument("--eval-limit", type=int, default=50, help="items per zero-shot subtask")
    parser.add_argument("--glue", default=None,
                        help="GLUE tasks, '' to skip (default: the five with training data; none in the ablations)")
    parser.add_argument("--glue-train-limit", type=int, default=200)
    parser.add_argument("--glue-eval-limit", type=int, default=200)
    parser.add_argument("--glue-epochs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny runs on the embedded corpus (CI)")
    parser.add_argument("--results", type=Path, default=None,
                        help="where RESULTS.md goes (default: next to this script; with --smoke: in --out)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override for every run")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out = args.out / args.study
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in (args.seeds or ("0,1" if args.study == "ablations" else "0,1,2")).split(",")]
    jobs = args.jobs or (1 if args.smoke else 2)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if args.smoke:
        corpus_overrides = ["data.corpus=embedded", "data.embedded_sentences=600", "data.vocab_size=400",
                            "data.seq_len=32", "model.max_seq_len=96", "model.hidden_size=32", "model.num_layers=2",
                            "model.num_heads=4", "model.ffn_size=64", "train.batch_size=16"]
    else:
        corpus_overrides = [f"data.corpus={draw_sample(args.out, args.windows)}", "data.word_budget=10000000",
                            "train.eval_every=40", "train.log_every=10"]
    has_eval_data = (SHARED / "blimp_filtered").is_dir()
    glue = args.glue if args.glue is not None else ("" if args.study == "ablations" else "mrpc,rte,wsc,mnli,qqp")
    glue_tasks = [t for t in glue.split(",") if t] if not args.smoke else []
    main_runs = {(b, p, sch): label for b, conditions in MAIN.items() for label, p, sch in conditions}
    run_dirs, pending = [], []
    for backbone, label, preset, schedule in study_plan(args):
        for seed in seeds:
            run_dir = out / f"{backbone}-{label}-s{seed}"
            same_in_main = main_runs.get((backbone, preset, schedule))
            if args.study == "ablations" and same_in_main:
                # The identical condition of the main study (same sample, preset, schedule, seed) is
                # reused when it has been evaluated, rather than trained twice.
                reused = args.out / "main" / f"{backbone}-{same_in_main}-s{seed}"
                if (reused / "results.json").is_file():
                    run_dir = reused
            run_dirs.append(run_dir)
            if (run_dir / "results.json").is_file() or (not has_eval_data and (run_dir / "final").is_dir()):
                continue
            evaluation = None if not has_eval_data else dict(
                tasks=["blimp", "blimp_supplement", "ewok"] + (["glue"] if glue_tasks else []),
                backend=EVAL_BACKEND[backbone], limit=2 if args.smoke else args.eval_limit,
                glue={"train_limit": args.glue_train_limit, "eval_limit": args.glue_eval_limit,
                      "max_epochs": args.glue_epochs}, glue_tasks=glue_tasks or None,
                glue_backends=[GLUE_BACKEND[backbone]])
            pending.append({"run_dir": str(run_dir), "preset": preset, "threads": threads, "eval": evaluation,
                            "overrides": [*corpus_overrides, f"schedule={schedule}", f"train.seed={seed}",
                                          "train.progress=false", f"train.threads={threads}", *args.overrides]})
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    pending.sort(key=lambda job: "ltgbert" not in job["preset"])  # the slowest runs go first
    run_jobs(pending, jobs, timings, timings_path)
    if pending:  # an invocation that only rebuilds the reports keeps the study's wall time
        timings["study_s"] = round(time.perf_counter() - started, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
    # One report per backbone: each condition is tested against its own backbone's first condition
    # (the single-objective baseline in the main study).
    by_backbone = {}
    for backbone in dict.fromkeys(b for b, *_ in study_plan(args)):
        runs = [d for d in run_dirs if d.name.startswith(backbone + "-")]
        by_backbone[backbone] = [str(d) for d in runs]
        report = write_report(runs, out / f"report-{backbone}", baseline=runs[0].name, log=lambda m: None, force=True)
        print(f"report: {report}")
    (out / "runs.json").write_text(json.dumps({"settings": design_settings(args, seeds, glue_tasks, jobs, threads),
                                               "runs": by_backbone}, indent=1))
    plan, design = {}, []
    for study in ("main", "ablations"):
        saved = args.out / study / "runs.json"
        if saved.is_file():
            data = json.loads(saved.read_text())
            plan[study] = {b: [Path(d) for d in dirs] for b, dirs in data["runs"].items()}
            design += [f"**{study}**: " + data["settings"]]
    target = args.results or (out.parent / "RESULTS.md" if args.smoke else Path(__file__).parent / "RESULTS.md")
    print(f"results: {write_results(args.out, plan, target, design)}")
    return 0


def design_settings(args, seeds, glue_tasks, jobs, threads) -> str:
    table = ABLATIONS if args.study == "ablations" else MAIN
    conditions = "; ".join(f"{b} {label} `{schedule}` ({preset})" for b, rows in table.items()
                           for label, preset, schedule in rows if not args.backbones or b in args.backbones)
    sample = "the embedded corpus (smoke)" if args.smoke else (
        f"the first {args.windows} lines (10,000-word windows) of each of the 6 source files of the shared "
        f"snippets corpus, {6 * args.windows * 10_000:,} words")
    glue = (f"GLUE {', '.join(glue_tasks)} with at most {args.glue_train_limit} training and "
            f"{args.glue_eval_limit} evaluation examples, {args.glue_epochs} epochs" if glue_tasks else "no GLUE")
    return (f"conditions {conditions}; seeds {', '.join(map(str, seeds))}; sample: {sample}; zero-shot tasks on "
            f"the first {args.eval_limit} items of each subtask, causal and PLL scoring (babylm2024 mode); {glue}; "
            f"{jobs} runs in parallel, {threads} thread(s) each.")

if __name__ == "__main__":
    raise SystemExit(main())
