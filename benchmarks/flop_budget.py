#!/usr/bin/env python
"""The paper-size budget on paper: FLOPs per training token of each paper-size preset, counted by
torch's FlopCounterMode on one real CPU training step (forward and backward, the chunked head
included), turned into the wall time one GPU would take at a stated MFU.

    wall = sum over phases (epochs x tokens per epoch x FLOPs per token of the phase's objective)
           / (peak bf16 FLOP/s x MFU)

Tokens per epoch default to the shared corpus at vocab 16000 (10.73M tokens, docs/performance.md);
the official 10M-word strict-small split would be ~1.34x that. The peak is the published dense bf16
rate of an H100/H200 (989 TFLOP/s); scripts/gpu_check.sh measures the real rate and the real MFU.

Run:  PYTHONPATH=. python benchmarks/flop_budget.py [--tokens-per-epoch N] [--mfu 0.4,0.2,0.1] [--batch 2]
Prints a Markdown table; the last lines are `RESULT flop_budget <preset> flops_per_token_clm=..
flops_per_token_mlm=..`.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from antlm.config import build_config  # noqa: E402
from antlm.models import build_model  # noqa: E402
from antlm.objectives import Batch, loss_sum  # noqa: E402

PRESETS = ("babyllama-clm-24", "babyllama-antlm-4-16-4", "babyllama-clm-10ep", "babyllama-antlm-10ep",
           "ltgbert-mlm-72", "ltgbert-antlm-6-60-6", "ltgbert-mlm-10ep", "ltgbert-antlm-10ep")
PEAK_BF16 = 989e12
SHARED_TOKENS = 10_730_000
VOCAB = 16000


def epochs_by_objective(schedule: str) -> dict:
    """'4_clm+16_mlm+4_clm' -> {'clm': 8.0, 'mlm': 16.0}; paper presets count in epochs."""
    out = {"clm": 0.0, "mlm": 0.0}
    for part in schedule.split("+"):
        match = re.fullmatch(r"([\d.]+)(?:ep)?_(clm|mlm)", part.strip())
        if not match:
            raise SystemExit(f"{schedule}: only epoch phases of clm or mlm are budgeted here")
        out[match.group(2)] += float(match.group(1))
    return out


def flops_per_token(cfg, objective: str, batch: int) -> float:
    """FLOPs of one forward + backward step, per input token, counted on CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = build_model(cfg.model)
    length = cfg.data.seq_len
    ids = torch.randint(5, cfg.model.vocab_size, (batch, length))
    if objective == "clm":
        step = Batch("clm", ids, torch.roll(ids, -1, 1), None, True)
    else:
        mask = torch.rand(batch, length) < cfg.mlm.mask_rate
        step = Batch("mlm", ids, ids[mask], mask, False)
    with FlopCounterMode(display=False) as counter:
        loss_sum(model, step).backward()
    return counter.get_total_flops() / ids.numel()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--tokens-per-epoch", type=float, default=SHARED_TOKENS)
    parser.add_argument("--mfu", default="0.4,0.2,0.1", help="comma-separated MFUs to budget at")
    parser.add_argument("--batch", type=int, default=2, help="sequences in the counted step")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mfus = [float(m) for m in args.mfu.split(",")]
    per_model: dict = {}
    rows, results = [], {}
    for preset in args.presets.split(","):
        cfg = build_config(preset, [f"model.vocab_size={VOCAB}", "data.corpus=embedded"])
        shape = (cfg.model.backbone, cfg.model.hidden_size, cfg.model.num_layers, cfg.model.ffn_size, cfg.mlm.mask_rate)
        if shape not in per_model:  # presets of one size share the count
            per_model[shape] = {o: flops_per_token(cfg, o, args.batch) for o in ("clm", "mlm")}
        flops = per_model[shape]
        epochs = epochs_by_objective(cfg.schedule)
        total = sum(epochs[o] * args.tokens_per_epoch * flops[o] for o in epochs)
        minutes = [total / (PEAK_BF16 * mfu) / 60 for mfu in mfus]
        params = sum(p.numel() for p in build_model(cfg.model).parameters())
        rows.append(f"| `{preset}` | {params / 1e6:.0f}M | {cfg.schedule} | {flops['clm'] / 1e6:.0f} / {flops['mlm'] / 1e6:.0f} | "
                    f"{total / 1e15:.0f} | " + " | ".join(f"{m:.0f} min" for m in minutes) + " |")
        results[preset] = {"flops_per_token": flops, "total_flops": total, "minutes": dict(zip(args.mfu.split(","), minutes))}
    print(f"tokens per epoch {args.tokens_per_epoch / 1e6:.2f}M, peak {PEAK_BF16 / 1e12:.0f} TFLOP/s bf16")
    print("| preset | parameters | schedule | MFLOPs/token CLM / MLM | total PFLOP | "
          + " | ".join(f"wall at MFU {m:.0%}" for m in mfus) + " |")
    print("|---|---|---|---|---|" + "---|" * len(mfus))
    print("\n".join(rows))
    for preset, r in results.items():
        print(f"RESULT flop_budget {preset} flops_per_token_clm={r['flops_per_token']['clm']:.4g} "
              f"flops_per_token_mlm={r['flops_per_token']['mlm']:.4g}")
    return results


if __name__ == "__main__":
    main()
