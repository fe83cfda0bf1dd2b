"""Speed benchmark: antlm's batched pseudo-log-likelihood against minicons' MaskedLMScorer.

Both tools score the same sentences with the same LTG-BERT weights, in one process:
  * baseline: minicons `MaskedLMScorer.sequence_score(..., PLL_metric="original")` on the Hugging
    Face export of the model (`antlm.export.hf.export_hf`, loaded with trust_remote_code), fed
    `--baseline-batch-size` sentences per call, as its documentation shows;
  * antlm: `pll_scores(model, [encode_masked(tok, "", s) ...], mask_id, 0, "original", "sum")`
    on the antlm model loaded from the same `final/` directory.

It prints a table (tool, sentences, seconds, sentences/s, and process CPU seconds: about threads x
seconds when the machine was not contended), the speed ratio, the largest absolute score
difference, and as its last line

    RESULT pll_vs_minicons antlm=<sent/s> baseline=<sent/s> ratio=<x>

It exits 1 when the scores differ by more than 1e-4 or when the two tokenizations of a sentence
differ (minicons must see `<s>` + antlm's ids + `</s>`), so a fast but wrong scorer never
reports a speed-up.

Usage (from the repository root):
    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/pll_vs_minicons.py [--quick]
        [--model RUN_DIR_OR_FINAL] [--sentences N] [--repeats K] [--baseline-batch-size B]

Without --model it builds a CPU-size LTG-BERT with a fixed seed and random weights (speed and
score equality do not need a trained model), with a BPE vocabulary trained by antlm on text from
../shared/data (or on the benchmark sentences when that is missing). Sentences come from BLiMP in
../shared/data (or $ANTLM_SHARED_DATA): good and bad sentences of the first paradigms, in file
order; synthetic sentences when the data is not there.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

from antlm.config import build_config  # noqa: E402
from antlm.data.tokenizer import BOS, EOS, train_tokenizer  # noqa: E402
from antlm.errors import UserError  # noqa: E402
from antlm.eval.scoring import encode_masked, mask_id_of, pll_scores  # noqa: E402
from antlm.eval.tasks import load_task  # noqa: E402
from antlm.model_io import load_model, save_final  # noqa: E402
from antlm.models import build_model  # noqa: E402

TOLERANCE = 1e-4
QUICK_SENTENCES = 60
ITEMS_PER_PARADIGM = 25  # 50 sentences (good + bad) from each paradigm, paradigms in file order
WARMUP_SENTENCES = 8
TOKENIZER_TEXT_FILES = ("switchboard.txt", "childes.txt", "simple_wiki.txt", "bnc_spoken.txt")
SYNTHETIC_WORDS = ("the a dog dogs cat cats sees see runs run big small red house houses child "
                   "children near with and but is are was were happy quickly slowly tree trees "
                   "who what should might hug shocking teacher teachers itself himself herself").split()


def shared_data_dir() -> Path:
    return Path(os.environ.get("ANTLM_SHARED_DATA", REPO.parent / "shared" / "data"))


# --- inputs ----------------------------------------------------------------------------------

def synthetic_sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(SYNTHETIC_WORDS) for _ in range(rng.randint(4, 12))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def blimp_sentences(count: int, data_dir: Path) -> Optional[list[str]]:
    """Good and bad sentences of the first BLiMP paradigms, or None when BLiMP is not there."""
    try:
        task = load_task(data_dir, "blimp", limit=ITEMS_PER_PARADIGM)
    except UserError:
        return None
    out: list[str] = []
    for name in sorted(task):
        for item in task[name]:
            out.extend((item.good, item.bad))
            if len(out) >= count:
                return out[:count]
    return out


def tokenizer_corpus(sentences: list[str], data_dir: Path, max_chars: int) -> tuple[list[str], str]:
    """Text to train the BPE on: pretraining text from shared/data when present, else the sentences."""
    folder = data_dir / "babylm_2024_100M_snippets"
    texts: list[str] = []
    if folder.is_dir() and max_chars > 0:
        per_file = max_chars // len(TOKENIZER_TEXT_FILES)
        for name in TOKENIZER_TEXT_FILES:
            path = folder / name
            if path.is_file():
                with open(path, encoding="utf-8") as handle:
                    texts.append(handle.read(per_file))
    if texts:
        return texts + sentences, f"{folder} ({sum(map(len, texts)) // 1000} kB) + sentences"
    return sentences * 2, "the benchmark sentences"  # min_frequency=2: every word gets merged


def build_random_ltgbert(directory: Path, tokenizer, args, seed: int = 0) -> Path:
    """A random-weight LTG-BERT (mlm target offset 0) saved as an antlm `final/` directory."""
    overrides = [
        "model.backbone=ltgbert", f"model.hidden_size={args.hidden}", f"model.num_layers={args.layers}",
        f"model.num_heads={args.heads}", f"model.ffn_size={args.ffn}", f"model.max_seq_len={args.max_seq_len}",
        f"data.seq_len={args.max_seq_len}", "mlm.target_offset=0",
    ]
    cfg = build_config(None, overrides)
    cfg.model.vocab_size = tokenizer.get_vocab_size()
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    with torch.no_grad():
        # Move norms and biases off their 1/0 init and spread the logits, so that the score
        # comparison is sensitive (a fresh init gives near-uniform predictions).
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    final = directory / "final"
    save_final(final, model, cfg, tokenizer)
    return final


# --- the two scorers -------------------------------------------------------------------------

def make_minicons_scorer(hf_dir: Path):
    from minicons import scorer
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep the benchmark's output to its own lines

    hf_tok = AutoTokenizer.from_pretrained(str(hf_dir), trust_remote_code=True)
    # minicons 0.3.39 encodes with `tokenizer.batch_encode_plus(...)`, which transformers 5 removed;
    # calling the tokenizer itself with a list of strings is that method's documented equivalent
    # (same arguments, same BatchEncoding with word_ids). Patched on this instance only.
    if not hasattr(hf_tok, "batch_encode_plus"):
        hf_tok.batch_encode_plus = hf_tok.__call__
    hf_model = AutoModelForMaskedLM.from_pretrained(str(hf_dir), trust_remote_code=True).eval()
    # A model object plus its tokenizer is the constructor's documented form for local models.
    return scorer.MaskedLMScorer(hf_model, device="cpu", tokenizer=hf_tok), hf_tok


def minicons_scores(mlm_scorer, sentences: list[str], batch_size: int) -> list[float]:
    scores: list[float] = []
    for start in range(0, len(sentences), batch_size):
        scores.extend(mlm_scorer.sequence_score(
            sentences[start:start + batch_size], reduction=lambda x: x.sum(0).item(), PLL_metric="original"))
    return scores


def antlm_scores(model, tokenizer, sentences: list[str], batch_tokens: int) -> list[float]:
    with torch.inference_mode():
        requests = [encode_masked(tokenizer, "", s) for s in sentences]
        return pll_scores(model, requests, mask_id_of(tokenizer), 0, "original", "sum", batch_tokens=batch_tokens)


def check_tokenization(hf_tok, tokenizer, sentences: list[str]) -> list[str]:
    """Sentences whose minicons input ids are not `<s>` + antlm's ids + `</s>`."""
    bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
    got = hf_tok(sentences).input_ids  # what minicons' encode() gets, before padding
    bad = []
    for sentence, ids in zip(sentences, got):
        expected = [bos, *encode_masked(tokenizer, "", sentence).target, eos]
        if list(ids) != list(expected):
            bad.append(f"{sentence!r}: minicons {list(ids)} vs antlm {list(expected)}")
    return bad


def timed(fn: Callable[[], list[float]]) -> tuple[float, float, list[float]]:
    """(wall seconds, process CPU seconds, result). CPU close to threads x wall means no contention."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


# --- main ------------------------------------------------------------------------------------

def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="antlm run dir or final/ of an LTG-BERT (mlm target offset 0); "
                                        "default: a random CPU-size LTG-BERT")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SENTENCES} sentences (for tests)")
    parser.add_argument("--repeats", type=int, default=1, help="time each tool k times, keep the best")
    parser.add_argument("--baseline-batch-size", type=int, default=32, help="sentences per minicons call")
    parser.add_argument("--batch-tokens", type=int, default=16384, help="antlm pll_scores token budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $ANTLM_SHARED_DATA "
                                                                 "or ../shared/data)")
    group = parser.add_argument_group("the random model built when --model is not given")
    group.add_argument("--hidden", type=int, default=128)
    group.add_argument("--layers", type=int, default=4)
    group.add_argument("--heads", type=int, default=4)
    group.add_argument("--ffn", type=int, default=320)
    group.add_argument("--max-seq-len", type=int, default=128)
    group.add_argument("--vocab", type=int, default=4000, help="target BPE vocabulary size")
    group.add_argument("--tokenizer-chars", type=int, default=2_000_000,
                       help="characters of shared pretraining text to train the BPE on")
    args = parser.parse_args(argv)
    if args.quick:
        args.sentences = QUICK_SENTENCES
    if args.sentences < 1 or args.repeats < 1 or args.baseline_batch_size < 1:
        parser.error("--sentences, --repeats and --baseline-batch-size must be positive")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from antlm.export.hf import export_hf

    data_dir = args.data or shared_data_dir()
    sentences = blimp_sentences(args.sentences, data_dir)
    source = f"BLiMP ({data_dir})"
    if not sentences:
        sentences, source = synthetic_sentences(args.sentences), "synthetic"
    print(f"sentences: {len(sentences)} from {source}")

    with tempfile.TemporaryDirectory(prefix="antlm-bench-pll-") as tmp:
        tmp = Path(tmp)
        if args.model:
            model_path = Path(args.model)
        else:
            texts, origin = tokenizer_corpus(sentences, data_dir, args.tokenizer_chars)
            tokenizer = train_tokenizer(texts, vocab_size=args.vocab)
            print(f"tokenizer: BPE trained on {origin}, vocab {tokenizer.get_vocab_size()}")
            model_path = build_random_ltgbert(tmp / "run", tokenizer, args)
        model, tokenizer = load_model(model_path)
        meta = model.antlm_meta
        if meta.backbone != "ltgbert" or meta.mlm_target_offset != 0:
            print(f"error: {model_path} is not an LTG-BERT with mlm target offset 0", file=sys.stderr)
            return 2
        hf_dir = export_hf(model_path, tmp / "hf")
        cfg = model.cfg
        print(f"model: LTG-BERT hidden {cfg.hidden_size}, {cfg.num_layers} layers, {cfg.num_heads} heads, "
              f"ffn {cfg.ffn_size}, vocab {cfg.vocab_size}, {model.num_parameters() / 1e6:.2f}M parameters"
              f"{'' if args.model else ' (random weights, seed 0)'}")

        mlm_scorer, hf_tok = make_minicons_scorer(hf_dir)
        mismatched = check_tokenization(hf_tok, tokenizer, sentences)
        if mismatched:
            print(f"error: minicons tokenizes {len(mismatched)} sentence(s) differently from antlm, e.g.",
                  file=sys.stderr)
            for line in mismatched[:3]:
                print(f"  {line}", file=sys.stderr)
            return 1
        lengths = [len(encode_masked(tokenizer, "", s).target) for s in sentences]
        print(f"tokens per sentence: mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}; "
              f"{sum(lengths)} masked rows in all")

        warm = sentences[:WARMUP_SENTENCES]
        minicons_scores(mlm_scorer, warm, args.baseline_batch_size)
        antlm_scores(model, tokenizer, warm, args.batch_tokens)

        # Alternate the two so that a load spike on a shared machine hits both alike.
        (base_time, base_cpu), (ours_time, ours_cpu) = (math.inf, math.inf), (math.inf, math.inf)
        base, ours = [], []
        for _ in range(args.repeats):
            seconds, cpu, base = timed(lambda: minicons_scores(mlm_scorer, sentences, args.baseline_batch_size))
            base_time, base_cpu = min(base_time, seconds), min(base_cpu, cpu)
            seconds, cpu, ours = timed(lambda: antlm_scores(model, tokenizer, sentences, args.batch_tokens))
            ours_time, ours_cpu = min(ours_time, seconds), min(ours_cpu, cpu)

    n = len(sentences)
    if len(ours) != n or len(base) != n:
        print(f"error: got {len(ours)} antlm and {len(base)} minicons scores for {n} sentences", file=sys.stderr)
        return 1
    diffs = [abs(a - b) for a, b in zip(ours, base)]
    worst = max(range(n), key=diffs.__getitem__)
    ours_rate, base_rate = n / ours_time, n / base_time
    ratio = ours_rate / base_rate
    print()
    print(f"{'tool':<34} {'sentences':>9} {'seconds':>9} {'sent/s':>9} {'cpu s':>9}")
    print(f"{'minicons MaskedLMScorer (HF)':<34} {n:>9} {base_time:>9.3f} {base_rate:>9.1f} {base_cpu:>9.3f}")
    print(f"{'antlm pll_scores':<34} {n:>9} {ours_time:>9.3f} {ours_rate:>9.1f} {ours_cpu:>9.3f}")
    print(f"ratio (antlm / minicons): {ratio:.2f}x   [best of {args.repeats}, {args.threads} threads, "
          f"minicons batch {args.baseline_batch_size}, antlm batch_tokens {args.batch_tokens}]")
    print(f"max |antlm - minicons| score difference: {diffs[worst]:.3g} (sentence {worst}: {sentences[worst]!r}, "
          f"antlm {ours[worst]:.6f}, minicons {base[worst]:.6f})")
    status = 0
    if diffs[worst] > TOLERANCE:
        print(f"error: scores differ by more than {TOLERANCE} on sentence {worst}: {sentences[worst]!r}",
              file=sys.stderr)
        status = 1
    print(f"RESULT pll_vs_minicons antlm={ours_rate:.1f} baseline={base_rate:.1f} ratio={ratio:.2f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
