"""The `antlm` command: prepare, train, eval, export, report, demo.

Every user-facing failure ends as one line on stderr and exit code 2; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from safetensors import SafetensorError

from antlm.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default prints the whole usage block
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file or preset name (antlm/presets/: tiny, babyllama-antlm-4-16-4, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set schedule=4_clm+16_mlm+4_clm (repeatable)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("antlm")
    except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        from antlm import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="antlm", description="AntLM pretraining: alternating causal and masked LM.")
    parser.add_argument("--version", action="version", version=f"antlm {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    prepare = commands.add_parser("prepare", help="check the corpus, train the tokenizer, build the token store")
    _add_config_args(prepare)

    train = commands.add_parser("train", help="pretrain a model with a CLM/MLM schedule")
    _add_config_args(train)
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest valid checkpoint")
    train.add_argument("--force", action="store_true", help="replace a run that already exists in --out")

    evaluate = commands.add_parser("eval", help="evaluate a model on the BabyLM suites (2024 or 2025 pipeline)")
    evaluate.add_argument("model", help="run directory or its final/")
    evaluate.add_argument("--data", required=True,
                          help="evaluation_data/ (BabyLM 2024, or 2025 with full_eval/ and fast_eval/) or ../shared/data")
    evaluate.add_argument("--tasks", help="comma-separated (default: the compat mode's suite: babylm2024 and clean "
                                          "blimp,blimp_supplement,ewok,glue; babylm2025 adds entity_tracking, wug_adj, "
                                          "wug_past, reading, and takes comps, aoa, glue when asked)")
    evaluate.add_argument("--backend", default="causal", choices=("causal", "mlm", "mntp", "hybrid"),
                          help="mlm reads a masked token's prediction at the mask, mntp one position left; under "
                               "babylm2024/clean, mlm reads wherever the model predicts")
    evaluate.add_argument("--compat", default="babylm2024", choices=("babylm2024", "babylm2025", "clean"),
                          help="babylm2024 / babylm2025 reproduce those official pipelines, quirks included; "
                               "clean is antlm's own scoring without them")
    evaluate.add_argument("--eval-set", default="full", choices=("full", "fast"),
                          help="babylm2025: the full sets or the fast_eval subsets scored at every checkpoint")
    evaluate.add_argument("--temperatures", help="MIN[:MAX[:STEP]] (babylm2025/clean): scores at each temperature "
                                                 "from MIN to MAX (step 0.05), reports the best, as --min/max_temperature")
    evaluate.add_argument("--variant", default="original", choices=("original", "within_word_l2r"), help="PLL variant")
    evaluate.add_argument("--reduction", choices=("sum", "mean"), help="default: the compat mode's (babylm2024 masked: mean; else sum)")
    evaluate.add_argument("--limit", type=int, help="first N items of each subtask (quick checks)")
    evaluate.add_argument("--overlong", choices=("context", "window", "skip", "error", "extend"),
                          help="items longer than the model's window: babylm2024 causal default window (the last "
                               "max_len+1 tokens, as lm-eval), babylm2025 extend (BabyLlama reads past its window as its Llama export does; "
                               "encoders: error), else context "
                               "(cut context, error if the target does not fit); skip leaves them out and counts them")
    evaluate.add_argument("--out", default="results.json")
    evaluate.add_argument("--submission", help="also write the BabyLM 2024 submission file (.json.gz)")
    evaluate.add_argument("--results-dir", help="also write the 2025 pipeline's results folder (DIR/<model>/<revision>/...)")
    evaluate.add_argument("--revision", default="main", help="revision name in the 2025 results folder (default main)")
    evaluate.add_argument("--series", action="store_true",
                          help="also score every word checkpoint of the run (train.word_checkpoints) on the fast sets, "
                               "in words-seen order, each as revision chck_<N> (the 2025 rule); the final model as given")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--batch-tokens", type=int, default=16384)
    evaluate.add_argument("--glue-tasks", help="comma-separated subset of GLUE tasks")
    evaluate.add_argument("--glue-epochs", type=int, help="fewer fine-tuning epochs than the recipe's")
    evaluate.add_argument("--glue-train-limit", type=int, help="first N training examples per GLUE task")
    evaluate.add_argument("--glue-eval-limit", type=int, help="first N validation examples per GLUE task")
    evaluate.add_argument("--glue-pooling", choices=("first", "last"),
                          help="which token the GLUE head reads, instead of the recipe's (the 2025 pipeline reads "
                               "the first unless given --take_final: under a causal mask that token has seen only "
                               "itself)")

    export = commands.add_parser("export", help="export a model for other tools")
    export.add_argument("model", help="run directory or its final/")
    export.add_argument("--to", default="hf", choices=("hf",))
    export.add_argument("out", help="output directory")
    export.add_argument("--force", action="store_true", help="replace an existing export")
    export.add_argument("--series", action="store_true",
                        help="also export the run's word checkpoints: OUT becomes a git repository with branches "
                             "main and chck_1M, chck_2M, ... (Hugging Face revisions)")

    report = commands.add_parser("report", help="Markdown report with plots and significance tests for runs")
    report.add_argument("runs", nargs="+", help="run directories (seeds of one condition are grouped)")
    report.add_argument("--out", required=True, help="report directory")
    report.add_argument("--baseline", help="condition label to test the others against (default: the first)")
    report.add_argument("--results", default="results.json", help="evaluation results file name inside each run")
    report.add_argument("--force", action="store_true", help="replace an existing report directory")

    demo = commands.add_parser("demo", help="train a CLM baseline and an AntLM model on the embedded corpus and compare")
    demo.add_argument("--out", default="runs/demo", help="directory for the two runs (default runs/demo)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    demo.add_argument("--force", action="store_true", help="replace earlier demo runs in --out")
    return parser


def run(args: argparse.Namespace) -> int:
    from antlm.config import build_config

    if args.command == "demo":
        from antlm.demo import run_demo

        run_demo(Path(args.out), args.overrides, force=args.force, log=_log)
        return 0
    if args.command == "eval":
        return run_eval_command(args)
    if args.command == "report":
        from antlm.report import write_report

        path = write_report([Path(r) for r in args.runs], Path(args.out), baseline=args.baseline,
                            results_name=args.results, log=_log, force=args.force)
        _log(f"report written to {path}")
        return 0
    if args.command == "export":
        if args.series:
            from antlm.export.series import export_series

            path, branches = export_series(Path(args.model), Path(args.out), force=args.force)
            _log(f"exported {args.model} to {path}: a git repository with branches {', '.join(branches)}")
            return 0
        from antlm.export.hf import export_hf

        path = export_hf(Path(args.model), Path(args.out), force=args.force)
        _log(f"exported {args.model} to {path}")
        return 0
    cfg = build_config(args.config, args.overrides)
    if args.command == "prepare":
        from antlm.train.setup import prepare_command

        prepare_command(cfg, log=_log)
        return 0
    if args.resume and args.force:
        raise UserError("--resume and --force exclude each other")
    from antlm.train.loop import train

    result = train(cfg, Path(args.out), resume=args.resume, force=args.force, log=_log)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary line, not one per rank
        _log(f"done: {result['steps']}/{result['total_steps']} steps, final train loss {result['final_loss']:.4f}, run in {result['out']}")
    return 0


def parse_temperatures(text: Optional[str]) -> Optional[list[float]]:
    """MIN[:MAX[:STEP]] -> the temperatures the 2025 `run.py` sweeps (torch.arange(MIN, MAX + STEP, STEP))."""
    if not text:
        return None
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise UserError(f"--temperatures '{text}': expected MIN[:MAX[:STEP]] numbers") from None
    if len(parts) > 3 or any(p <= 0 for p in parts):
        raise UserError(f"--temperatures '{text}': expected MIN[:MAX[:STEP]], all positive")
    low, high, step = parts[0], parts[1] if len(parts) > 1 else parts[0], parts[2] if len(parts) > 2 else 0.05
    if high < low:
        raise UserError(f"--temperatures '{text}': MAX is below MIN")
    import torch

    return [round(t, 6) for t in torch.arange(low, high + step, step, dtype=torch.float64).tolist() if t <= high + 1e-9]


def parse_glue_tasks(text: str | None) -> list[str] | None:
    if text is None:
        return None
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks:
        raise UserError("--glue-tasks is empty: name one or more GLUE tasks, or leave the option out for the recipe's set")
    return tasks


def run_eval_command(args: argparse.Namespace) -> int:
    from antlm.eval.outputs import check_output_dir, check_output_path, format_table, write_outputs
    from antlm.eval.runner import EvalOptions, run_eval, set_threads_for
    from antlm.eval.tasks import parse_task_list
    from antlm.train.device import pick_device

    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be positive")
    pick_device(args.device)
    check_output_path(Path(args.out), "--out")
    if args.submission:
        check_output_path(Path(args.submission), "--submission")
    if args.results_dir:
        check_output_dir(Path(args.results_dir), "--results-dir")
    glue = {key: value for key, value in (("max_epochs", args.glue_epochs), ("train_limit", args.glue_train_limit),
                                          ("eval_limit", args.glue_eval_limit), ("pooling", args.glue_pooling))
            if value is not None}
    options = EvalOptions(
        tasks=parse_task_list(args.tasks) if args.tasks is not None else None, backend=args.backend, compat=args.compat,
        variant=args.variant, reduction=args.reduction, limit=args.limit, batch_tokens=args.batch_tokens,
        device=args.device, progress=sys.stderr.isatty(), glue=glue, overlong=args.overlong,
        glue_tasks=parse_glue_tasks(args.glue_tasks),
        eval_set=args.eval_set, temperatures=parse_temperatures(args.temperatures),
    )
    set_threads_for(args.device)
    if args.series:
        from antlm.eval.series_eval import evaluate_series, format_series_table

        results = evaluate_series(Path(args.model), Path(args.data), options, _log,
                                  Path(args.results_dir) if args.results_dir else None, args.revision, Path(args.out),
                                  Path(args.submission) if args.submission else None)
        print(format_series_table(results))
        _log(f"series results written to {args.out}" + (f", 2025 results folder under {args.results_dir}" if args.results_dir else ""))
        return 0
    results = run_eval(Path(args.model), Path(args.data), options, log=_log)
    write_outputs(results, Path(args.out), Path(args.submission) if args.submission else None,
                  Path(args.results_dir) if args.results_dir else None, args.revision)
    print(format_table(results))
    _log(f"results written to {args.out}" + (f", submission to {args.submission}" if args.submission else "")
         + (f", 2025 results folder under {args.results_dir}" if args.results_dir else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    code = _run_reporting_errors(build_parser().parse_args(argv))
    distributed = sys.modules.get("antlm.train.distributed")  # loaded by `train` only: `--help` stays torch-free
    if distributed is not None:
        distributed.end_rank_process(code)
    return code


def _run_reporting_errors(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except UserError as err:
        sys.stderr.write(f"antlm: error: {err}\n")
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        sys.stderr.write(f"antlm: error: {err.strerror or err}{where}\n")
        return 2
    except SafetensorError as err:  # safetensors wraps the OS error of a full disk in its own type
        from antlm.atomic import reason_of

        sys.stderr.write(f"antlm: error: {reason_of(err)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("antlm: interrupted\n")
        return 130
