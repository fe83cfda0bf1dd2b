"""The BabyLM 2025 reading task: word surprisal as a predictor of eye-tracking and self-paced
reading times (de Varda et al. 2023), as the 2025 pipeline computes it.

Reference: evaluation-pipeline-2025 @ bf55c11, `evaluation_pipeline/reading/run.py` (the loop, the
regressions, the output files) and `reading/evaluation_functions.py` (`get_p2`, `get_p2_mlm`,
`get_p2_mntp`), and `calculate_results_from_pred.py` (`_calculate_reading_results`, the same
scores recomputed from `predictions.json`).

Surprisal (the pipeline's rule, quirks included):
- The word's pieces are `encode(word)` (antlm's tokenizer adds the prefix space, so the first
  piece is the in-context one). Piece 1 is scored after the context string. Each later piece is
  scored after `context + decode(earlier pieces)`, re-encoded as a string, and the id scored is
  the *first id of encode(decode(piece))*: with a prefix-space tokenizer that is a word-initial
  piece (" olate" -> "Ġol"), not the piece itself (`get_p2`'s loop calls `get_p(sentence, t)`).
- causal: `<s> context`, the next-token distribution at the last position (the Llama export's
  `tokenizer(text)`).
- mlm / mntp: `<s> context<mask><mask><mask> </s>` (three masks appended, Samuel 2024; the
  LTG-BERT export's template), read at the first mask (mlm) or one to its left (mntp).
- surprisal = -sum of the pieces' natural log-probabilities (the pipeline: -log of their product).
- The CSV is read as pandas reads it: the strings pandas takes for missing values ("None", "NA",
  "", ...) are missing. `item` is then filled with the literal "None" (run.py does `fillna("None")`;
  one sentence starts with the word None), and a missing `prev_item` gives a missing `prev_pred`.

Scores, in percent: (R2_model - R2_baseline) / (1 - R2_baseline) * 100, where the baseline OLS
regresses the measure on Subtlex_log10, length, context_length and their pairwise interactions and
the model adds `pred` (the surprisal). EYE TRACKING SCORE averages it over RTfirstfix, RTfirstpass,
RTgopast and RTrightbound; SELF-PACED READING SCORE is self_paced_reading_time's with the one-word
spillover baseline (prev_length and prev_pred added, with all their pairwise interactions).
The OLS is statsmodels' (`smf.ols(...).fit()`: pinv solution, R2, AIC, t and p values) in numpy.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import stats

from antlm.data.tokenizer import BOS, EOS, MASK
from antlm.errors import UserError
from antlm.eval import scoring
from antlm.eval.scoring import Request

BACKENDS = ("causal", "mlm", "mntp")
OVERLONG = ("error", "skip", "context")
NUM_MASKS = 3  # run.py's --number_of_mask_tokens_to_append default
MEASURES = ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound", "self_paced_reading_time",
            "ELAN", "LAN", "N400", "P600", "EPNP", "PNP")
EYE_TRACKING = ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound")  # run.py: `"RT" in dv`
SELF_PACED = "self_paced_reading_time"
BASE_TERMS = ("Subtlex_log10", "length", "context_length")
SPILLOVER_TERMS = BASE_TERMS + ("prev_length", "prev_pred")
# pandas.read_csv's default na_values (pandas/_libs/parsers.pyx STR_NA_VALUES).
PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                       "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
NUMERIC = BASE_TERMS + ("prev_length",) + MEASURES


# --- data -----------------------------------------------------------------------------------

@dataclass
class ReadingRow:
    index: int  # the row's position in the CSV: predictions.json's "id"
    item: str  # the context before the word
    word: str
    prev_item: Optional[str]
    prev_word: Optional[str]
    values: dict[str, float]  # the predictors and measures (NaN where missing)


def _cell(row: dict, key: str) -> Optional[str]:
    value = row.get(key)
    return None if value is None or value in PANDAS_NA else value


def read_reading_csv(path: str | Path, limit: Optional[int] = None) -> list[ReadingRow]:
    """The rows of reading_data.csv (the first `limit` if given), missing values as pandas reads them."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reading data not found: {path}")
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"item", "word", "prev_item", "prev_word", *NUMERIC}
        missing = sorted(needed - set(reader.fieldnames or ()))
        if missing:
            raise UserError(f"{path} is not the reading data: it lacks the columns {', '.join(missing)}")
        for number, row in enumerate(reader):
            if limit is not None and number >= limit:
                break
            try:
                values = {k: float(row[k]) if _cell(row, k) is not None else math.nan for k in NUMERIC}
            except ValueError as err:
                raise UserError(f"{path}: row {number}: {err}") from None
            word = _cell(row, "word")
            if word is None:
                raise UserError(f"{path}: row {number} has no word")
            rows.append(ReadingRow(number, _cell(row, "item") or "None", word, _cell(row, "prev_item"),
                                   _cell(row, "prev_word"), values))
    if not rows:
        raise UserError(f"{path} has no rows")
    return rows


# --- surprisal ------------------------------------------------------------------------------

def check_backend(model, backend: str) -> None:
    """mlm reads at the masked position (offset 0), mntp one to its left (offset 1): the model's
    own target offset must be the backend's."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}' ({', '.join(BACKENDS)})")
    if backend == "causal":
        return
    offset = model.antlm_meta.mlm_target_offset
    wanted = {"mlm": 0, "mntp": 1}[backend]
    if offset != wanted:
        right = {0: "mlm", 1: "mntp"}.get(offset)
        raise UserError(f"backend {backend} needs a model with mlm_target_offset={wanted}, this one has {offset}"
                        + (f": use --backend {right}" if right else ""))


def _official_pieces(tokenizer, context: str, word: str) -> list[tuple[str, int]]:
    """(context string, target id) for each piece, as `get_p2` walks the word: each later piece is
    scored after the decoded earlier pieces, and its id is the first of encode(decode(piece))."""
    target = tokenizer.encode(word, add_special_tokens=False).ids
    if not target:
        raise UserError(f"the word {word!r} has no tokens")
    steps = [(context, target[0])]
    sentence = context + tokenizer.decode([target[0]], skip_special_tokens=False)
    for token in target[1:]:
        piece = tokenizer.decode([token], skip_special_tokens=False)
        ids = tokenizer.encode(piece, add_special_tokens=False).ids
        if not ids:
            raise UserError(f"the word {word!r}: its piece {piece!r} re-encodes to no tokens")
        steps.append((sentence, ids[0]))
        sentence += piece
    return steps


def _context_ids(tokenizer, text: str, backend: str) -> tuple[int, ...]:
    """The context's ids. The masked functions encode `context + "<mask>" * 3` as one string; the
    masks split off as special tokens, so what precedes them is encode(context): checked, not assumed."""
    if backend == "causal":
        return tuple(tokenizer.encode(text, add_special_tokens=False).ids)
    ids = tokenizer.encode(text + MASK * NUM_MASKS, add_special_tokens=False).ids
    mask = tokenizer.token_to_id(MASK)
    if ids[-NUM_MASKS:] != [mask] * NUM_MASKS:
        raise UserError(f"the tokenizer does not keep {MASK} as one token after {text!r}")
    return tuple(ids[:-NUM_MASKS])


def _request(tokenizer, context_ids: tuple[int, ...], target_id: int, backend: str) -> Request:
    bos = tokenizer.token_to_id(BOS)
    if backend == "causal":
        return Request((bos,) + context_ids, (target_id,))
    # The masked target is the first of the appended masks; the other masks and </s> follow it.
    mask, eos = tokenizer.token_to_id(MASK), tokenizer.token_to_id(EOS)
    return Request((bos,) + context_ids, (target_id,), (), (mask,) * (NUM_MASKS - 1) + (eos,))


def word_requests(tokenizer, context: str, word: str, backend: str) -> list[Request]:
    """One single-token request per piece of `word` after `context`."""
    pieces = [(_context_ids(tokenizer, text, backend), target) for text, target in _official_pieces(tokenizer, context, word)]
    return [_request(tokenizer, ids, target_id, backend) for ids, target_id in pieces]


def _fits(request: Request, limit: int, backend: str) -> bool:
    # A causal request feeds its prefix only (the target is read, not fed).
    fed = len(request.prefix) if backend == "causal" else len(request.prefix) + len(request.target) + len(request.suffix)
    return fed <= limit


def score_words(model, tokenizer, pairs: Sequence[tuple[str, str]], backend: str, *,
                batch_tokens: int = 16384, overlong: str = "error", progress: Optional[Callable] = None,
                describe: Optional[Callable[[int], str]] = None) -> tuple[list[float], int]:
    """Surprisal (nats) of each (context, word) pair, and how many pairs were skipped (NaN).

    Identical requests are scored once (a word's previous word is usually the row before it)."""
    check_backend(model, backend)
    if overlong not in OVERLONG:
        raise UserError(f"unknown over-long policy '{overlong}' ({', '.join(OVERLONG)})")
    unique: dict[Request, int] = {}
    plan: list[list[int]] = []
    for context, word in pairs:
        plan.append([unique.setdefault(r, len(unique)) for r in word_requests(tokenizer, context, word, backend)])
    requests = list(unique)
    limit = model.cfg.max_seq_len
    too_long = {i for i, r in enumerate(requests) if not _fits(r, limit, backend)}
    if too_long and overlong == "error":
        first = next(n for n, ids in enumerate(plan) if too_long.intersection(ids))
        name = describe(first) if describe else f"pair {first} ({pairs[first][1]!r})"
        raise UserError(f"{name} needs more than the model's max_seq_len={limit} tokens (the official pipeline "
                        "does not truncate): overlong='skip' leaves such items out, 'context' cuts their context "
                        "from the left")
    policy = "skip" if overlong == "skip" else "context"
    if backend == "causal":
        values = scoring.causal_scores(model, requests, batch_tokens, progress, overlong=policy)
    else:
        values = scoring.pll_scores(model, requests, scoring.mask_id_of(tokenizer), model.antlm_meta.mlm_target_offset,
                                    "original", "sum", batch_tokens, progress, overlong=policy)
    surprisals = [-sum(values[i] for i in ids) for ids in plan]
    skipped = sum(math.isnan(s) for s in surprisals)
    return surprisals, skipped


# --- regressions ----------------------------------------------------------------------------

@dataclass
class OlsFit:
    params: dict[str, float]
    tvalues: dict[str, float]
    pvalues: dict[str, float]
    rsquared: float
    aic: float
    nobs: int


def ols(y: np.ndarray, columns: dict[str, np.ndarray]) -> OlsFit:
    """statsmodels' OLS with an intercept (`fit()`: the pinv solution, `use_t`)."""
    names = ["Intercept", *columns]
    X = np.column_stack([np.ones(len(y)), *columns.values()])
    pinv = np.linalg.pinv(X)
    params = pinv @ y
    resid = y - X @ params
    ssr = float(resid @ resid)
    n = len(y)
    rank = int(np.linalg.matrix_rank(X))
    df_resid = n - rank
    centered = y - y.mean()
    rsquared = 1 - ssr / float(centered @ centered)
    llf = -n / 2 * (np.log(2 * np.pi) + np.log(ssr / n) + 1)
    aic = float(-2 * llf + 2 * rank)  # statsmodels: df_model + k_constant = rank
    with np.errstate(divide="ignore", invalid="ignore"):
        bse = np.sqrt(np.diag(pinv @ pinv.T) * (ssr / df_resid)) if df_resid > 0 else np.full(len(names), np.nan)
        tvalues = params / bse
    pvalues = 2 * stats.t.sf(np.abs(tvalues), df_resid) if df_resid > 0 else np.full(len(names), np.nan)
    as_dict = lambda a: {k: float(v) for k, v in zip(names, a)}  # noqa: E731
    return OlsFit(as_dict(params), as_dict(tvalues), as_dict(pvalues), float(rsquared), aic, n)


def _design(data: dict[str, np.ndarray], terms: Sequence[str], with_pred: bool) -> dict[str, np.ndarray]:
    """Main effects, then every pairwise interaction in formula order, then pred (patsy's columns)."""
    columns = {t: data[t] for t in terms}
    for i, a in enumerate(terms):
        for b in terms[i + 1:]:
            columns[f"{a}:{b}"] = data[a] * data[b]
    if with_pred:
        columns["pred"] = data["pred"]
    return columns


def _complete(data: dict[str, np.ndarray], keys: Sequence[str]) -> dict[str, np.ndarray]:
    keep = np.all([~np.isnan(data[k]) for k in keys], axis=0)
    return {k: data[k][keep] for k in keys}


def predictive_power(data: dict[str, np.ndarray], measure: str, terms: Sequence[str]) -> dict[str, float]:
    """One row of run.py's predictive_power(_spillover).jsonl: the baseline fitted on the rows where
    it is complete, the model on the rows where pred is complete too (as run.py's dropna does)."""
    base_rows = _complete(data, (measure, *terms))
    baseline = ols(base_rows[measure], _design(base_rows, terms, False))
    model_rows = _complete(data, ("pred", measure, *terms))
    fit = ols(model_rows[measure], _design(model_rows, terms, True))
    return {
        "Predicted variable": measure,
        "Coefficient": fit.params["pred"],
        "Number of standard deviations": fit.tvalues["pred"],
        "P-value": fit.pvalues["pred"],
        "R2": fit.rsquared,
        "Change in R2 from baseline": fit.rsquared - baseline.rsquared,
        "AIC": fit.aic,
        "Change in AIC from baseline": fit.aic - baseline.aic,
        "_R2_baseline": baseline.rsquared,
    }


def r2_gain(row: dict[str, float]) -> float:
    """The reported value: the R2 gain as a percentage of the largest gain possible."""
    room = 1 - row["_R2_baseline"]
    # A baseline that already fits perfectly (a --limit run of a few rows) leaves no gain to measure.
    return row["Change in R2 from baseline"] / room * 100 if room > 0 else float("nan")


def _columns(rows: Sequence[ReadingRow], preds: Sequence[float], prev_preds: Sequence[float]) -> dict[str, np.ndarray]:
    data = {k: np.array([r.values[k] for r in rows], dtype=float) for k in NUMERIC}
    data["pred"] = np.array(preds, dtype=float)
    data["prev_pred"] = np.array(prev_preds, dtype=float)
    return data


def correlations(data: dict[str, np.ndarray]) -> dict[str, float]:
    """Pearson correlation of pred with each measure over the rows where both are present
    (pandas' DataFrame.corr, as run.py writes correlations.txt)."""
    out = {}
    for measure in MEASURES:
        keep = ~np.isnan(data["pred"]) & ~np.isnan(data[measure])
        x, y = data["pred"][keep], data[measure][keep]
        out[measure] = float(np.corrcoef(x, y)[0, 1]) if keep.sum() > 1 and x.std() > 0 and y.std() > 0 else math.nan
    return out


@dataclass
class ReadingScores:
    eye_tracking_score: float  # "EYE TRACKING SCORE" / "READING (ET)"
    self_paced_reading_score: float  # "SELF-PACED READING SCORE" / "READING (SPR)"
    predictive_power: list[dict] = field(default_factory=list)
    predictive_power_spillover: list[dict] = field(default_factory=list)
    correlations: dict[str, float] = field(default_factory=dict)


def reading_scores(rows: Sequence[ReadingRow], preds: Sequence[float], prev_preds: Sequence[float]) -> ReadingScores:
    """The regressions of run.py over every measure, and the two reported scores."""
    data = _columns(rows, preds, prev_preds)
    plain = [predictive_power(data, m, BASE_TERMS) for m in MEASURES]
    spill = [predictive_power(data, m, SPILLOVER_TERMS) for m in MEASURES]
    eye = [r2_gain(r) for r in plain if r["Predicted variable"] in EYE_TRACKING]
    spr = next(r2_gain(r) for r in spill if r["Predicted variable"] == SELF_PACED)
    strip = lambda table: [{k: v for k, v in r.items() if not k.startswith("_")} for r in table]  # noqa: E731
    return ReadingScores(sum(eye) / len(eye), spr, strip(plain), strip(spill), correlations(data))


def score_predictions(predictions: dict, csv_path: str | Path) -> tuple[float, float]:
    """(SPR, ET) from a predictions.json's content, as calculate_results_from_pred.py computes them."""
    try:
        entries = predictions["reading"]["predictions"]
        preds = [float(e["pred"]) for e in entries]
        prev_preds = [float(e["prev_pred"]) for e in entries]
    except (KeyError, TypeError, ValueError):
        raise UserError("not a reading predictions.json: expected {\"reading\": {\"predictions\": [{id, pred, prev_pred}]}}") from None
    rows = read_reading_csv(csv_path)
    if len(rows) != len(preds):
        raise UserError(f"{len(preds)} reading predictions for {len(rows)} rows of {csv_path}")
    scores = reading_scores(rows, preds, prev_preds)
    return scores.self_paced_reading_score, scores.eye_tracking_score


# --- the task -------------------------------------------------------------------------------

@dataclass
class ReadingResult:
    scores: ReadingScores
    predictions: dict  # predictions.json: {"reading": {"predictions": [{"id", "pred", "prev_pred"}]}}
    rows: list[ReadingRow]
    preds: list[float]
    prev_preds: list[float]
    backend: str
    words_skipped: int = 0  # (context, word) pairs left out as over-long (overlong="skip")
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"eye_tracking_score": self.scores.eye_tracking_score,
                "self_paced_reading_score": self.scores.self_paced_reading_score,
                "rows": len(self.rows), "words_skipped": self.words_skipped, "backend": self.backend,
                "mode": "babylm2025", "seconds": round(self.seconds, 1)}

    def report_text(self) -> str:
        """report.txt, as run.py writes it."""
        return (f"EYE TRACKING SCORE: {self.scores.eye_tracking_score:.2f}\n"
                f"SELF-PACED READING SCORE: {self.scores.self_paced_reading_score:.2f}\n")


def run_reading(model, tokenizer, csv_path: str | Path, backend: str, *,
                batch_tokens: int = 16384, limit: Optional[int] = None, overlong: str = "error",
                progress: Optional[Callable] = None, log: Callable = print) -> ReadingResult:
    """Score every row's word (and its previous word) and fit the regressions."""
    start = time.perf_counter()
    check_backend(model, backend)
    rows = read_reading_csv(csv_path, limit)
    pairs = [(r.item, r.word) for r in rows]
    has_prev = [r.prev_item is not None for r in rows]
    # run.py scores the previous word only where prev_item is a string (pandas: not missing).
    for r in rows:
        if r.prev_item is not None:
            if r.prev_word is None:
                raise UserError(f"{csv_path}: row {r.index} has a prev_item but no prev_word")
            pairs.append((r.prev_item, r.prev_word))

    def describe(n: int) -> str:
        if n < len(rows):
            return f"reading row {rows[n].index} (word {rows[n].word!r})"
        return f"the previous word of a reading row ({pairs[n][1]!r})"

    surprisals, skipped = score_words(model, tokenizer, pairs, backend, batch_tokens=batch_tokens,
                                      overlong=overlong, progress=progress, describe=describe)
    preds = surprisals[:len(rows)]
    rest = iter(surprisals[len(rows):])
    prev_preds = [next(rest) if present else math.nan for present in has_prev]
    if skipped:
        log(f"warning: reading: {skipped} of {len(pairs)} words were longer than max_seq_len="
            f"{model.cfg.max_seq_len} and were skipped (their surprisal is NaN)")
    scores = reading_scores(rows, preds, prev_preds)
    predictions = {"reading": {"predictions": [{"id": r.index, "pred": p, "prev_pred": q}
                                               for r, p, q in zip(rows, preds, prev_preds)]}}
    return ReadingResult(scores, predictions, rows, preds, prev_preds, backend, skipped,
                         time.perf_counter() - start)
