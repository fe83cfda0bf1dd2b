#!/usr/bin/env python
"""Distillation cost: student training tokens/s with 0, 1 and 2 teachers, per objective.

Teachers are antlm runs trained first (not timed), each twice the student's width, as the BabyLlama
recipe's teachers are larger than its student. The student then trains `--steps` steps of one
objective with each teacher count, every measurement in the same process, one after the other, on
the same blocks; tokens/s comes from the loop's own metrics.jsonl rows after `--warmup` steps (the
rows time forward, backward and optimizer step, teachers included; dev evaluation and checkpoints
fall outside). On CPU teachers run in fp32, on CUDA in bf16 autocast.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/distill_throughput.py [--quick] [--steps 40] [--device cpu]
Last lines: `RESULT distill_<objective> t0=<tok/s> t1=<tok/s> t2=<tok/s> overhead1=<x> overhead2=<x>`
(overheadK = t0 / tK: how many times slower a step is with K teachers).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _overrides(args, **extra) -> list[str]:
    base = {"data.corpus": "embedded", "data.embedded_sentences": 4000 if args.quick else 20000,
            "data.vocab_size": 600, "data.seq_len": 64, "model.max_seq_len": 64,
            "model.hidden_size": 64 if args.quick else 128, "model.num_layers": 2 if args.quick else 4,
            "model.num_heads": 4, "model.ffn_size": 128 if args.quick else 384, "train.batch_size": 32,
            "train.log_every": 1, "train.eval_every": 10 ** 6, "train.checkpoint_every": 10 ** 6,
            "train.progress": "false", "train.progress_every_s": 0, "train.device": args.device,
            "train.threads": args.threads}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _tokens_per_s(run: Path, warmup: int) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("split") == "train" and r["step"] > warmup]
    return statistics.median(r["tokens_per_s"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller student and fewer steps (seconds)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = min(args.steps, 12), 2
    import torch

    torch.set_num_threads(args.threads)
    from antlm.config import build_config
    from antlm.train.loop import train

    quiet = lambda message: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        width = 128 if args.quick else 256
        teachers = []
        for index in range(2):
            run = root / f"teacher{index}"
            train(build_config(None, _overrides(args, schedule="4st_clm+4st_mlm", **{
                "model.hidden_size": width, "model.ffn_size": 2 * width, "train.seed": index})), run, log=quiet)
            teachers.append(run)
        tokenizer = teachers[0] / "tokenizer.json"
        results = {}
        for objective in ("clm", "mlm"):
            speeds = []
            for count in range(3):
                run = root / f"student-{objective}-{count}"
                extra = {"schedule": f"{args.steps}st_{objective}", "data.tokenizer": tokenizer}
                if count:
                    extra["distill.teachers"] = "[" + ",".join(str(t) for t in teachers[:count]) + "]"
                train(build_config(None, _overrides(args, **extra)), run, log=quiet)
                speeds.append(_tokens_per_s(run, args.warmup))
                print(f"{objective} with {count} teacher(s): {speeds[-1]:,.0f} tokens/s", flush=True)
            results[objective] = speeds
    print(f"device {args.device}, {args.threads} threads, student width {64 if args.quick else 128}, teachers {width}, "
          f"{args.steps} steps (median window after {args.warmup})")
    for objective, (t0, t1, t2) in results.items():
        print(f"RESULT distill_{objective} t0={t0:.0f} t1={t1:.0f} t2={t2:.0f} overhead1={t0 / t1:.2f} overhead2={t0 / t2:.2f}")


if __name__ == "__main__":
    main()
