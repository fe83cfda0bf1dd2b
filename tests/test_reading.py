"""The 2025 reading task: batched surprisal equals a plain one-at-a-time computation of the
pipeline's rule, the OLS equals hand-computed and statsmodels values, and the real data's --limit
form writes the official files."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from antlm import load_model
from antlm.errors import UserError
from antlm.eval import reading
from conftest import SHARED_DATA, train_tiny_run

READING_CSV = SHARED_DATA / "babylm_2025_eval" / "full_eval" / "reading" / "reading_data.csv"
needs_data = pytest.mark.skipif(not READING_CSV.is_file(), reason=f"shared reading data not found at {READING_CSV}")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("readingmodel"), 5, **{"model.max_seq_len": 64})


def _with_offset(model, offset):
    model.antlm_meta = dataclasses.replace(model.antlm_meta, mlm_target_offset=offset)
    return model


PAIRS = [("the dog", "sees"), ("a big red", "house."), ("children", "quickly"), ("the cat near the", "unbelievably"),
         ("None", "of"), ("the tree", "x-ray")]


def _naive_official(model, tok, context, word, backend):
    """evaluation_functions.get_p2 / get_p2_mlm / get_p2_mntp, one forward pass per piece."""
    bos, eos, mask = (tok.token_to_id(t) for t in ("<s>", "</s>", "<mask>"))
    target = tok.encode(word, add_special_tokens=False).ids
    steps, sentence = [(context, target[0])], context + tok.decode([target[0]], skip_special_tokens=False)
    for token in target[1:]:
        piece = tok.decode([token], skip_special_tokens=False)
        steps.append((sentence, tok.encode(piece, add_special_tokens=False).ids[0]))
        sentence += piece
    total = 0.0
    for text, target_id in steps:
        if backend == "causal":
            ids = torch.tensor([[bos] + tok.encode(text, add_special_tokens=False).ids])
            logits = model(ids, causal=True)[0, -1]
        else:
            ids = torch.tensor([[bos] + tok.encode(text + "<mask>" * 3, add_special_tokens=False).ids + [eos]])
            assert ids[0, -2].item() == mask
            logits = model(ids, causal=False)[0, -4 if backend == "mlm" else -5]
        total += torch.log_softmax(logits.float(), -1)[target_id].item()
    return -total


@pytest.mark.parametrize("backend", ["causal", "mlm", "mntp"])
def test_batched_surprisal_equals_naive(tiny_run, backend):
    model, tok = load_model(tiny_run)
    _with_offset(model, {"mlm": 0, "mntp": 1}.get(backend, 1))
    assert any(len(tok.encode(w, add_special_tokens=False).ids) > 2 for _, w in PAIRS)  # multi-piece words
    values, skipped = reading.score_words(model, tok, PAIRS, backend, batch_tokens=48)
    naive = _naive_official
    assert skipped == 0
    for (context, word), value in zip(PAIRS, values):
        assert abs(value - naive(model, tok, context, word, backend)) < 1e-4, (context, word)


def test_official_rule_scores_the_reencoded_piece(tiny_run):
    # get_p2 scores encode(decode(piece))[0] after the decoded pieces: with a prefix-space tokenizer
    # that is a word-initial piece, not the word's own second piece.
    model, tok = load_model(tiny_run)
    official = reading.word_requests(tok, "the dog", "unbelievably", "causal")
    own = tok.encode("unbelievably", add_special_tokens=False).ids
    assert len(official) == len(own) > 1 and official[0].target == (own[0],)
    assert official[1].target != (own[1],)


def test_backend_must_match_the_target_offset(tiny_run):
    model, tok = load_model(tiny_run)  # babyllama: MNTP, offset 1
    with pytest.raises(UserError, match="needs a model with mlm_target_offset=0, this one has 1: use --backend mntp"):
        reading.score_words(model, tok, PAIRS, "mlm")
    with pytest.raises(UserError, match="use --backend mlm"):
        reading.score_words(_with_offset(model, 0), tok, PAIRS, "mntp")
    with pytest.raises(UserError, match="unknown backend"):
        reading.score_words(model, tok, PAIRS, "enc_dec")


def test_overlong_items_are_an_error_or_skipped(tiny_run):
    model, tok = load_model(tiny_run)
    pairs = PAIRS[:2] + [(" ".join(["the big dog"] * 30), "runs")]
    with pytest.raises(UserError, match=r"pair 2 \('runs'\) needs more than the model's max_seq_len=64 .*overlong='skip'"):
        reading.score_words(model, tok, pairs, "causal")
    values, skipped = reading.score_words(model, tok, pairs, "causal", overlong="skip")
    assert skipped == 1 and math.isnan(values[2]) and not math.isnan(values[0])
    values, skipped = reading.score_words(model, tok, pairs, "mntp", overlong="context")
    assert skipped == 0 and not math.isnan(values[2])


# --- the regressions ----------------------------------------------------------------------------

def test_ols_equals_hand_computed_simple_regression():
    # y = 1.1 + 1.1 x: Sxy = 5.5, Sxx = 5, SSR = 2.7, SST = 8.75, se(slope) = sqrt(2.7 / 2 / 5).
    fit = reading.ols(np.array([1.0, 3.0, 2.0, 5.0]), {"x": np.array([0.0, 1.0, 2.0, 3.0])})
    assert fit.params == pytest.approx({"Intercept": 1.1, "x": 1.1})
    assert fit.rsquared == pytest.approx(1 - 2.7 / 8.75)
    assert fit.tvalues["x"] == pytest.approx(1.1 / math.sqrt(0.27))
    # AIC = n (log 2 pi + log(SSR / n) + 1) + 2 k
    assert fit.aic == pytest.approx(4 * (math.log(2 * math.pi) + math.log(2.7 / 4) + 1) + 4)
    # Two-sided t test on 2 degrees of freedom: p = 1 - t / sqrt(2 + t^2).
    t = 1.1 / math.sqrt(0.27)
    assert fit.pvalues["x"] == pytest.approx(1 - t / math.sqrt(2 + t * t))


def _synthetic_rows(n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows, preds, prev_preds = [], [], []
    for i in range(n):
        values = {"Subtlex_log10": rng.uniform(2, 15), "length": float(rng.integers(1, 12)),
                  "context_length": float(rng.integers(1, 15)), "prev_length": float(rng.integers(-1, 10))}
        pred, prev = rng.uniform(2, 20), (rng.uniform(2, 20) if i % 7 else math.nan)
        base = 200 - 3 * values["Subtlex_log10"] + 8 * values["length"]
        for j, measure in enumerate(reading.MEASURES):
            values[measure] = base + (1 + j) * pred + 2 * (0 if math.isnan(prev) else prev) + rng.normal(0, 25)
        values["Subtlex_log10"] = math.nan if i == 3 else values["Subtlex_log10"]
        rows.append(reading.ReadingRow(i, "ctx", "w", None, None, values))
        preds.append(pred)
        prev_preds.append(prev)
    return rows, preds, prev_preds


# statsmodels 0.15.0 (smf.ols with run.py's formulas) on _synthetic_rows(), run outside the repo:
#   RTfirstfix  plain:     R2 0.6593386564702883, R2 baseline 0.6209772927359009, AIC 565.3135474964474,
#                          coefficient 1.768765001025641, t 2.3964627317123433, p 0.02025879748774323
#   self_paced_reading_time spillover: R2 0.7474103846188627, R2 baseline 0.550234996111141
#   EYE TRACKING SCORE 23.199991215940848, SELF-PACED READING SCORE 43.83964666055821
STATSMODELS = {"R2": 0.6593386564702883, "AIC": 565.3135474964474, "Coefficient": 1.768765001025641,
               "Number of standard deviations": 2.3964627317123433, "P-value": 0.02025879748774323}


def test_scores_equal_statsmodels_on_synthetic_data():
    rows, preds, prev_preds = _synthetic_rows()
    scores = reading.reading_scores(rows, preds, prev_preds)
    first = scores.predictive_power[0]
    assert first["Predicted variable"] == "RTfirstfix"
    for key, value in STATSMODELS.items():
        assert first[key] == pytest.approx(value, rel=1e-9), key
    assert first["Change in R2 from baseline"] == pytest.approx(0.6593386564702883 - 0.6209772927359009, rel=1e-9)
    assert scores.eye_tracking_score == pytest.approx(23.199991215940848, rel=1e-9)
    assert scores.self_paced_reading_score == pytest.approx(43.83964666055821, rel=1e-9)
    # The reported value is the gain over the room left by the baseline, in percent.
    spr = next(r for r in scores.predictive_power_spillover if r["Predicted variable"] == "self_paced_reading_time")
    assert spr["R2"] == pytest.approx(0.7474103846188627, rel=1e-9)
    assert scores.self_paced_reading_score == pytest.approx(
        (0.7474103846188627 - 0.550234996111141) / (1 - 0.550234996111141) * 100, rel=1e-9)
    # The eye-tracking score averages the four RT measures only.
    gains = [reading.r2_gain(reading.predictive_power(reading._columns(rows, preds, prev_preds), m, reading.BASE_TERMS))
             for m in reading.EYE_TRACKING]
    assert scores.eye_tracking_score == pytest.approx(sum(gains) / 4)


# --- the real data ------------------------------------------------------------------------------

@needs_data
def test_csv_reads_as_pandas_reads_it():
    rows = reading.read_reading_csv(READING_CSV)
    assert len(rows) == 1726 and rows[0].index == 0 and rows[-1].index == 1725
    # The sentence that starts with "None": pandas reads the item as missing and run.py fills it
    # with "None"; the next word's prev_item "None" stays missing.
    none_row = next(r for r in rows if r.word == "of" and r.item == "None")
    assert none_row.prev_item is None
    assert sum(r.prev_item is None for r in rows) == 206
    assert sum(math.isnan(r.values["Subtlex_log10"]) for r in rows) == 30
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(READING_CSV, dtype={"item": str})
    assert [r.item for r in rows] == frame["item"].fillna("None").tolist()
    assert [r.prev_item is None for r in rows] == frame["prev_item"].isna().tolist()


@needs_data
@pytest.mark.parametrize("backend", ["causal", "mntp"])
def test_real_data_limit_gives_the_official_predictions_and_report(tiny_run, tmp_path, backend):
    model, tok = load_model(tiny_run)
    result = reading.run_reading(model, tok, READING_CSV, backend, limit=40, log=lambda m: None)
    assert result.summary()["rows"] == 40 and result.words_skipped == 0
    # predictions.json as the 2025 results folder holds it (antlm.eval.outputs.write_2025_layout).
    predictions = json.loads(json.dumps(result.predictions))
    entries = predictions["reading"]["predictions"]
    assert [e["id"] for e in entries] == list(range(40)) and set(entries[0]) == {"id", "pred", "prev_pred"}
    assert all(e["pred"] > 0 for e in entries)
    assert [math.isnan(e["prev_pred"]) for e in entries] == [r.prev_item is None for r in result.rows]
    report = result.report_text().splitlines()
    assert report[0].startswith("EYE TRACKING SCORE: ") and report[1].startswith("SELF-PACED READING SCORE: ")
    assert len(result.scores.predictive_power) == len(reading.MEASURES)
    # The scores recomputed from predictions.json (calculate_results_from_pred.py's way) are the same.
    limited = tmp_path / "limited.csv"
    limited.write_text("".join(READING_CSV.read_text(encoding="utf-8").splitlines(keepends=True)[:41]))
    spr, et = reading.score_predictions(predictions, limited)
    assert (spr, et) == pytest.approx((result.scores.self_paced_reading_score, result.scores.eye_tracking_score))
