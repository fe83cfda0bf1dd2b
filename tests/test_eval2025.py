"""`--compat babylm2025`: inputs as the 2025 pipeline builds them, sums equal a direct computation,
the new tasks on the real data, the fast sets, the temperature sweep and the 2025 results folder."""
import json
import random

import pytest
import torch

from antlm.data.tokenizer import train_tokenizer
from antlm.errors import UserError
from antlm.eval import runner, scoring
from antlm.eval.pipelines import babylm2025
from antlm.eval.pipelines.base import ScoringContext
from antlm.eval.outputs import write_outputs
from antlm.eval.runner import EvalOptions, run_eval
from antlm.eval.tasks import Item, detect_layout, load_task, locate
from antlm.model_io import load_model
from conftest import SHARED_DATA, WORDS, save_random_model

NEW_2025 = SHARED_DATA / "babylm_2025_eval"
needs_data = pytest.mark.skipif(not NEW_2025.is_dir(), reason=f"BabyLM 2025 evaluation data not found at {NEW_2025}")

# Texts with the shapes the 2025 readers make: BLiMP (whole sentence), EWoK (context + " " + target),
# entity tracking (a prefix ending in a space, an option without one), a turn_taking newline.
CASES = [
    ("the dog runs .", "the dog runs ."),
    ("the cat sees the dog . the dog is happy .", " the dog is happy ."),
    ("Box 1 contains the red house and the tree .", "the red house and the tree ."),
    ("A: is the dog big ?\nB: the dog is big .", "A: is the dog big ?\nB: the dog is big ."),
    ("children see trees near  the houses .", " the houses ."),
]


def _save_random(directory, tokenizer, backbone):
    return save_random_model(directory, tokenizer, backbone, **{"model.max_seq_len": 512, "data.seq_len": 512})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval2025")
    rng = random.Random(0)
    tokenizer = train_tokenizer([" ".join(rng.choice(WORDS) for _ in range(9)) + " ." for _ in range(600)], vocab_size=300)
    return {backbone: _save_random(root / backbone, tokenizer, backbone) for backbone in ("babyllama", "ltgbert")}


def _reference_sum(model, tokenizer, sentence, completion, backend, temperature, bos, eos):
    """The 2025 computation written out: one sentence, unbatched, scored tokens by character offsets."""
    encoding = tokenizer.encode(sentence, add_special_tokens=False)
    start = len(sentence) - len(completion)
    ids = ([tokenizer.token_to_id("<s>")] if bos else []) + encoding.ids + ([tokenizer.token_to_id("</s>")] if eos else [])
    shift = int(bos)
    scored = [i + shift for i, (_, end) in enumerate(encoding.offsets) if end > start]
    total = 0.0
    with torch.no_grad():
        if backend == "causal":
            logits = model(torch.tensor([ids]), causal=True)[0].float()
            for i in scored:
                total += torch.log_softmax(logits[i - 1] / temperature, -1)[ids[i]].item()
            return total
        read = 0 if backend == "mlm" else 1
        for i in scored:
            masked = list(ids)
            masked[i] = tokenizer.token_to_id("<mask>")
            logits = model(torch.tensor([masked]), causal=False)[0, i - read].float()
            total += torch.log_softmax(logits / temperature, -1)[ids[i]].item()
    return total


@pytest.mark.parametrize("backbone,backend", [("babyllama", "causal"), ("babyllama", "mntp"),
                                              ("ltgbert", "mlm"), ("ltgbert", "causal")])
def test_2025_scores_are_sums_over_the_completion(models, backbone, backend):
    model, tokenizer = load_model(models[backbone])
    items = [Item(f"x_{i}", "", (s, s + " ."), (s, s + " ."), (c, c + " .")) for i, (s, c) in enumerate(CASES)]
    options = EvalOptions(tasks=["blimp"], compat="babylm2025", backend=backend, temperatures=[1.0, 1.7])
    scores = runner.score_items(model, tokenizer, items, backend, options, log=lambda m: None)
    bos, eos = babylm2025.special_tokens(backbone)
    for temperature in (1.0, 1.7):
        for item, values in zip(items, scores[temperature]):
            for sentence, completion, value in zip(item.sentences, item.completions, values):
                expected = _reference_sum(model, tokenizer, sentence, completion, backend, temperature, bos, eos)
                assert value == pytest.approx(expected, abs=1e-4), (backend, sentence)


def test_2025_inputs_are_what_the_exported_tokenizer_gives(models, tmp_path):
    """The token ids and the scored span equal what `dataset.py` computes from the export's
    `tokenizer(sentence, return_offsets_mapping=True)` (here under the installed transformers)."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from antlm.export.hf import export_hf

    for backbone, run in models.items():
        hf = AutoTokenizer.from_pretrained(str(export_hf(run, tmp_path / backbone)))
        _, tokenizer = load_model(run)
        for sentence, completion in CASES:
            out = hf(sentence, return_offsets_mapping=True)
            start = len(sentence) - len(completion)
            official = [i for i, (_, end) in enumerate(out["offset_mapping"]) if end > start]
            ctx = ScoringContext(tokenizer, backbone, 0)
            request = scoring.encode_completion(tokenizer, sentence, completion, *babylm2025.special_ids(ctx))
            assert list(request.prefix + request.target + request.suffix) == out["input_ids"], (backbone, sentence)
            assert [out["input_ids"][i] for i in official] == list(request.target), (backbone, sentence)


@needs_data  # run_eval locates the data before it checks the backend
def test_2025_masked_backend_must_match_the_model(models, tmp_path):
    with pytest.raises(UserError, match="use --backend mntp"):
        run_eval(models["babyllama"], SHARED_DATA, EvalOptions(tasks=["blimp"], compat="babylm2025", backend="mlm", limit=1),
                 log=lambda m: None)
    with pytest.raises(UserError, match="use --backend mlm"):
        run_eval(models["ltgbert"], SHARED_DATA, EvalOptions(tasks=["blimp"], compat="babylm2025", backend="mntp", limit=1),
                 log=lambda m: None)
    with pytest.raises(UserError, match="does not run reading"):
        run_eval(models["ltgbert"], SHARED_DATA, EvalOptions(tasks=["reading"], compat="babylm2024"), log=lambda m: None)


def test_first_maximum_wins_and_text_decides():
    assert runner.choose([1.0, 3.0, 3.0]) == 1 and runner.choose([2.0, 2.0]) == 0
    same = Item("a_0", "", ("the dog .", "the cat .", "the dog ."))
    assert runner.is_correct(same, [0.0, -1.0, 5.0], ties_correct=True)  # a distractor with the correct text
    assert not runner.is_correct(same, [1.0, 1.0, 0.0], ties_correct=False)


@needs_data
@pytest.mark.parametrize("eval_set", ["full", "fast"])
def test_2025_suite_runs_on_the_shared_data(models, tmp_path, eval_set):
    tasks = ["blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past"]
    options = EvalOptions(tasks=tasks, compat="babylm2025", backend="hybrid", limit=2, eval_set=eval_set,
                          temperatures=[1.0, 2.0])
    results = run_eval(models["babyllama"], SHARED_DATA, options, log=lambda m: None)
    assert set(results["results"]) == {"causal", "mntp"} and not results["complete"]
    entry = results["results"]["mntp"]
    assert entry["read_offset"] == 1 and entry["reduction"] == "sum" and entry["macro"] is None
    datasets = {t: e["dataset"] for t, e in entry["tasks"].items()}
    fast = eval_set == "fast"
    assert datasets == {"blimp": "blimp_fast" if fast else "blimp_filtered",
                        "blimp_supplement": "supplement_fast" if fast else "supplement_filtered",
                        "ewok": "ewok_fast" if fast else "ewok_filtered",
                        "entity_tracking": "entity_tracking_fast" if fast else "entity_tracking",
                        "wug_adj": "wug_adj_nominalization", "wug_past": "wug_past_tense"}
    assert len(entry["tasks"]["blimp"]["subtasks"]) == 67 and len(entry["tasks"]["ewok"]["subtasks"]) == 11
    assert len(entry["tasks"]["entity_tracking"]["subtasks"]) == (6 if fast else 18)
    assert entry["tasks"]["wug_adj"]["metric"] == "spearman_x100"
    label = entry["tasks"]["ewok"]["label"]
    assert label["compat"] == "babylm2025" and label["eval_set"] == eval_set and label["temperature"] in (1.0, 2.0)
    assert set(entry["tasks"]["ewok"]["temperature_sweep"]) == {"1", "2"}
    write_outputs(results, tmp_path / "r.json", None, tmp_path / "results", revision="chck_1M")
    base = tmp_path / "results" / models["babyllama"].name / "chck_1M" / "zero_shot"
    blimp = json.loads((base / "mntp" / "blimp" / datasets["blimp"] / "predictions.json").read_text())
    assert len(blimp) == 67 and [p["id"] for p in blimp["adjunct_island"]["predictions"]] == ["adjunct_island_0", "adjunct_island_1"]
    wug = json.loads((base / "causal" / "wug_adj" / "wug_adj_nominalization" / "predictions.json").read_text())
    assert {"id", "pred", "prob"} == set(wug["wug_adj"]["predictions"][0])
    ewok = json.loads((base / "causal" / "ewok" / datasets["ewok"] / "predictions.json").read_text())
    assert next(iter(ewok.values()))["predictions"][0]["pred"].startswith(" ")  # the 2025 completion keeps its space
    report = (base / "causal" / "blimp" / datasets["blimp_supplement"] / "best_temperature_report.txt").read_text()
    assert report.startswith("TEMPERATURE: ") and "### AVERAGE ACCURACY" in report
    # As run.py writes them: rho itself for the wug tasks, the file means among entity tracking's UIDs.
    rho = entry["tasks"]["wug_adj"]["score"] / 100
    wug_report = (base / "mntp" / "wug_adj" / "wug_adj_nominalization" / "best_temperature_report.txt").read_text()
    assert f"### UID SPEARMAN'S RHO\navg: {rho:.2f}\n" in wug_report
    et_report = (base / "mntp" / "entity_tracking" / datasets["entity_tracking"] / "best_temperature_report.txt").read_text()
    assert "\nregular: " in et_report


@needs_data
def test_2025_real_data_counts():
    full = {t: load_task(SHARED_DATA, t) for t in ("entity_tracking", "wug_adj", "wug_past")}
    assert sum(len(v) for v in full["entity_tracking"].values()) == 9483
    assert len(full["entity_tracking"]["regular_5_ops"]) == 159 and len(full["wug_past"]["wug_past"]) == 50
    assert len(full["wug_adj"]["wug_adj"][0].options) == 2 and len(full["wug_past"]["wug_past"][0].options) == 3
    fast = {t: load_task(SHARED_DATA, t, eval_set="fast") for t in ("blimp", "blimp_supplement", "ewok")}
    assert sum(map(len, fast["blimp"].values())) == 13400 and sum(map(len, fast["blimp_supplement"].values())) == 250
    assert sum(map(len, fast["ewok"].values())) == 1100
    with pytest.raises(UserError, match="no fast evaluation set"):
        locate(SHARED_DATA, "comps", "fast")


def test_2025_layout_and_comps_format(models, tmp_path):
    root = tmp_path / "evaluation_data"
    comps = root / "full_eval" / "comps"
    comps.mkdir(parents=True)
    (root / "fast_eval" / "blimp_fast").mkdir(parents=True)
    row = {"prefix_acceptable": "the dog", "prefix_unacceptable": "the tree", "property_phrase": "can run ."}
    for stem in ("comps_base", "comps_wugs", "comps_wugs_dist-before", "comps_wugs_dist-in-between"):
        (comps / f"{stem}.jsonl").write_text(json.dumps(row) + "\n")
    assert detect_layout(tmp_path) == "babylm2025" and detect_layout(root / "fast_eval") == "babylm2025"
    assert locate(root / "fast_eval", "comps").path == comps  # --data may name either set's folder
    results = run_eval(models["ltgbert"], tmp_path, EvalOptions(tasks=["comps"], compat="babylm2025", backend="mlm"),
                       log=lambda m: None)
    entry = results["results"]["mlm"]["tasks"]["comps"]
    assert set(entry["subtasks"]) == {"base", "wugs", "wugs_dist_before", "wugs_dist_in_between"}
    assert results["submission"]["mlm"]["comps"]["base"]["predictions"][0]["pred"] in ("the dog can run .", "the tree can run .")


def test_temperature_option_and_overlong_refusal(models):
    from antlm.cli import parse_temperatures

    temps = parse_temperatures("1:2")
    assert temps[0] == 1.0 and temps[-1] == 2.0 and len(temps) == 21
    assert parse_temperatures("0.5") == [0.5]
    with pytest.raises(UserError):
        parse_temperatures("2:1")
    with pytest.raises(UserError, match="temperature 1 only"):
        runner.check_options(EvalOptions(tasks=["blimp"], temperatures=[1.0, 2.0]), runner.pipelines.get("babylm2024"))
    model, tokenizer = load_model(models["ltgbert"])
    long_item = Item("blimp_x_0", "", ("the dog runs . " * 200, "the dog ."))
    with pytest.raises(UserError, match=r"item blimp_x_0 \(option 1\) needs .*--overlong skip"):
        runner.score_items(model, tokenizer, [long_item], "mlm", EvalOptions(tasks=["blimp"], compat="babylm2025", backend="mlm"))
