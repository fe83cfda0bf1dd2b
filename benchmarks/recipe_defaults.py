#!/usr/bin/env python
"""Old defaults against the reference-recipe defaults (defaults version 2) on the CPU LTG-BERT MLM
baseline (preset ltgbert-mlm-72-cpu): same corpus, tokenizer, blocks, steps and seeds.

"old" sets every key that defaults version 2 introduced to its version-1 value (config.LEGACY_V1:
exact GELU, buckets to max_seq_len, FFN mid dropout, out_proj init scaling, independent-start span
masking decided per token, decay on every matrix, LAMB trust ratio everywhere) plus the grad clip
of the old preset (1.0); "new" is the preset as shipped.

Each arm trains `--steps` optimizer steps (the schedule `<steps>st_mlm`, so warmup and cosine span
exactly those steps) for each seed. Then every final model is scored on the same dev blocks with
BOTH maskings (the old and the new span masking, fixed masks), because a loss measured under an
arm's own masking also measures how hard that masking is: the comparable figure is the loss
under the same masking.

Run:  .venv/bin/python benchmarks/recipe_defaults.py [--corpus DIR] [--steps 300] [--seeds 0 1]
      [--threads 1] [--quick]
--ablate trains the new defaults with one group of keys (optim, model, mlm) put back instead.
--quick trains 6 steps of a 2-layer model on the embedded corpus (a smoke test, seconds).
The last lines are `RESULT arm=<old|new> seed=<s> dev_mlm_new_masking=<loss> dev_mlm_old_masking=<loss>`
and `MEAN arm=... ...`.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from antlm.config import LEGACY_V1, build_config  # noqa: E402

PRESET = "ltgbert-mlm-72-cpu"
OLD_PRESET_VALUES = {"optim.grad_clip": 1.0}  # ltgbert-mlm-72-cpu before it was built on ltgbert-small


def old_overrides(sections=("model", "mlm", "optim")) -> list[str]:
    pairs = {f"{section}.{key}": value for section, keys in LEGACY_V1.items() if section in sections
             for key, value in keys.items()}
    if "optim" in sections:
        pairs.update(OLD_PRESET_VALUES)
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in pairs.items()]


# --ablate: the new defaults with one group of keys put back to version 1.
ABLATIONS = {"new-but-old-optim": ("optim",), "new-but-old-model": ("model",), "new-but-old-masking": ("mlm",)}


def arm_config(arm: str, args, seed: int):
    sets = [f"data.corpus={args.corpus}", f"schedule={args.steps}st_mlm", f"train.seed={seed}",
            f"train.threads={args.threads}", "train.progress=false", "train.device=cpu",
            f"train.eval_every={args.steps}", f"train.checkpoint_every={args.steps}", f"train.log_every={max(1, args.steps // 5)}",
            f"train.eval_batches={args.eval_batches}"]
    if args.quick:
        sets += ["model.num_layers=2", "model.hidden_size=64", "model.ffn_size=128", "data.vocab_size=600",
                 "data.word_budget=null", "model.dropout=0.0"]
    legacy = old_overrides() if arm == "old" else old_overrides(ABLATIONS[arm]) if arm in ABLATIONS else []
    return build_config(PRESET, sets + legacy)


def dev_mlm_loss(run: Path, masking_cfg, args) -> float:
    """Dev MLM loss of run/final on fixed dev blocks, masked as `masking_cfg` masks."""
    from antlm.model_io import load_model
    from antlm.data.batches import BatchMaker
    from antlm.train.dev_loss import dev_losses
    from antlm.train.setup import prepare_data

    model, tokenizer = load_model(run)
    cfg = copy.deepcopy(masking_cfg)
    cfg.data.tokenizer = str(run / "final" / "tokenizer.json")
    data = prepare_data(cfg, None, log=lambda message: None)
    special = {"mask": tokenizer.token_to_id("<mask>")}
    maker = BatchMaker(cfg, data.dev, special, tokenizer.get_vocab_size(), total_steps=1)
    losses = dev_losses(model, maker, data.dev, cfg, torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False))
    return losses["dev_mlm_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "data" / "babylm_2024_100M_snippets"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-batches", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="6 steps of a 2-layer model on the embedded corpus")
    parser.add_argument("--ablate", action="store_true",
                        help=f"instead: the new defaults with one group put back ({', '.join(ABLATIONS)})")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    if args.quick:
        args.corpus, args.steps, args.seeds, args.eval_batches = "embedded", 6, [0], 2
    torch.set_num_threads(args.threads)
    from antlm.train.loop import train

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="recipe-defaults-"))
    maskings = {"new": arm_config("new", args, 0), "old": arm_config("old", args, 0)}
    results = []
    arms = tuple(ABLATIONS) if args.ablate else ("old", "new")
    for arm in arms:
        for seed in args.seeds:
            start = time.perf_counter()
            run = root / f"{arm}-seed{seed}"
            train(arm_config(arm, args, seed), run, force=True, log=lambda message: None)
            losses = {name: dev_mlm_loss(run, cfg, args) for name, cfg in maskings.items()}
            results.append((arm, seed, losses))
            print(f"RESULT arm={arm} seed={seed} dev_mlm_new_masking={losses['new']:.4f} "
                  f"dev_mlm_old_masking={losses['old']:.4f} seconds={time.perf_counter() - start:.0f}", flush=True)
    for arm in arms:
        rows = [losses for a, _, losses in results if a == arm]
        print(f"MEAN arm={arm} " + " ".join(f"dev_mlm_{name}_masking={statistics.mean(r[name] for r in rows):.4f}"
                                            for name in ("new", "old")))


if __name__ == "__main__":
    main()
