"""The 2025 AoA task: batched surprisal equals a plain one-context-at-a-time computation, the curve
fits give the closed-form AoAs on exact sigmoid data, and the real data's limit form writes
surprisal.json in the official format."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from antlm import load_model
from antlm.errors import UserError
from antlm.eval import aoa
from conftest import SHARED_DATA, train_tiny_run

AOA_DIR = SHARED_DATA / "babylm_2025_eval" / "full_eval" / "aoa"
needs_data = pytest.mark.skipif(not (AOA_DIR / "cdi_childes.json").is_file(), reason=f"shared AoA data not found in {AOA_DIR}")
MARKS = "500,1k,2k"


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("aoamodel"), 7, **{"model.max_seq_len": 64, "train.word_checkpoints": MARKS})


CONTEXTS = [("The dog sees the big", "house"), ("  a child  ", "runs"), ("near the", "unbelievably"), ("trees", "x-ray")]


def _naive(model, tok, context, word, backend):
    """StepSurprisalExtractor.compute_surprisal_* for one context: offsets pick the word's tokens."""
    text = context.strip() + " " + word.strip()
    encoding = tok.encode(text, add_special_tokens=False)
    start = len(text) - len(word.strip())
    phrase = [i + 1 for i, (_, end) in enumerate(encoding.offsets) if end > start]  # +1: after <s>
    if backend == "causal":
        ids = torch.tensor([[tok.token_to_id("<s>")] + encoding.ids])
        logprobs = torch.log_softmax(model(ids[:, :-1], causal=True)[0].float(), -1)
        return -sum(logprobs[i - 1, ids[0, i]].item() for i in phrase)
    ids = torch.tensor([[tok.token_to_id("<s>")] + encoding.ids + [tok.token_to_id("</s>")]])
    offset = model.antlm_meta.mlm_target_offset
    total = 0.0
    for i in phrase:
        masked = ids.clone()
        masked[0, i] = tok.token_to_id("<mask>")
        total += torch.log_softmax(model(masked, causal=False)[0, i - offset].float(), -1)[ids[0, i]].item()
    return -total


@pytest.mark.parametrize("backend,offset", [("causal", 1), ("mlm", 0), ("mntp", 1)])
def test_batched_surprisal_equals_naive(series_run, backend, offset):
    model, tok = load_model(series_run)
    model.antlm_meta = dataclasses.replace(model.antlm_meta, mlm_target_offset=offset)
    requests = [aoa.context_request(tok, c, w, backend) for c, w in CONTEXTS]
    assert any(len(r.target) > 2 for r in requests)
    values = aoa.model_surprisals(model, requests, backend, tok.token_to_id("<mask>"), batch_tokens=40)
    for (context, word), value in zip(CONTEXTS, values):
        assert abs(value - _naive(model, tok, context, word, backend)) < 1e-4, word


def test_step_numbers_are_read_from_revision_names():
    assert [aoa.step_number(n) for n in ("chck_10M", "chck_1k", "chck_2500", "chck_1B", "main")] == \
        [1e7, 1e3, 2500.0, 1e9, None]


def test_checkpoints_from_a_series_or_a_list(series_run, tmp_path):
    checkpoints = aoa.series_checkpoints(series_run)
    assert [(c.name, c.word_count) for c in checkpoints] == [("chck_500", 500), ("chck_1k", 1000), ("chck_2k", 2000)]
    with pytest.raises(UserError, match="has no word-checkpoint series"):
        aoa.series_checkpoints(tmp_path)
    words = tmp_path / "words.json"
    words.write_text(json.dumps({"dog": [{"context": "the big"}, {"context": "a small"}], "a": [{"context": "see"}],
                                 "house": [{"context": "near the red"}]}))
    pairs = [(c.name, c.path) for c in checkpoints[:2]]
    result = aoa.aoa_surprisals(pairs, words, "causal", model_name="tiny", log=lambda m: None)
    # One-letter words are left out (load_eval); the records run checkpoint, word, context.
    assert (result.checkpoints, result.words, result.contexts) == (2, 2, 3)
    first = result.data["results"][0]
    assert first == {"step": "chck_500", "word_count": 500, "target_word": "dog", "context_id": 0,
                     "context": "the big", "surprisal": first["surprisal"]}
    assert [r["step"] for r in result.data["results"]] == ["chck_500"] * 3 + ["chck_1k"] * 3
    assert result.data["metadata"] == {"model_name": "tiny", "use_bos_only": False, "total_steps": 2, "completed_steps": 2}
    with pytest.raises(UserError, match="use --backend mntp"):
        aoa.aoa_surprisals(pairs, words, "mlm")
    long_words = tmp_path / "long.json"
    long_words.write_text(json.dumps({"dog": [{"context": "the big"}, {"context": " ".join(["the big cat"] * 30)}]}))
    with pytest.raises(UserError, match=r"checkpoint chck_500: word 'dog', context 1 needs \d+ tokens, more than .*'skip'"):
        aoa.aoa_surprisals(pairs, long_words, "causal")
    skipped = aoa.aoa_surprisals(pairs, long_words, "causal", overlong="skip", log=lambda m: None)
    assert skipped.contexts_skipped == 2 and math.isnan(skipped.data["results"][1]["surprisal"])


# --- the score ----------------------------------------------------------------------------------

CHECKPOINTS = [f"chck_{i}M" for i in range(1, 10)] + [f"chck_{i * 10}M" for i in range(1, 11)]
A, B, D = 10.0, 6.0, -22.0  # -surprisal = A / (1 + exp(-B (log10(step + 1) - C))) + D
MODEL_MIDPOINTS = {"dog": 6.5, "cat": 6.8, "ball": 7.0, "milk": 7.2, "shoe": 7.5}
CHILD_MIDPOINTS = {"dog": 20.0, "cat": 21.0, "ball": 24.0, "milk": 22.5, "shoe": 27.0}


def _synthetic(tmp_path):
    """Exact sigmoid curves, two contexts a checkpoint; a word the CDI lacks, a word without child data."""
    results = []
    for name in CHECKPOINTS:
        x = math.log10(aoa.step_number(name) + 1)
        for word, c in {**MODEL_MIDPOINTS, "zebra": 7.0, "juice": 7.0}.items():
            for context_id in range(2):
                value = -(A / (1 + math.exp(-B * (x - c))) + D)
                if word == "cat" and name == "chck_5M":
                    value = math.nan  # a skipped context drops out of the fit
                results.append({"step": name, "word_count": int(aoa.step_number(name)), "target_word": word,
                                "context_id": context_id, "context": "ctx", "surprisal": value})
    human = tmp_path / "cdi_human.csv"
    ages = range(16, 31)
    lines = [",word," + ",".join(map(str, ages))]
    for i, (word, m) in enumerate({**CHILD_MIDPOINTS, "juice": None}.items()):
        cells = ["" if m is None else repr(1 / (1 + math.exp(-0.5 * (age - m)))) for age in ages]
        lines.append(f"{i},{word}," + ",".join(cells))
    human.write_text("\n".join(lines) + "\n")
    return {"metadata": {}, "results": results}, human


def _closed_form_model_aoa(c):
    surprisals = [-(A / (1 + math.exp(-B * (math.log10(aoa.step_number(n) + 1) - c))) + D) for n in CHECKPOINTS]
    chance = math.log2(300_000)
    threshold = chance - 0.5 * (chance - min(surprisals))
    return c - math.log(A / (-threshold - D) - 1) / B


# AoAEvaluator(cdi_human.csv).compute_curve_fitness on the same data, run outside the repo (scipy 1.17.1):
#   curve_fitness 0.9053645886569324, n_words 5, p_value 0.034447000127486756,
#   model_aoas [6.633515436154029, 6.933272841342918, 7.132600814491778, 7.330393364930878, 7.615442223298055]
#   child_aoas [19.999999999999556, 20.999999999561844, 24.00000000064106, 22.49999999999999, 27.000000000000743]
OFFICIAL_FITNESS, OFFICIAL_P = 0.9053645886569324, 0.034447000127486756


def test_score_recovers_the_closed_form_aoas(tmp_path):
    surprisals, human = _synthetic(tmp_path)
    score = aoa.aoa_score(surprisals, human)
    assert score.valid_words == list(MODEL_MIDPOINTS)
    assert score.model_aoas == pytest.approx([_closed_form_model_aoa(c) for c in MODEL_MIDPOINTS.values()], abs=1e-6)
    assert score.child_aoas == pytest.approx(list(CHILD_MIDPOINTS.values()), abs=1e-6)
    assert score.curve_fitness == pytest.approx(np.corrcoef(score.model_aoas, score.child_aoas)[0, 1])
    assert (score.curve_fitness, score.p_value) == pytest.approx((OFFICIAL_FITNESS, OFFICIAL_P), rel=1e-6)
    # Fewer than three words: the pipeline's 0.0.
    few = {"results": [r for r in surprisals["results"] if r["target_word"] in ("dog", "cat")]}
    assert (aoa.aoa_score(few, human).curve_fitness, aoa.aoa_score(few, human).n_words) == (0.0, 2)


def test_a_curve_that_never_crosses_has_no_aoa():
    steps = [aoa.step_number(n) for n in CHECKPOINTS]
    assert aoa.model_aoa([15.0] * len(steps), steps) is None  # flat: no sigmoid, no crossing
    assert aoa.model_aoa([15.0, math.nan], steps[:2]) is None  # under 3 points
    assert aoa.child_aoa(np.arange(16, 31), np.full(15, 0.1)) is None  # never reaches half the children


# --- the real data ------------------------------------------------------------------------------

@needs_data
def test_real_data_limit_writes_surprisal_json(series_run, tmp_path):
    result = aoa.aoa_surprisals(series_run, AOA_DIR / "cdi_childes.json", "mntp", limit=3, overlong="skip",
                                log=lambda m: None)
    words, contexts = aoa.load_aoa_words(AOA_DIR / "cdi_childes.json", limit=3)
    assert (result.checkpoints, result.words, result.contexts) == (3, 3, sum(map(len, contexts)))
    # surprisal.json, as the 2025 results folder holds it (antlm.eval.outputs.write_2025_layout).
    data = json.loads(json.dumps(result.data))
    assert set(data) == {"metadata", "results"} and data["metadata"]["model_name"] == "run"
    assert len(data["results"]) == 3 * result.contexts
    assert set(data["results"][0]) == {"step", "word_count", "target_word", "context_id", "context", "surprisal"}
    assert {r["target_word"] for r in data["results"]} == {w for w, cs in zip(words, contexts) if cs}
    score = aoa.aoa_score(data, AOA_DIR / "cdi_human.csv")
    assert isinstance(score.curve_fitness, float) and score.n_words <= 3
    full_words, full_contexts = aoa.load_aoa_words(AOA_DIR / "cdi_childes.json")
    assert (len(full_words), sum(map(len, full_contexts))) == (504, 8005)  # collate_preds.py's AOA_SIZE


@needs_data
def test_antlm_eval_runs_reading_and_aoa_into_the_2025_folder(series_run, tmp_path):
    from antlm.eval.outputs import format_table, write_outputs
    from antlm.eval.runner import EvalOptions, run_eval

    options = EvalOptions(tasks=["reading", "aoa"], compat="babylm2025", backend="causal", limit=40, overlong="skip")
    results = run_eval(series_run, SHARED_DATA, options, log=lambda m: None)
    tasks = results["results"]["causal"]["tasks"]
    assert set(tasks["reading"]["subtasks"]) == {"eye_tracking", "self_paced_reading"}
    assert tasks["aoa"]["checkpoints"] == 3 and tasks["aoa"]["metric"] == "pearson_r"
    assert "reading (ET)" in format_table(results)
    write_outputs(results, tmp_path / "r.json", None, tmp_path / "res")
    base = tmp_path / "res" / series_run.name / "main" / "zero_shot" / "causal"
    assert json.loads((base / "reading" / "predictions.json").read_text())["reading"]["predictions"]
    assert len(json.loads((base / "AoA_word" / "surprisal.json").read_text())["results"]) == 3 * tasks["aoa"]["items"]
    import shutil

    shutil.copytree(series_run / "final", tmp_path / "plain" / "final")
    with pytest.raises(UserError, match="no word_checkpoints/series.json"):
        run_eval(tmp_path / "plain", SHARED_DATA, options, log=lambda m: None)
