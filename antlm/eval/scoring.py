"""Zero-shot minimal-pair scoring with a causal model: a sentence's score is the sum of its token
log-probabilities after a `<s>` token; a pair is right when the good sentence scores higher.

Sentences are sorted by length and batched with right padding; under the causal mask padding
never influences real positions, so batching changes no score.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Tokenizer

from antlm.data.tokenizer import BOS, PAD
from antlm.errors import UserError


@torch.inference_mode()
def causal_logprobs(model, tokenizer: Tokenizer, sentences: list[str], batch_tokens: int = 8192) -> list[float]:
    bos, pad = tokenizer.token_to_id(BOS), tokenizer.token_to_id(PAD)
    encoded = [[bos] + enc.ids for enc in tokenizer.encode_batch(sentences, add_special_tokens=False)]
    max_len = model.cfg.max_seq_len if hasattr(model, "cfg") else None
    if max_len is not None and (longest := max(map(len, encoded), default=0)) > max_len:
        raise UserError(f"a sentence has {longest} tokens with <s>, more than the model's max_seq_len={max_len}")
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    scores = [0.0] * len(encoded)
    start = 0
    while start < len(order):
        end = start + 1
        # Grow the batch while the padded size (rows x longest) stays under the token budget.
        while end < len(order) and (end - start + 1) * len(encoded[order[end]]) <= batch_tokens:
            end += 1
        rows = [encoded[i] for i in order[start:end]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
        ids = ids.to(device)
        logits = model(ids, causal=True).float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        lengths = torch.tensor([len(r) for r in rows], device=device)
        valid = torch.arange(width - 1, device=device)[None, :] < (lengths[:, None] - 1)
        sums = (logprobs * valid).sum(dim=1).tolist()
        for i, value in zip(order[start:end], sums):
            scores[i] = value
        start = end
    return scores


def read_pairs(path: Path) -> list[dict]:
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                pairs.append({"sentence_good": item["sentence_good"], "sentence_bad": item["sentence_bad"]})
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{path}:{number}: not a JSON object with sentence_good and sentence_bad") from None
    return pairs


def pair_accuracy(model, tokenizer: Tokenizer, pairs: list[dict]) -> float:
    good = causal_logprobs(model, tokenizer, [p["sentence_good"] for p in pairs])
    bad = causal_logprobs(model, tokenizer, [p["sentence_bad"] for p in pairs])
    return sum(g > b for g, b in zip(good, bad)) / max(1, len(pairs))


def evaluate_pair_dir(model, tokenizer: Tokenizer, directory: Path, names: Iterable[str] | None = None) -> dict[str, float]:
    """Accuracy per `<name>.jsonl` file of minimal pairs in `directory`."""
    files = sorted(Path(directory).glob("*.jsonl"))
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f.stem in wanted]
    if not files:
        raise UserError(f"no minimal-pair files (*.jsonl) in {directory}")
    return {f.stem: pair_accuracy(model, tokenizer, read_pairs(f)) for f in files}
