"""The BabyLM 2025 age-of-acquisition (AoA) task (Chang & Bergen 2022): the surprisal of each CDI
word in its contexts at every word-count checkpoint of a run, a sigmoid fitted to each word's
learning curve, and the correlation of the model's AoA with the children's.

Reference: evaluation-pipeline-2025 @ bf55c11: `AoA_word/run.py`, `eval_util.py` (`load_eval`,
`StepConfig`), `evaluation_functions.py` (`StepSurprisalExtractor`), `eval_aoa.sh`, and
`utils.py` (`AoAEvaluator`, which `calculate_results_from_pred.py` calls for the score).

Surprisal, per (checkpoint, word, context), in nats:
- text = `context.strip() + " " + word.strip()` (`use_bos_only` is False: `analyze_steps` is called
  without it); the word's tokens are those whose character span ends after the word starts
  (offsets of the same string, as `process_*_input` finds them).
- causal: `<s>` text (the Llama export's template); -sum of the word tokens' log-probabilities.
- mlm / mntp: `<s>` text `</s>` (the LTG-BERT export's template); each word token masked alone
  and read at its position (mlm) or one to its left (mntp); -sum.
- The pipeline turns any failure into NaN; antlm fails on none but an over-long input, which is an
  error unless `overlong="skip"` (NaN, counted) or `"context"` (the context cut from the left).
- Words: `load_eval`: every word longer than one character with at least `min_context` contexts.
  run.py's default min_context is 0 and eval_aoa.sh does not pass its MIN_CONTEXT=20, so 0 here.

Score (`AoAEvaluator.compute_curve_fitness`): per word, every (checkpoint, context) point, with the
step read from the revision name ("chck_10M" -> 1e7); -surprisal fitted with
a / (1 + exp(-b (log10(step + 1) - c))) + d (scipy's curve_fit, Levenberg-Marquardt from
[range, 1, mean, min], maxfev 1000); the AoA is log10 of the step where the curve crosses halfway
from log2(300000) (the pipeline's "random chance", in bits although the surprisals are in nats) to
the minimum surprisal, kept only inside the steps seen. The children's AoA: the same sigmoid fitted
(bounded) to the proportion producing the word at 16-30 months, where it crosses 0.5. The score is
Pearson's r over the words that have both (0.0 with fewer than 3 words).
"""
from __future__ import annotations

import csv
import json
import math
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from antlm.data.tokenizer import BOS, EOS, MASK
from antlm.errors import UserError
from antlm.eval import scoring
from antlm.eval.reading import PANDAS_NA, check_backend
from antlm.eval.scoring import Request

OVERLONG = ("error", "skip", "context")
RANDOM_CHANCE_VOCAB = 300_000  # compute_model_aoa's approximate_vocab
AGES = tuple(range(16, 31))  # months: the CDI columns prepare_cdi_data looks for


# --- words and checkpoints ------------------------------------------------------------------

def load_aoa_words(path: str | Path, min_context: int = 0, limit: Optional[int] = None) -> tuple[list[str], list[list[str]]]:
    """(words, contexts per word) from cdi_childes.json as `load_eval` selects them; `limit`: the
    first words only."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"AoA word file not found: {path} (full_eval/aoa/cdi_childes.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        words, contexts = [], []
        for word, entries in data.items():
            if len(word) > 1 and len(entries) >= min_context:
                words.append(word)
                contexts.append([entry["context"] for entry in entries])
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
        raise UserError(f"{path} is not the AoA word file: expected {{word: [{{\"context\": ...}}, ...]}}") from None
    if limit is not None:
        words, contexts = words[:limit], contexts[:limit]
    return words, contexts


@dataclass(frozen=True)
class Checkpoint:
    name: str  # the revision name, e.g. chck_10M: the score reads the step from it
    path: Path
    word_count: Optional[int] = None  # None: read from the name


def step_number(name: Union[str, int, float]) -> Optional[float]:
    """The step value of a revision name (`AoAEvaluator.extract_step_number`): the first number and
    an optional K/M/B right after it."""
    if isinstance(name, (int, float)):
        return float(name)
    match = re.search(r"(\d+(?:\.\d+)?)\s*([KMB]?)", str(name), re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(match.group(2).upper(), 1)


def series_checkpoints(run: str | Path) -> list[Checkpoint]:
    """The word checkpoints a run wrote (RUN/word_checkpoints/series.json), in word order."""
    from antlm.train.series import SERIES_DIR, read_series

    series = read_series(Path(run))
    if not series:
        raise UserError(f"{run} has no word-checkpoint series ({Path(run) / SERIES_DIR} is missing or empty): "
                        "train with train.word_checkpoints, or pass the checkpoints as (name, path) pairs")
    return [Checkpoint(name, path, entry.get("words")) for name, path, entry in series]


def _as_checkpoints(checkpoints) -> list[Checkpoint]:
    if isinstance(checkpoints, (str, Path)):
        return series_checkpoints(checkpoints)
    out = []
    for entry in checkpoints:
        if isinstance(entry, Checkpoint):
            out.append(entry)
        else:
            try:
                name, path = entry
            except (TypeError, ValueError):
                raise UserError(f"a checkpoint is a (revision_name, model_path) pair, got {entry!r}") from None
            out.append(Checkpoint(str(name), Path(path)))
    if not out:
        raise UserError("no checkpoints given for the AoA task")
    return out


# --- surprisal ------------------------------------------------------------------------------

def context_request(tokenizer, context: str, word: str, backend: str) -> Request:
    """The word's tokens after its context, found by character offsets as the pipeline finds them."""
    context, word = context.strip() + " ", word.strip()
    text = context + word
    encoding = tokenizer.encode(text, add_special_tokens=False)
    start = len(text) - len(word)
    phrase = [i for i, (_, end) in enumerate(encoding.offsets) if end > start]
    if not phrase:
        raise UserError(f"the AoA word {word!r} has no tokens after its context {context!r}")
    # Offsets end in order, so the word's tokens are the last ones: a prefix and a target.
    first = phrase[0]
    if phrase != list(range(first, len(encoding.ids))):
        raise UserError(f"the AoA word {word!r} is not the last tokens of {text!r}")
    prefix = (tokenizer.token_to_id(BOS),) + tuple(encoding.ids[:first])
    target = tuple(encoding.ids[first:])
    if backend == "causal":
        return Request(prefix, target)
    return Request(prefix, target, (), (tokenizer.token_to_id(EOS),))


def _fed(request: Request, backend: str) -> int:
    if backend == "causal":
        return len(request.prefix) + len(request.target) - 1
    return len(request.prefix) + len(request.target) + len(request.suffix)


def model_surprisals(model, requests: list[Request], backend: str, mask_id: int, *, batch_tokens: int = 16384,
                     overlong: str = "error", progress: Optional[Callable] = None,
                     describe: Optional[Callable[[int], str]] = None) -> list[float]:
    """-sum log p of each request's target under one checkpoint (NaN where skipped)."""
    check_backend(model, backend)
    if overlong not in OVERLONG:
        raise UserError(f"unknown over-long policy '{overlong}' ({', '.join(OVERLONG)})")
    limit = model.cfg.max_seq_len
    if overlong == "error":
        for index, request in enumerate(requests):
            if _fed(request, backend) > limit:
                name = describe(index) if describe else f"AoA request {index}"
                raise UserError(f"{name} needs {_fed(request, backend)} tokens, more than the model's max_seq_len="
                                f"{limit} (the official pipeline does not truncate): overlong='skip' leaves such "
                                "contexts out, 'context' cuts them from the left")
    policy = "skip" if overlong == "skip" else "context"
    if backend == "causal":
        values = scoring.causal_scores(model, requests, batch_tokens, progress, overlong=policy)
    else:
        values = scoring.pll_scores(model, requests, mask_id, model.antlm_meta.mlm_target_offset,
                                    "original", "sum", batch_tokens, progress, overlong=policy)
    return [-v for v in values]


@dataclass
class AoASurprisals:
    data: dict  # surprisal.json: {"metadata": {...}, "results": [{step, word_count, target_word, context_id, context, surprisal}]}
    checkpoints: int
    words: int
    contexts: int  # per checkpoint
    contexts_skipped: int = 0  # over-long (context, word) pairs, summed over checkpoints
    seconds: float = 0.0


def aoa_surprisals(checkpoints, data_path: str | Path, backend: str, *, device: str = "cpu",
                   batch_tokens: int = 16384, limit: Optional[int] = None, min_context: int = 0,
                   overlong: str = "error", model_name: Optional[str] = None,
                   progress: Optional[Callable] = None, log: Callable = print) -> AoASurprisals:
    """Surprisal of every (word, context) of `data_path` (cdi_childes.json) at every checkpoint.

    `checkpoints`: a run directory (its word_checkpoints/series.json) or (revision_name, model_path)
    pairs / Checkpoint objects, in training order."""
    from antlm.model_io import load_model

    start = time.perf_counter()
    if isinstance(checkpoints, (str, Path)) and model_name is None:
        model_name = Path(checkpoints).name
    checkpoints = _as_checkpoints(checkpoints)
    words, contexts = load_aoa_words(data_path, min_context, limit)
    pairs = [(word, context_id, context) for word, cs in zip(words, contexts) for context_id, context in enumerate(cs)]
    results, skipped, cache = [], 0, {}
    for checkpoint in checkpoints:
        model, tokenizer = load_model(checkpoint.path, device)
        check_backend(model, backend)
        key = tokenizer.to_str()
        if key not in cache:  # checkpoints of one run share their tokenizer: encode once
            cache = {key: [context_request(tokenizer, c, w, backend) for w, _, c in pairs]}
        requests = cache[key]
        describe = lambda i: f"checkpoint {checkpoint.name}: word {pairs[i][0]!r}, context {pairs[i][1]}"  # noqa: E731
        values = model_surprisals(model, requests, backend, tokenizer.token_to_id(MASK), batch_tokens=batch_tokens,
                                  overlong=overlong, progress=progress, describe=describe)
        skipped += sum(math.isnan(v) for v in values)
        count = checkpoint.word_count
        if count is None:
            number = step_number(checkpoint.name)
            count = int(number) if number is not None else None
        results.extend({"step": checkpoint.name, "word_count": count, "target_word": w, "context_id": i,
                        "context": c, "surprisal": v} for (w, i, c), v in zip(pairs, values))
        del model
    if skipped:
        log(f"warning: AoA: {skipped} of {len(pairs) * len(checkpoints)} (checkpoint, context) inputs were longer "
            "than the model's window and were skipped (surprisal NaN)")
    data = {"metadata": {"model_name": model_name or str(checkpoints[-1].path), "use_bos_only": False,
                         "total_steps": len(checkpoints), "completed_steps": len({r["step"] for r in results})},
            "results": results}
    return AoASurprisals(data, len(checkpoints), len(words), len(pairs), skipped, time.perf_counter() - start)


# --- the score ------------------------------------------------------------------------------

@contextmanager
def _quiet():
    """The fits' overflow and covariance warnings change no result; the pipeline only logs them."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def sigmoid(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    return a / (1 + np.exp(-b * (x - c))) + d


@dataclass
class CdiData:
    words: list[Optional[str]]  # None where pandas would read a missing value
    ages: np.ndarray
    proportions: np.ndarray  # [word, age], NaN where missing


def load_cdi(path: str | Path) -> CdiData:
    """cdi_human.csv: `word` and the age columns 16..30 (those present)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"CDI data not found: {path} (full_eval/aoa/cdi_human.csv)")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [str(age) for age in AGES if str(age) in (reader.fieldnames or ())]
        if "word" not in (reader.fieldnames or ()) or not columns:
            raise UserError(f"{path} is not the CDI data: it needs a word column and age columns 16..30")
        words, rows = [], []
        try:
            for row in reader:
                words.append(None if row["word"] in PANDAS_NA else row["word"])
                rows.append([math.nan if row[c] in PANDAS_NA else float(row[c]) for c in columns])
        except ValueError as err:
            raise UserError(f"{path}: {err}") from None
    return CdiData(words, np.array([int(c) for c in columns]), np.array(rows, dtype=float).reshape(len(rows), len(columns)))


def child_aoa(ages: np.ndarray, proportions: np.ndarray, threshold: float = 0.5) -> Optional[float]:
    """`AoAEvaluator.compute_child_aoa`: the age where the bounded sigmoid fit crosses `threshold`."""
    from scipy.optimize import curve_fit

    valid = ~np.isnan(proportions)
    if not np.any(valid) or valid.sum() < 3:
        return None
    x, y = ages[valid], proportions[valid]
    try:
        with _quiet():
            popt, _ = curve_fit(sigmoid, x, y, p0=[1.0, 0.1, np.mean(x), 0.0],
                                bounds=([0, 0, x[0], -0.5], [2.0, 1.0, x[-1], 0.5]), maxfev=1000)
        a, b, c, d = popt
        if b <= 0 or a <= 0 or threshold <= d or threshold >= a + d:
            return None
        aoa = c - np.log((a / (threshold - d)) - 1) / b
        return None if aoa < x[0] or aoa > x[-1] else float(aoa)
    except Exception:  # the pipeline: any failed fit means no AoA for the word
        return None


def model_aoa(surprisals: Sequence[float], steps: Sequence[float], threshold: float = 0.5,
              vocab: float = RANDOM_CHANCE_VOCAB) -> Optional[float]:
    """`AoAEvaluator.compute_model_aoa`: log10 of the step where the fitted learning curve crosses
    halfway from chance to the best surprisal; every (step, context) point is one observation."""
    from scipy.optimize import curve_fit

    if len(surprisals) != len(steps):
        raise ValueError("surprisals and steps must have the same length")
    if len(surprisals) < 3:
        return None
    steps, values = np.array(steps), np.array(surprisals)
    valid = ~np.isnan(values)
    if not np.any(valid):
        return None
    steps, values = steps[valid], values[valid]
    chance = np.log2(vocab)
    target = chance - threshold * (chance - np.min(values))
    try:
        y = -values
        x = np.log10(steps + 1)
        with _quiet():
            popt, _ = curve_fit(sigmoid, x, y, p0=[np.max(y) - np.min(y), 1.0, np.mean(x), np.min(y)], maxfev=1000)
        a, b, c, d = popt
        neg = -target
        if b <= 0 or a <= 0 or neg <= d or neg >= a + d:
            return None
        log_step = c - np.log((a / (neg - d)) - 1) / b
        step = 10 ** log_step - 1
        return None if step < steps[0] or step > steps[-1] else float(log_step)
    except Exception:  # as the pipeline: no fit, no AoA
        return None


@dataclass
class AoAScore:
    curve_fitness: float  # the reported "AoA" score: Pearson r of model and child AoAs
    n_words: int
    p_value: Optional[float] = None
    valid_words: list[str] = field(default_factory=list)
    model_aoas: list[float] = field(default_factory=list)
    child_aoas: list[float] = field(default_factory=list)
    mean_monthly_score: Optional[float] = None
    monthly_scores: dict[str, float] = field(default_factory=dict)


def aoa_score(surprisals: dict, human_csv: str | Path, target_words: Optional[Sequence[str]] = None,
              log: Callable = lambda message: None) -> AoAScore:
    """`compute_curve_fitness` on surprisal.json's content (the AoA score of
    calculate_results_from_pred.py)."""
    from scipy.stats import pearsonr

    results = surprisals.get("results", []) if isinstance(surprisals, dict) else []
    if not results:
        raise UserError('no AoA results: expected surprisal.json\'s {"results": [...]}')
    cdi = load_cdi(human_csv)
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for result in results:
        word = result["target_word"]
        if target_words and word not in target_words:
            continue
        steps, values = curves.setdefault(word, ([], []))
        try:
            step, value = step_number(result["step"]), float(result["surprisal"])
        except (ValueError, TypeError):
            log(f"warning: AoA: invalid data for word {word!r}, left out")
            continue
        if step is None:
            log(f"warning: AoA: no step number in {result['step']!r}")
            continue
        steps.append(step)
        values.append(value)
    index = {}
    for i, word in enumerate(cdi.words):
        index.setdefault(word, i)  # the first row of a word, as np.where(...)[0][0]
    model_aoas, child_aoas, valid = [], [], []
    for word, (steps, values) in curves.items():
        if word not in index:
            continue
        child = child_aoa(cdi.ages, cdi.proportions[index[word]])
        if child is None:
            continue
        fitted = model_aoa(values, steps)
        if fitted is None:
            continue
        model_aoas.append(fitted)
        child_aoas.append(child)
        valid.append(word)
    if len(model_aoas) < 3:
        log(f"warning: AoA: only {len(model_aoas)} words have both AoAs; the score is 0")
        return AoAScore(0.0, len(model_aoas))
    correlation, p_value = pearsonr(model_aoas, child_aoas)
    with _quiet():
        monthly = {f"month_{age}": float(np.nanmean(cdi.proportions[:, j])) for j, age in enumerate(cdi.ages)}
    return AoAScore(float(correlation), len(valid), float(p_value), valid, model_aoas, child_aoas,
                    float(np.mean(list(monthly.values()))), monthly)
