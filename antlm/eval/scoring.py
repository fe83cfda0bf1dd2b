"""Sentence scores for zero-shot minimal pairs: causal log-likelihood and masked pseudo-log-likelihood.

- causal: sum of log p(token | left context) over the continuation tokens, after `<s>` (or after
  the context tokens when there is one).
- mlm: pseudo-log-likelihood (Salazar et al. 2020): each continuation token is masked in turn and
  scored from both sides. `within_word_l2r` (Kauf & Ivanova 2023) also masks the rest of the
  token's word to its right, so a word's later pieces do not give its first piece away. The
  model's own MLM target offset decides where the prediction is read: at the masked position
  (offset 0, BERT) or one to its left (offset 1, MNTP).

Speed: every masked copy of every sentence becomes one row; rows are grouped by length (no
padding at all within a group), packed under a token budget, run once under
`torch.inference_mode`, and the LM head runs only at the one position each row predicts.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch
from tokenizers import Tokenizer

from antlm.data.tokenizer import BOS, EOS, MASK
from antlm.errors import UserError


@dataclass(frozen=True)
class Request:
    """One scoring request: `prefix` ids are conditioned on, `target` ids are scored."""
    prefix: tuple[int, ...]
    target: tuple[int, ...]
    target_words: tuple[int, ...] = ()  # word index of each target token (for within_word_l2r)
    suffix: tuple[int, ...] = ()  # seen by masked models only (e.g. the closing </s>)


OVERLONG = ("context", "window", "skip", "error", "extend")


@dataclass
class Fitted:
    """Requests made to fit the model's window; `cut` were shortened, `skipped` (indices) left out."""
    requests: list[Request]
    cut: int = 0
    skipped: tuple[int, ...] = ()


def _too_long_error(request: Request, index: int, limit: int, describe: Optional[Callable[[int], str]]) -> UserError:
    name = describe(index) if describe else f"request {index}"
    need = len(request.prefix) + len(request.target) + len(request.suffix)
    return UserError(f"{name} needs {need} tokens, more than the model's max_seq_len={limit} allows "
                     "(--overlong skip leaves such items out and counts them, --overlong context cuts their context; "
                     "causal: --overlong window keeps the last tokens)")


def fit_length(requests: list[Request], limit: int, policy: str = "context", shift: int = 0,
               describe: Optional[Callable[[int], str]] = None) -> Fitted:
    """Make every request fit a window of `limit` input tokens. A causal scorer feeds all tokens but
    the last (`shift`=1), so it may hold limit + 1 tokens, as lm-eval's window does.

    - `context`: cut the prefix from the left, keeping one token before the target; an item whose
      target alone does not fit is an error naming it (antlm's own choice).
    - `window`: the 2024 pipeline's causal rule (lm-eval `huggingface.py`, `_loglikelihood_tokens`):
      keep the last limit + 1 tokens of prefix + target and score the target tokens that remain.
    - `skip`: leave out (score NaN) every request that does not fit whole.
    - `error`: any request that does not fit whole is an error naming it.
    - `extend`: nothing is cut; the model reads past its window (only a model with `extend_positions`,
      BabyLlama, as its Llama export does).
    """
    if policy not in OVERLONG:
        raise UserError(f"unknown over-long policy '{policy}' ({', '.join(OVERLONG)})")
    if policy == "window" and shift == 0:
        raise UserError("--overlong window is the causal pipeline's rule; masked scoring takes context, skip or error")
    if policy == "extend":
        return Fitted(list(requests))
    room = limit + shift
    fitted, cut, skipped = [], 0, []
    for index, request in enumerate(requests):
        excess = len(request.prefix) + len(request.target) + len(request.suffix) - room
        if excess > 0:
            if policy == "error" or (policy == "context" and len(request.prefix) - excess < 1):
                raise _too_long_error(request, index, limit, describe)
            if policy == "skip":
                skipped.append(index)
                request = Request(request.prefix[:1], (), (), ())
            elif policy == "window":
                kept = (request.prefix + request.target)[excess:]
                split = max(1, len(kept) - len(request.target))  # the first kept token only conditions
                words = request.target_words[len(request.target) - (len(kept) - split):] if request.target_words else ()
                request = Request(kept[:split], kept[split:], words, request.suffix)
                cut += 1
            else:
                request = Request(request.prefix[excess:], request.target, request.target_words, request.suffix)
                cut += 1
        fitted.append(request)
    return Fitted(fitted, cut, tuple(skipped))


def _batches(groups: dict[int, list], batch_tokens: int) -> Iterable[tuple[int, list]]:
    for length in sorted(groups):
        rows = groups[length]
        per_batch = max(1, batch_tokens // length)
        for start in range(0, len(rows), per_batch):
            yield length, rows[start:start + per_batch]


def _per_temperature(temperatures: Optional[Sequence[float]], count: int) -> dict[float, list[float]]:
    return {t: [0.0] * count for t in (temperatures or (1.0,))}


def _log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.log_softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)


def target_logprobs(head: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, targets: torch.Tensor,
                    vocab: int, temperatures: Iterable[float], row_of: Optional[torch.Tensor] = None) -> dict[float, torch.Tensor]:
    """log_softmax(head(rows) / T)[target] per target and temperature; target i reads row `row_of[i]`
    (default: row i), so a row that several targets read (a shared prefix) runs the head once. Made a
    chunk of rows at a time: full [rows, V] logits and log-softmax buffers (512 MB each at 16k rows x
    8k vocab) cost more in page faults than in arithmetic on a CPU (models/fused_head.py's reason too)."""
    from antlm.models.fused_head import CHUNK_ELEMENTS

    if row_of is None:
        row_of = torch.arange(rows.size(0), device=rows.device)
    order = torch.argsort(row_of, stable=True)
    sorted_rows, sorted_targets = row_of[order], targets[order]
    step = max(16, CHUNK_ELEMENTS.get(rows.device.type, 1 << 22) // max(1, vocab))
    bounds = torch.searchsorted(sorted_rows, torch.arange(0, rows.size(0) + step, step, device=rows.device)).tolist()
    out: dict[float, torch.Tensor] = {t: torch.empty(targets.size(0), device=rows.device) for t in temperatures}
    for chunk, start in enumerate(range(0, rows.size(0), step)):
        first, last = bounds[chunk], bounds[chunk + 1]
        if first == last:
            continue
        logits = head(rows[start:start + step]).float()
        local = sorted_rows[first:last] - start
        picked = logits[local, sorted_targets[first:last]]
        for temperature, values in out.items():
            scaled = logits if temperature == 1.0 else logits / temperature
            values[order[first:last]] = picked / temperature - torch.logsumexp(scaled, dim=-1)[local]
    return out


def _result(totals: dict[float, list[float]], temperatures: Optional[Sequence[float]]):
    return totals if temperatures else totals[1.0]


# A group's common tokens are run once only when that saves at least this share of its tokens and
# this many tokens: below that (BLiMP pairs that share a word or two), the second pass, the smaller
# batches and the cache copies cost more than they save.
SHARE_MIN_SAVING = 0.25
SHARE_MIN_TOKENS = 12


@torch.inference_mode()
def causal_scores(model, requests: list[Request], batch_tokens: int = 16384, progress: Optional[Callable] = None,
                  overlong: str = "context", temperatures: Optional[Sequence[float]] = None,
                  shared: Optional[Sequence[Sequence[int]]] = None):
    """Sum of log-probabilities of each request's target tokens given everything before them (NaN for
    a request skipped by the `overlong` policy, see fit_length). With `temperatures`, a dict
    {temperature: scores} of log_softmax(logits / temperature), one forward pass for all of them.

    `shared` lists groups of requests (an item's options) whose common leading tokens may be run
    once: their keys and values are cached and each request's own tokens run from that cache (a
    model with `decode`; others run every request whole). Scores agree with running each request
    whole to float rounding (~1e-6)."""
    fitted = fit_length(requests, model.cfg.max_seq_len, overlong, shift=1)
    requests = fitted.requests
    skipped = set(fitted.skipped)
    device = next(model.parameters()).device
    sums = {t: torch.zeros(len(requests), dtype=torch.float64, device=device) for t in (temperatures or (1.0,))}
    units = []
    if shared is not None and getattr(model, "decode", None) is not None:
        units = [u for u in prefix_units(requests, shared, skipped)
                 if u.saving(requests) >= SHARE_MIN_SAVING and (len(u.members) - 1) * u.length >= SHARE_MIN_TOKENS]
    cached = {i for unit in units for i in unit.members}
    whole = [i for i in range(len(requests)) if i not in skipped and i not in cached]
    _whole_causal_scores(model, requests, whole, batch_tokens, sums, progress)
    _cached_causal_scores(model, requests, units, batch_tokens, sums, progress)
    totals = {t: values.tolist() for t, values in sums.items()}
    for scores in totals.values():
        for index in fitted.skipped:
            scores[index] = float("nan")
    return _result(totals, temperatures)


def _whole_causal_scores(model, requests: list[Request], indices: list[int], batch_tokens: int, sums: dict,
                         progress: Optional[Callable]) -> None:
    device = next(model.parameters()).device
    groups: dict[int, list] = defaultdict(list)
    for index in indices:
        groups[len(requests[index].prefix) + len(requests[index].target)].append(index)
    for length, batch in _batches(groups, batch_tokens):
        ids = torch.tensor([requests[i].prefix + requests[i].target for i in batch], device=device)
        starts = torch.tensor([len(requests[i].prefix) - 1 for i in batch], device=device)
        keep = torch.arange(length - 1, device=device)[None, :] >= starts[:, None]
        # The head runs only where a target token is predicted: an entity-tracking prefix is ~90% of its input.
        if hasattr(model, "hidden_states"):
            rows, head = model.hidden_states(ids[:, :-1], causal=True)[keep], model.logits_at
        else:  # a Hugging Face model gives logits
            rows, head = model(ids[:, :-1], causal=True, target_mask=keep), lambda logits: logits
        owners = torch.tensor(batch, device=device)[keep.nonzero()[:, 0]]
        token_lp = target_logprobs(head, rows, ids[:, 1:][keep], model.cfg.vocab_size, sums)
        for temperature, values in sums.items():
            values.index_add_(0, owners, token_lp[temperature].double())
        if progress:
            progress(len(batch))


@dataclass(frozen=True)
class PrefixUnit:
    """Requests that share their first `length` tokens: those run once, the rest per request."""
    members: tuple[int, ...]
    length: int

    def saving(self, requests: list[Request]) -> float:
        """The share of the group's input tokens that running the common ones once saves."""
        total = sum(len(requests[i].prefix) + len(requests[i].target) - 1 for i in self.members)
        return (len(self.members) - 1) * self.length / max(1, total)


def prefix_units(requests: list[Request], shared: Sequence[Sequence[int]], skipped: set) -> list[PrefixUnit]:
    """One unit per group of `shared`: its common leading tokens, leaving every member at least its
    last input token to run on its own."""
    units = []
    for group in shared:
        members = [i for i in group if i not in skipped and requests[i].target]
        if len(members) < 2:
            continue
        sequences = [requests[i].prefix + requests[i].target for i in members]
        limit = min(len(s) for s in sequences) - 1
        first = sequences[0]
        common = 0
        while common < limit and all(s[common] == first[common] for s in sequences[1:]):
            common += 1
        if common:
            units.append(PrefixUnit(tuple(members), common))
    return units


class _Scored:
    """Log-probabilities of target tokens at chosen (row, position) of a forward's hidden states,
    added into each owner request's total. A position that several requests score (their shared
    prefix) runs the head once."""

    def __init__(self):
        self.slots: dict[tuple[int, int], int] = {}
        self.slot, self.token, self.owner = [], [], []

    def add(self, row: int, position: int, token: int, owner: int) -> None:
        self.slot.append(self.slots.setdefault((row, position), len(self.slots)))
        self.token.append(token)
        self.owner.append(owner)

    def accumulate(self, model, hidden: torch.Tensor, sums: dict) -> None:
        if not self.slot:
            return
        device = hidden.device
        where = torch.tensor(list(self.slots), device=device)
        rows = hidden[where[:, 0], where[:, 1]]
        slot, token = torch.tensor(self.slot, device=device), torch.tensor(self.token, device=device)
        token_lp = target_logprobs(model.logits_at, rows, token, model.cfg.vocab_size, sums, row_of=slot)
        owner = torch.tensor(self.owner, device=device)
        for temperature, values in sums.items():
            values.index_add_(0, owner, token_lp[temperature].double())


def _continuation_chunks(rows: list, width_of: Callable[[tuple], int], context: int, budget: int) -> Iterable[list]:
    """Rows sorted by width, cut into chunks whose widths differ by at most a quarter (right padding
    costs compute, many tiny forwards cost more) and whose tokens, each row's `context` cache
    included, stay under the budget."""
    rows = sorted(rows, key=width_of)
    start = 0
    while start < len(rows):
        narrowest, end = width_of(rows[start]), start + 1
        while end < len(rows):
            width = width_of(rows[end])
            if width - narrowest > max(1, narrowest // 4) or (end + 1 - start) * (context + width) > budget:
                break
            end += 1
        yield rows[start:end]
        start = end


def _cached_causal_scores(model, requests: list[Request], units: list[PrefixUnit], batch_tokens: int, sums: dict,
                          progress: Optional[Callable]) -> None:
    device = next(model.parameters()).device
    by_length: dict[int, list] = defaultdict(list)
    for unit in units:
        by_length[unit.length].append(unit)
    for length, batch in _batches(by_length, batch_tokens):
        sequences = {i: requests[i].prefix + requests[i].target for unit in batch for i in unit.members}
        ids = torch.tensor([sequences[unit.members[0]][:length] for unit in batch], device=device)
        hidden, cache = model.decode(ids)
        # Position p predicts token p + 1; a request's scored tokens start at len(prefix).
        scored, rest = _Scored(), []
        for row, unit in enumerate(batch):
            for i in unit.members:
                sequence = sequences[i]
                for position in range(max(0, len(requests[i].prefix) - 1), length):
                    scored.add(row, position, sequence[position + 1], i)
                if len(sequence) - 1 > length:
                    rest.append((row, i))
        scored.accumulate(model, hidden, sums)
        for chunk in _continuation_chunks(rest, lambda r: len(sequences[r[1]]) - 1 - length, length, batch_tokens):
            width = len(sequences[chunk[-1][1]]) - 1 - length
            ids = torch.zeros(len(chunk), width, dtype=torch.long)  # right padding: a causal query never sees it
            scored = _Scored()
            for row, (_, i) in enumerate(chunk):
                sequence = sequences[i]
                own = sequence[length:-1]
                ids[row, :len(own)] = torch.tensor(own)
                for offset in range(max(0, len(requests[i].prefix) - 1 - length), len(own)):
                    scored.add(row, offset, sequence[length + offset + 1], i)
            context_rows = torch.tensor([unit_row for unit_row, _ in chunk], device=device)
            hidden, _ = model.decode(ids.to(device), cache.rows(context_rows))
            scored.accumulate(model, hidden, sums)
        if progress:
            progress(sum(len(unit.members) for unit in batch))


def _mask_positions(request: Request, variant: str) -> list[tuple[int, list[int]]]:
    """(scored position, positions masked) for each target token."""
    start = len(request.prefix)
    out = []
    for j in range(len(request.target)):
        masked = [start + j]
        if variant == "within_word_l2r" and request.target_words:
            k = j + 1
            while k < len(request.target) and request.target_words[k] == request.target_words[j]:
                masked.append(start + k)
                k += 1
        out.append((start + j, masked))
    return out


@torch.inference_mode()
def pll_scores(
    model,
    requests: list[Request],
    mask_id: int,
    target_offset: int,
    variant: str = "original",
    reduction: str = "sum",
    batch_tokens: int = 16384,
    progress: Optional[Callable] = None,
    overlong: str = "context",
    temperatures: Optional[Sequence[float]] = None,
):
    """Pseudo-log-likelihood of each request's target tokens under the bidirectional mask (NaN for a
    request skipped by the `overlong` policy); `temperatures` as in causal_scores."""
    if variant not in ("original", "within_word_l2r"):
        raise UserError(f"unknown PLL variant '{variant}' (original or within_word_l2r)")
    if reduction not in ("sum", "mean"):
        raise UserError(f"unknown reduction '{reduction}' (sum or mean)")
    fitted = fit_length(requests, model.cfg.max_seq_len, overlong)
    requests = fitted.requests
    device = next(model.parameters()).device
    groups: dict[int, list] = defaultdict(list)  # length -> rows (request index, masked positions, scored position)
    for index, request in enumerate(requests):
        length = len(request.prefix) + len(request.target) + len(request.suffix)
        for position, masked in _mask_positions(request, variant):
            groups[length].append((index, masked, position))
    totals = _per_temperature(temperatures, len(requests))
    for length, rows in _batches(groups, batch_tokens):
        count = len(rows)
        base = torch.tensor([requests[r[0]].prefix + requests[r[0]].target + requests[r[0]].suffix for r in rows])
        scored = torch.tensor([r[2] for r in rows])
        masked_rows = torch.tensor([row for row, (_, masked, _) in enumerate(rows) for _ in masked])
        masked_cols = torch.tensor([column for _, masked, _ in rows for column in masked])
        inputs = base.clone()
        inputs[masked_rows, masked_cols] = mask_id
        targets = base[torch.arange(count), scored]
        # One query per copy: the model runs its last layer for the read position only.
        logits = model(inputs.to(device), causal=False, query_index=(scored - target_offset).to(device)).float()
        for temperature, sums in totals.items():
            values = _log_softmax(logits, temperature).gather(-1, targets.to(device)[:, None]).squeeze(-1).tolist()
            for (index, _, _), value in zip(rows, values):
                sums[index] += value
        if progress:
            progress(count)
    for temperature, sums in totals.items():
        for index in fitted.skipped:
            sums[index] = float("nan")
        if reduction == "mean":
            totals[temperature] = [total / max(1, len(r.target)) for total, r in zip(sums, requests)]
    return _result(totals, temperatures)


def encode_causal(tokenizer: Tokenizer, context: str, text: str, bos_before_context: bool) -> Request:
    bos = tokenizer.token_to_id(BOS)
    target = tuple(tokenizer.encode(text, add_special_tokens=False).ids)
    if not context:
        return Request((bos,), target)
    prefix = tuple(tokenizer.encode(context, add_special_tokens=False).ids)
    return Request(((bos,) if bos_before_context else ()) + prefix, target)


def encode_masked(tokenizer: Tokenizer, context: str, text: str) -> Request:
    """`<s>` context text `</s>`; tokenizers parses a literal "</s>" in the context as the token."""
    bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
    prefix = tuple(tokenizer.encode(context, add_special_tokens=False).ids) if context else ()
    encoding = tokenizer.encode(text, add_special_tokens=False)
    words = tuple(w if w is not None else -1 for w in encoding.word_ids)
    return Request((bos,) + prefix, tuple(encoding.ids), words, (eos,))


def encode_completion(tokenizer: Tokenizer, sentence: str, completion: str, head: tuple[int, ...],
                      tail: tuple[int, ...]) -> Request:
    """The 2025 pipeline's input (`sentence_zero_shot/dataset.py`): the whole sentence is tokenized
    once, with the special tokens the model's tokenizer adds (`head` ids before, `tail` ids after),
    and the scored tokens are those whose character span ends after the completion starts
    (`end > start_char_idx`). A special token's span is empty, so it is never scored."""
    encoding = tokenizer.encode(sentence, add_special_tokens=False)
    start = len(sentence) - len(completion)
    first = next((i for i, (_, end) in enumerate(encoding.offsets) if end > start), len(encoding.ids))
    ids = tuple(encoding.ids)
    words = tuple(w if w is not None else -1 for w in encoding.word_ids)
    return Request(tuple(head) + ids[:first], ids[first:], words[first:], tuple(tail))


def mask_id_of(tokenizer: Tokenizer) -> int:
    return tokenizer.token_to_id(MASK)


# --- the small API the demo uses -------------------------------------------------------------

def causal_logprobs(model, tokenizer: Tokenizer, sentences: list[str], batch_tokens: int = 16384) -> list[float]:
    """Sum of token log-probabilities of each sentence after `<s>`."""
    return causal_scores(model, [encode_causal(tokenizer, "", s, True) for s in sentences], batch_tokens)


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
