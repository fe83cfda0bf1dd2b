"""`antlm demo`: the product in one command. Trains a CLM baseline and an AntLM model (the paper's
4:16:4 proportions, scaled to the same number of epochs) on the embedded synthetic corpus, scores
both on its minimal pairs (sum of token log-probabilities) and prints a comparison table."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from antlm.config import build_config
from antlm.data.synthetic import RIGHT_CONTEXT_PHENOMENA
from antlm.data.tokens import default_cache_dir
from antlm.eval.scoring import encode_masked, evaluate_pair_dir, mask_id_of, pll_scores, read_pairs
from antlm.model_io import load_model
from antlm.train.loop import train

RUNS = (("clm-baseline", "6_clm"), ("antlm", "1_clm+4_mlm+1_clm"))


def _last_dev(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    dev = [r for r in rows if r.get("split") == "dev"]
    train_rows = [r for r in rows if r.get("split") == "train"]
    speed = sorted(r["tokens_per_s"] for r in train_rows)
    return {**(dev[-1] if dev else {}), "tokens_per_s": speed[len(speed) // 2] if speed else 0.0}


def run_demo(out: Path, overrides: list[str], force: bool = False, log: Callable = print) -> list[dict]:
    results = []
    for name, schedule in RUNS:
        cfg = build_config("tiny", [f"schedule={schedule}", *overrides])
        start = time.perf_counter()
        log(f"== {name}: schedule {cfg.schedule}")
        train(cfg, out / name, force=force, log=log)
        seconds = time.perf_counter() - start
        model, tokenizer = load_model(out / name)
        pairs_dir = (default_cache_dir(cfg.data.cache_dir)
                     / f"embedded-s{cfg.data.embedded_seed}-n{cfg.data.embedded_sentences}" / "minimal_pairs")
        scores = evaluate_pair_dir(model, tokenizer, pairs_dir)
        results.append({"run": name, "schedule": cfg.schedule, "seconds": round(seconds, 1), "scores": scores,
                        **_last_dev(out / name)})
        if "mlm" in cfg.schedule:
            # The same AntLM network read bidirectionally: pseudo-log-likelihood scoring.
            results.append({**results[-1], "run": f"{name} (PLL)", "scores": pll_pair_accuracy(model, tokenizer, pairs_dir)})
    (out / "demo_results.json").write_text(json.dumps(results, indent=1))
    print(format_table(results))
    return results


def pll_pair_accuracy(model, tokenizer, pairs_dir: Path) -> dict[str, float]:
    out = {}
    for path in sorted(Path(pairs_dir).glob("*.jsonl")):
        pairs = read_pairs(path)
        requests = [encode_masked(tokenizer, "", p[key]) for p in pairs for key in ("sentence_good", "sentence_bad")]
        values = pll_scores(model, requests, mask_id_of(tokenizer), model.antlm_meta.mlm_target_offset)
        out[path.stem] = sum(values[2 * i] > values[2 * i + 1] for i in range(len(pairs))) / max(1, len(pairs))
    return out


def format_table(results: list[dict]) -> str:
    phenomena = list(results[0]["scores"])
    header = ["phenomenon"] + [r["run"] for r in results]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in phenomena:
        mark = " (R)" if name in RIGHT_CONTEXT_PHENOMENA else ""
        lines.append(f"| {name}{mark} | " + " | ".join(f"{100 * r['scores'][name]:.1f}" for r in results) + " |")
    mean = lambda r: 100 * sum(r["scores"].values()) / len(r["scores"])  # noqa: E731
    lines.append("| **mean** | " + " | ".join(f"**{mean(r):.1f}**" for r in results) + " |")
    lines.append("| schedule | " + " | ".join(r["schedule"] for r in results) + " |")
    for key, label in (("dev_clm_loss", "dev CLM loss"), ("dev_mlm_loss", "dev MLM loss")):
        lines.append(f"| {label} | " + " | ".join(f"{r.get(key, float('nan')):.3f}" for r in results) + " |")
    lines.append("| train time (s) | " + " | ".join(f"{r['seconds']:.0f}" for r in results) + " |")
    lines.append("| tokens/s (median) | " + " | ".join(f"{r['tokens_per_s']:.0f}" for r in results) + " |")
    lines.append("\nMinimal-pair accuracy (%): causal scoring (sum of token log-probabilities after <s>), or, for "
                 "(PLL), masked pseudo-log-likelihood of the same network; (R): the pair is decided by right context. "
                 "One seed each: differences of a few points are within seed noise.")
    return "\n".join(lines)
