"""The LTG-BERT probe of issue 20 (README "The LTG-BERT probe"): which CPU-scale LTG-BERT recipe
leaves chance on BLiMP within the study's 10-epoch schedule?

Each candidate trains the study's `10_mlm` LTG-BERT (the `cpu` scale, seed 0, the same 1.02M-word
sample) with its own overrides, stops after `--epochs` of the ten (the learning-rate schedule is
the 10-epoch one, so a probe's checkpoints are what a full run would have at those words), and
scores each whole-epoch word checkpoint on the fast BLiMP set with the masked backend
(`--compat babylm2025`, the first `--limit` items of every subtask). Figures land in
probe/ltgbert-cpu.json (one entry per candidate, rewritten as each finishes):

    python experiments/strict_small_2025/probe.py --candidates reference,no-dropout,adamw --epochs 3
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.strict_small_2025.design import (DEFAULT_DATA, HERE, REPO, SCALES, load_record, run_overrides,
                                                  write_json_atomic)

NO_DROPOUT = ["model.dropout=0", "model.attention_dropout=0"]
# The probe's base: the study's cpu LTG-BERT as ltgbert-mlm-s0 ran it, with the reference recipe's span
# masking and dropout 0.1 (the study's settings have since taken the probe's answer).
SPAN_RECIPE = ["mlm.masking=span", "model.dropout=0.1", "model.attention_dropout=0.1"]
# name -> (overrides on top of the study's cpu LTG-BERT settings, why it is a candidate)
CANDIDATES = {
    "reference": ([], "the study's cpu LTG-BERT as it ran ltgbert-mlm-s0: LAMB lr 5e-3, dropout 0.1, span masking"),
    "no-dropout": (NO_DROPOUT, "a 3.5M model that still underfits at 10 epochs gains nothing from dropout"),
    "adamw": (["optim.name=adamw", "optim.lr=1.33e-3", *NO_DROPOUT],
              "the optimizer, lr and regularisation of the study's BabyLlama, which leaves chance"),
    "token-masking": (["mlm.masking=token", *NO_DROPOUT],
                      "single-token masks, as PLL scoring asks: the BabyLlama's masked objective"),
    "mask-30": (["mlm.mask_rate=0.3", *NO_DROPOUT], "twice the masked targets per step"),
    "lr-2e-3": (["optim.lr=2e-3", *NO_DROPOUT], "a smaller LAMB step for batch 32"),
    "lr-1e-2": (["optim.lr=1e-2", *NO_DROPOUT], "the reference recipe's LAMB lr"),
    "batch-16": (["train.batch_size=16", *NO_DROPOUT], "twice the optimizer steps on the same words"),
}
RESULTS = HERE / "probe" / "ltgbert-cpu.json"
STEPS_PER_EPOCH = 376  # the 17-window sample in 128-token blocks at batch 32 (ltgbert-mlm-s0: 3,760 steps)


def batch_size(extra: list[str]) -> int:
    return int(next((o.split("=")[1] for o in extra if o.startswith("train.batch_size=")), 32))


def overrides(name: str, corpus: Path, epochs: int) -> list[str]:
    scale = SCALES["cpu"]
    words = [102_000 * 10 * e for e in range(1, epochs + 1)]  # whole epochs of the 1.02M-word sample
    steps = STEPS_PER_EPOCH * 32 // batch_size(CANDIDATES[name][0]) * epochs
    return [*run_overrides(scale, "ltgbert", corpus, "10_mlm", seed=0, threads=1, word_checkpoints=words),
            f"train.max_steps={steps}", *SPAN_RECIPE, *CANDIDATES[name][0]]


def probe_one(name: str, out: Path, corpus: Path, data: Path, epochs: int, limit: int) -> dict:
    import torch

    from antlm.config import build_config
    from antlm.eval.runner import EvalOptions, run_eval
    from antlm.eval.series_eval import compact_scores
    from antlm.train.loop import train
    from antlm.train.series import read_series

    torch.set_num_threads(1)
    run_dir = out / name
    cfg = build_config("ltgbert-mlm-10ep", overrides(name, corpus, epochs))
    if (run_dir / "config.yaml").is_file():
        train(cfg, run_dir, resume=True, log=lambda m: None)
    else:
        train(cfg, run_dir, force=True, log=lambda m: None)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    options = EvalOptions(tasks=["blimp"], backend="mlm", compat="babylm2025", eval_set="fast", limit=limit,
                          device="cpu", overlong="skip")
    points = []
    for revision, path, meta in read_series(run_dir):
        scores = compact_scores(run_eval(path, data, options, log=lambda m: None))["mlm"]
        points.append({"revision": revision, "words_seen": meta.get("words_seen"), "step": meta.get("step"),
                       "blimp_fast_mlm": scores["blimp"]})
    dev = {r["step"]: [r["words_seen"], r["dev_mlm_loss"]] for r in rows if r.get("split") == "dev"}
    return {"overrides": CANDIDATES[name][0], "why": CANDIDATES[name][1], "blimp_items_per_subtask": limit,
            "points": points, "dev_mlm_loss": [[step, *dev[step]] for step in sorted(dev)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default="reference,no-dropout", help=f"comma-separated: {', '.join(CANDIDATES)}")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the 10-epoch schedule to train (1-10)")
    parser.add_argument("--limit", type=int, default=50, help="fast BLiMP items per subtask scored")
    parser.add_argument("--jobs", type=int, default=2, help="one-thread candidates at a time")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "strict_small_2025" / "probe-ltgbert")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    names = [n for n in args.candidates.split(",") if n]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not 1 <= args.epochs <= 10:
        print(f"error: unknown candidate {unknown[0]}" if unknown else "error: --epochs must be 1-10", file=sys.stderr)
        return 2
    if not (args.data / "babylm_2024_100M_snippets").is_dir():
        print(f"error: {args.data} has no babylm_2024_100M_snippets/ (set --data or ANTLM_SHARED_DATA)", file=sys.stderr)
        return 2
    from experiments.strict_small_2025.run import draw_sample

    corpus = draw_sample(args.out, args.data, SCALES["cpu"].windows)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {n: pool.submit(probe_one, n, args.out, corpus, args.data, args.epochs, args.limit) for n in names}
        for name, future in futures.items():
            result = future.result()
            recorded = load_record(RESULTS) or {"epochs_of": 10, "candidates": {}}
            recorded["candidates"][name] = {**result, "epochs": args.epochs}
            write_json_atomic(RESULTS, recorded)
            last = result["points"][-1] if result["points"] else {}
            dev = result["dev_mlm_loss"][-1][2] if result["dev_mlm_loss"] else None
            print(f"{name}: BLiMP-fast mlm {last.get('blimp_fast_mlm')} at {last.get('words_seen')} words, dev MLM {dev}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
