"""GLUE fine-tuning: metrics against hand-computed values, HF-style early stopping, each recipe's
selection rule (directly, and in tiny end-to-end runs), input templates, special tokens and
truncation against the `tokenizers` library, the 2024 task set with tasks that cannot run, and
input validation. Models are tiny random-init ones on a toy task (label 1 iff the second segment
contains "good")."""
import json
import random

import pytest
import torch

from antlm.config import ModelConfig, RunConfig
from antlm.data.tokenizer import train_tokenizer
from antlm.errors import UserError
from antlm.eval import glue, glue_metrics, glue_recipes
from antlm.eval.glue import GlueSettings, run_glue
from antlm.eval.glue_metrics import EarlyStopping, metric_fractions, select_epoch
from antlm.eval.glue_recipes import GLUE_2024, GLUE_2025, GLUE_CLEAN, HeadSpec, glue_summary
from antlm.eval.submission2025 import glue_files_2025, glue_predictions_2025
from antlm.model_io import load_model, save_final
from antlm.models import build_model
from conftest import SHARED_DATA, WORDS

torch.set_num_threads(1)
QUIET = lambda message: None  # noqa: E731
FAST = dict(lr=3e-3, batch_size=8, max_epochs=3, patience=3)
# The clean recipe as before, made quick to learn: a little warmup, no classifier dropout.
FAST_CLEAN = GLUE_CLEAN.replace(warmup_fraction=0.1, head={"causal": HeadSpec("norm_linear", "last", dropout=0.0),
                                                           "mlm": HeadSpec("norm_linear", "first", dropout=0.0)})


def toy_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        second = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
        label = int(rng.random() < 0.5)
        if label:
            second.insert(rng.randrange(len(second) + 1), "good")
        first = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
        rows.append({"sentence1": first, "sentence2": " ".join(second), "label": label, "idx": i})
    return rows


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def nli(rows):
    return [{"premise": r["sentence1"], "hypothesis": r["sentence2"], "label": r["label"] * 2} for r in rows]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([f"{r['sentence1']} {r['sentence2']}" for r in toy_rows(500, 9)], 300)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer):
    """Tiny random-init models (one per backbone) saved in the final/ layout."""
    root = tmp_path_factory.mktemp("glue-models")
    paths = {}
    for backbone in ("babyllama", "ltgbert"):
        torch.manual_seed(0)
        cfg = RunConfig(model=ModelConfig(backbone=backbone, hidden_size=32, num_layers=2, num_heads=4,
                                          ffn_size=64, max_seq_len=64, vocab_size=tokenizer.get_vocab_size()))
        save_final(root / backbone, build_model(cfg.model), cfg, tokenizer)
        paths[backbone] = root / backbone
    return paths


@pytest.fixture
def shared_layout(tmp_path):
    root = tmp_path / "shared"
    write_jsonl(root / "glue" / "rte" / "train.jsonl", toy_rows(160, 1))
    write_jsonl(root / "glue" / "rte" / "validation.jsonl", toy_rows(64, 2))
    # boolq has only validation, as in the real shared data.
    write_jsonl(root / "glue" / "boolq" / "validation.jsonl",
                [{"question": "q", "passage": "p", "label": 1, "idx": 0}])
    return root


@pytest.fixture
def official_layout(tmp_path):
    root = tmp_path / "official"
    write_jsonl(root / "glue_filtered" / "mrpc.train.jsonl", toy_rows(256, 3))
    write_jsonl(root / "glue_filtered" / "mrpc.valid.jsonl", toy_rows(64, 4))
    write_jsonl(root / "glue_filtered" / "mnli.train.jsonl", nli(toy_rows(256, 5)))
    write_jsonl(root / "glue_filtered" / "mnli.valid.jsonl", nli(toy_rows(48, 6)))
    write_jsonl(root / "glue_filtered" / "mnli-mm.valid.jsonl", nli(toy_rows(40, 7)))
    return root


# ----------------------------------------------------------------------------- metrics, stopping
def test_metrics_against_hand_computed_values():
    assert glue_metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 50.0
    # tp=2, fp=1, fn=1, tn=1: F1 = 4/6; MCC = (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6.
    preds, labels = [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]
    assert glue_metrics.binary_f1(preds, labels) == pytest.approx(200 / 3)
    assert glue_metrics.matthews(preds, labels) == pytest.approx(100 / 6)
    assert glue_metrics.binary_f1([0, 0], [1, 0]) == 0.0 and glue_metrics.binary_f1([0, 0], [0, 0]) == 0.0
    assert glue_metrics.binary_f1([1, 0, 1], [1, 0, 1]) == 100.0
    assert glue_metrics.matthews([1, 0, 1], [1, 0, 1]) == 100.0 and glue_metrics.matthews([0, 1, 0], [1, 0, 1]) == -100.0
    assert glue_metrics.matthews([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0  # constant predictions: undefined, 0 as sklearn
    # Three classes (Gorodkin): n=4, correct 2, pred counts (2,1,1), true (1,2,1): (8-5)/sqrt(10*10).
    assert glue_metrics.matthews([0, 1, 2, 0], [0, 1, 1, 2]) == pytest.approx(30.0)
    assert set(metric_fractions([0, 1], [0, 1], 2)) == {"accuracy", "f1", "mcc"}
    assert set(metric_fractions([0, 2], [0, 1], 3)) == {"accuracy"}


def test_early_stopping_keeps_first_best_and_stops_after_patience():
    stopper = EarlyStopping(patience=2)
    seen = []
    for epoch, score in enumerate([50, 60, 60, 55, 70, 65, 64], start=1):
        stopper.update(score, epoch)
        seen.append(epoch)
        if stopper.should_stop:
            break
    assert seen == [1, 2, 3, 4] and stopper.best_epoch == 2 and stopper.best == 60


def test_early_stopping_threshold_as_hf_callback():
    epochs = lambda values: [{"accuracy": v} for v in values]  # noqa: E731
    # Gains of 0.0005 each: every epoch is the new best, but none resets patience (HF compares with
    # the best so far, which creeps up), so the run stops at epoch 4 and never sees the 0.83.
    creeping = epochs([0.80, 0.8005, 0.8010, 0.8015, 0.83])
    assert select_epoch(creeping, "accuracy", patience=3, threshold=0.001) == (4, 4)
    assert select_epoch(creeping, "accuracy", patience=3, threshold=0.0) == (5, 5)
    # A gain above the threshold resets patience; one below it does not (but is still kept as best).
    assert select_epoch(epochs([0.80, 0.70, 0.70, 0.8011, 0.70, 0.70, 0.9]), "accuracy", 3, 0.001) == (7, 7)
    assert select_epoch(epochs([0.80, 0.70, 0.70, 0.8009, 0.9]), "accuracy", 3, 0.001) == (4, 4)
    assert select_epoch(epochs([0.5] * 12), "accuracy", patience=None) == (1, 12)  # 2025: no stopping


def test_selection_rule_2024_f1_2025_accuracy():
    # Per-epoch predictions on 10 validation rows with two positives: epoch 1 says 0 everywhere
    # (accuracy 0.8, F1 0), epoch 2 says 1 everywhere (accuracy 0.2, F1 1/3).
    labels = [1, 1] + [0] * 8
    history = [metric_fractions(preds, labels, 2) for preds in ([0] * 10, [1] * 10, [0] * 9 + [1])]

    def best(recipe, task):
        hyper = recipe.hyper_for(task)
        return select_epoch(history, recipe.selection[task], hyper.patience, recipe.early_stopping_threshold)[0]
    # 2024: F1 for every two-label task, CoLA included; accuracy for MNLI only.
    assert {t: best(GLUE_2024, t) for t in ("rte", "boolq", "wsc", "cola", "mrpc")} == dict.fromkeys(
        ("rte", "boolq", "wsc", "cola", "mrpc"), 2)
    assert GLUE_2024.selection["mnli"] == "accuracy"
    # 2025: accuracy except MRPC and QQP.
    assert {t: best(GLUE_2025, t) for t in ("rte", "boolq", "wsc", "mrpc", "qqp")} == {
        "rte": 1, "boolq": 1, "wsc": 1, "mrpc": 2, "qqp": 2}


def test_recipe_facts():
    assert len(GLUE_2024.tasks) == 11 and "mnli-mm" in GLUE_2024.tasks
    assert GLUE_2024.reported["cola"] == "mcc" and GLUE_2024.reported["mrpc"] == GLUE_2024.reported["qqp"] == "f1"
    assert {GLUE_2024.reported[t] for t in GLUE_2024.tasks if t not in ("cola", "mrpc", "qqp")} == {"accuracy"}
    assert {(h.lr, h.batch_size, h.max_epochs, h.patience) for h in GLUE_2024.hyper.values()} == {(5e-5, 64, 10, 3)}
    assert (GLUE_2024.seed, GLUE_2024.max_length, GLUE_2024.early_stopping_threshold) == (12, 128, 0.001)
    assert (GLUE_2024.weight_decay, GLUE_2024.warmup_fraction, GLUE_2024.max_grad_norm) == (0.0, 0.0, 1.0)
    assert GLUE_2025.tasks == ("boolq", "mnli", "mrpc", "multirc", "qqp", "rte", "wsc")
    assert {t: (GLUE_2025.hyper[t].batch_size, GLUE_2025.hyper[t].max_epochs) for t in ("boolq", "multirc", "wsc", "rte")} \
        == {"boolq": (16, 10), "multirc": (16, 10), "wsc": (32, 30), "rte": (32, 10)}
    assert {h.lr for h in GLUE_2025.hyper.values()} == {3e-5} and GLUE_2025.seed == 42
    assert set(GLUE_2025.reported.values()) == {"accuracy"} and GLUE_2025.drop_last
    # 2024: linear to 0 without warmup; 2025: 6% warmup (floor), cosine to 0.1.
    assert glue.lr_factor(GLUE_2024, 0, 100) == 1.0 and glue.lr_factor(GLUE_2024, 100, 100) == 0.0
    assert [glue.lr_factor(GLUE_2025, s, 100) for s in (0, 3, 6)] == [0.0, 0.5, 1.0]
    assert glue.lr_factor(GLUE_2025, 100, 100) == pytest.approx(0.1)
    assert glue.lr_factor(GLUE_2025, 53, 100) == pytest.approx(0.55)


# --------------------------------------------------------------------------- inputs and tokens
def test_templates_give_the_pipelines_strings():
    multirc = {"paragraph": "P.", "question": "Who?", "answer": "Me."}
    wsc = {"text": "Mark lied. He was wrong.", "span1_text": "Mark", "span2_text": "He"}
    for recipe in (GLUE_2024, GLUE_2025):
        assert recipe.templates["multirc"](multirc) == ("Question: Who? Answer: Me.", "P.")
        assert recipe.templates["wsc"](wsc) == ('Does "He" refer to "Mark" in this passage?', "Mark lied. He was wrong.")
        assert recipe.templates["cola"]({"sentence": "S."}) == ("S.", None)
        assert recipe.templates["boolq"]({"question": "Q", "passage": "P"}) == ("Q", "P")
        assert recipe.templates["qnli"]({"question": "Q", "sentence": "S"}) == ("Q", "S")
    assert GLUE_CLEAN.templates["multirc"](multirc) == ("P.", "Who? Me.")
    assert GLUE_CLEAN.templates["wsc"](wsc) == ("Mark lied. He was wrong.", "He refers to Mark")


@pytest.mark.parametrize("specials", [glue_recipes.LLAMA_EXPORT, glue_recipes.LTGBERT_EXPORT])
def test_encoding_equals_tokenizers_truncation_and_template(tokenizer, specials):
    """The 2024/2025 inputs are what a fast tokenizer gives for `tokenizer(a, b, truncation=True,
    max_length=L)`: checked against the Rust library itself for many length pairs."""
    from tokenizers import Tokenizer, processors

    reference = Tokenizer.from_str(tokenizer.to_str())
    ids = {t: tokenizer.token_to_id(t) for t in ("<s>", "</s>")}
    reference.post_processor = processors.TemplateProcessing(
        single=" ".join(specials.single), pair=" ".join(specials.pair), special_tokens=list(ids.items()))
    words = lambda n, seed: " ".join(random.Random(seed).choice(WORDS) for _ in range(n))  # noqa: E731
    rows = [glue.Row({"sentence1": words(n1, n1), "sentence2": words(n2, 100 + n2)}, 0)
            for n1 in (1, 3, 7, 12) for n2 in (1, 4, 9, 15)]
    single = [glue.Row({"sentence": words(n, n)}, 0) for n in (2, 9, 20)]
    for max_length in (8, 11, 16, 64):
        reference.enable_truncation(max_length=max_length, strategy="longest_first")
        ours = glue.encode(tokenizer, rows, GLUE_2024.templates["rte"], specials, GLUE_2024.truncate, max_length)
        theirs = [reference.encode(r.fields["sentence1"], r.fields["sentence2"]).ids for r in rows]
        assert ours == theirs, max_length
        ours = glue.encode(tokenizer, single, GLUE_2024.templates["cola"], specials, GLUE_2024.truncate, max_length)
        assert ours == [reference.encode(r.fields["sentence"]).ids for r in single]


def test_special_templates_match_the_hf_exports(models, tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from antlm.export.hf import export_hf

    for backbone, specials in (("babyllama", glue_recipes.LLAMA_EXPORT), ("ltgbert", glue_recipes.LTGBERT_EXPORT)):
        hf = AutoTokenizer.from_pretrained(str(export_hf(models[backbone], tmp_path / backbone)),
                                           trust_remote_code=True)
        ours = glue.encode(load_model(models[backbone])[1], [glue.Row({"sentence1": "the big dog runs quickly", "sentence2": "a cat sees trees"}, 0)],
                           GLUE_2024.templates["rte"], specials, GLUE_2024.truncate, 9)
        assert ours == [hf("the big dog runs quickly", "a cat sees trees", truncation=True, max_length=9).input_ids]


def test_truncation_rules():
    a, b = glue_recipes.truncate_longest_first_pop(list(range(10)), list(range(3)), 8)
    assert (len(a), len(b)) == (5, 3) and a == [0, 1, 2, 3, 4]
    assert tuple(map(len, glue_recipes.truncate_longest_first_pop(list(range(6)), list(range(6)), 7))) == (4, 3)
    hf = glue_recipes.truncate_longest_first_hf
    assert tuple(map(len, hf(list(range(6)), list(range(6)), 7))) == (3, 4)
    assert tuple(map(len, hf(list(range(9)), list(range(6)), 7))) == (4, 3)
    assert tuple(map(len, hf(list(range(2)), list(range(20)), 7))) == (2, 5)


# ------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("backbone,backend", [("babyllama", "causal"), ("ltgbert", "mlm"), ("babyllama", "mlm")])
def test_learns_toy_task_shared_layout(models, shared_layout, backbone, backend):
    results = run_glue(models[backbone], shared_layout, ["rte", "boolq"], backend, FAST_CLEAN, FAST, log=QUIET)
    entry = results["rte"]
    assert entry["status"] == "ok" and entry["metric"] == "accuracy" and entry["accuracy"] > 85, entry["history"]
    assert entry["recipe"] == "clean" and entry["backend"] == backend
    assert entry["train_examples"] == 160 and entry["eval_examples"] == 64 and entry["max_length"] == 64
    assert 1 <= entry["best_epoch"] <= entry["epochs_run"] <= 3
    assert entry["score"] == max(h["accuracy"] for h in entry["history"])
    assert entry["settings"]["lr"] == 3e-3 and entry["settings"]["seed"] == 12
    assert entry["overrides"] == {"lr": 3e-3, "batch_size": 8, "max_epochs": 3, "patience": 3}
    # Predictions are from the best epoch, in validation-file order, and reproduce the score.
    labels = [r["label"] for r in toy_rows(64, 2)]
    assert [p["id"] for p in entry["predictions"]] == [f"rte_{i}" for i in range(64)]
    assert glue_metrics.accuracy([p["pred"] for p in entry["predictions"]], labels) == entry["score"]
    assert results["boolq"] == {"status": "not_run", "reason": "no training data (train split absent in "
                                f"{shared_layout / 'glue' / 'boolq' / 'train.jsonl'})"}


def test_2024_end_to_end_selection_mnli_mm_and_limits(models, official_layout):
    """2024 mode: MRPC's best epoch is the first strictly best F1 under the 0.001 rule, its score is
    F1 at that epoch; MNLI is picked by accuracy and MNLI-mm scored with the MNLI model."""
    overrides = {**FAST, "lr": 1e-3, "max_epochs": 4, "train_limit": 96, "eval_limit": 32}
    results = run_glue(models["babyllama"], official_layout, ["mrpc", "mnli", "mnli-mm"], "causal", GLUE_2024,
                       overrides, log=QUIET)
    mrpc, mnli, mm = results["mrpc"], results["mnli"], results["mnli-mm"]
    fractions = [{k: h[k] / 100 for k in ("accuracy", "f1")} for h in mrpc["history"]]
    assert (mrpc["best_epoch"], mrpc["epochs_run"]) == select_epoch(fractions, "f1", 3, 0.001, max_epochs=4)
    assert mrpc["metric"] == mrpc["selection_metric"] == "f1" and mrpc["recipe"] == "babylm2024"
    assert mrpc["score"] == mrpc["history"][mrpc["best_epoch"] - 1]["f1"]
    labels = [r["label"] for r in toy_rows(64, 4)][:32]
    preds = [p["pred"] for p in mrpc["predictions"]]
    assert mrpc["f1"] == glue_metrics.binary_f1(preds, labels) and mrpc["mcc"] == glue_metrics.matthews(preds, labels)
    assert mrpc["train_examples"] == 96 and mrpc["eval_examples"] == 32
    assert {"train_limit": 96, "eval_limit": 32, "max_epochs": 4}.items() <= mrpc["overrides"].items()
    assert mrpc["steps_per_epoch"] == 12  # the last partial batch is kept (96 / 8)
    assert mnli["selection_metric"] == "accuracy" and mnli["eval_examples"] == 32
    assert mm["status"] == "ok" and mm["trained_on"] == "mnli" and mm["best_epoch"] == mnli["best_epoch"]
    assert [p["id"] for p in mm["predictions"]] == [f"mnli-mm_{i}" for i in range(32)] and mm["metric"] == "accuracy"
    assert mm["score"] == glue_metrics.accuracy([p["pred"] for p in mm["predictions"]],
                                        [r["label"] * 2 for r in toy_rows(40, 7)][:32])


def test_2025_end_to_end_runs_every_epoch_drops_last_batch(models, official_layout):
    overrides = {"lr": 1e-3, "batch_size": 10, "max_epochs": 3, "train_limit": 95, "eval_limit": 24}
    entry = run_glue(models["ltgbert"], official_layout, ["mrpc"], "mlm", GLUE_2025, overrides, log=QUIET)["mrpc"]
    assert entry["epochs_run"] == 3 and entry["steps_per_epoch"] == 9  # 95 // 10: drop_last
    assert entry["selection_metric"] == "f1" and entry["metric"] == "accuracy"
    f1s = [h["f1"] for h in entry["history"]]
    assert entry["best_epoch"] == f1s.index(max(f1s)) + 1
    assert entry["score"] == entry["history"][entry["best_epoch"] - 1]["accuracy"]
    content = glue_predictions_2025("mrpc", entry)
    assert list(content) == ["mrpc"] and content["mrpc"]["predictions"][:2] == [
        {"id": "mrpc_0", "pred": entry["predictions"][0]["pred"]}, {"id": "mrpc_1", "pred": entry["predictions"][1]["pred"]}]
    files = glue_files_2025({"mrpc": entry})
    assert set(files) == {"finetune/mrpc/predictions.json", "finetune/mrpc/results.txt"}
    assert files["finetune/mrpc/results.txt"].splitlines()[0] == f"accuracy: {entry['fractions']['accuracy']}"


def test_2025_first_token_of_a_causal_model_is_constant_and_pooling_last_reads(models, official_layout):
    """The 2025 recipe pools the first token; under the causal mask it has seen only itself, so every
    example gets one prediction, and the entry says so. pooling=last (the reference's --take_final)
    reads the whole input and learns the toy task."""
    overrides = {"lr": 3e-3, "batch_size": 8, "max_epochs": 3, "train_limit": 256, "eval_limit": 64}
    first = run_glue(models["babyllama"], official_layout, ["mrpc"], "causal", GLUE_2025, overrides, log=QUIET)["mrpc"]
    assert first["pooling"] == "first" and len({p["pred"] for p in first["predictions"]}) == 1
    assert first["note"].startswith("every validation prediction is class")
    last = run_glue(models["babyllama"], official_layout, ["mrpc"], "causal", GLUE_2025,
                    {**overrides, "pooling": "last"}, log=QUIET)["mrpc"]
    assert last["pooling"] == "last" and last["overrides"]["pooling"] == "last" and "note" not in last
    assert last["accuracy"] > 80, last["history"]
    with pytest.raises(UserError, match="pooling must be first or last"):
        run_glue(models["babyllama"], official_layout, ["mrpc"], "causal", GLUE_2025, {"pooling": "mean"}, log=QUIET)


def test_2024_default_tasks_name_what_cannot_run(models, tmp_path):
    """The 2024 task set on a data dir like the shared one: tasks without train data are not run
    (with the reason), and no score claims to be the 2024 GLUE."""
    root = tmp_path / "data"
    for task in ("boolq", "multirc", "qnli", "sst2", "qqp", "mrpc", "wsc"):  # validation only
        row = {"boolq": {"question": "q", "passage": "p"}, "multirc": {"paragraph": "p", "question": "q", "answer": "a"},
               "qnli": {"question": "q", "sentence": "s"}, "sst2": {"sentence": "s"},
               "qqp": {"question1": "a", "question2": "b"}, "mrpc": {"sentence1": "a", "sentence2": "b"},
               "wsc": {"text": "t", "span1_text": "a", "span2_text": "b"}}[task]
        write_jsonl(root / "glue" / task / "validation.jsonl", [{**row, "label": 0}])
    write_jsonl(root / "glue" / "rte" / "train.jsonl", toy_rows(16, 1))
    write_jsonl(root / "glue" / "rte" / "validation.jsonl", toy_rows(8, 2))
    write_jsonl(root / "glue" / "cola" / "train.jsonl", [{"sentence": r["sentence2"], "label": r["label"]} for r in toy_rows(16, 3)])
    write_jsonl(root / "glue" / "cola" / "validation.jsonl", [{"sentence": r["sentence2"], "label": r["label"]} for r in toy_rows(8, 4)])
    write_jsonl(root / "glue" / "mnli" / "train.jsonl", nli(toy_rows(16, 5)))
    write_jsonl(root / "glue" / "mnli" / "validation.jsonl", nli(toy_rows(8, 6)))  # no mismatched file
    entries = run_glue(models["babyllama"], root, None, "causal", GLUE_2024, {"max_epochs": 1, "batch_size": 8}, log=QUIET)
    assert list(entries) == list(GLUE_2024.tasks)
    ran = [t for t, e in entries.items() if e["status"] == "ok"]
    assert ran == ["cola", "mnli", "rte"] and entries["cola"]["metric"] == "mcc"
    assert "mismatched" in entries["mnli-mm"]["reason"]
    assert entries["sst2"]["reason"].startswith("no training data")
    summary = glue_summary(GLUE_2024, entries)
    assert summary["score"] is None and not summary["complete"] and summary["tasks_counted"] == ran
    assert set(summary["missing"]) == set(GLUE_2024.tasks) - set(ran)
    assert summary["partial_score"] == pytest.approx(sum(entries[t]["score"] for t in ran) / 3)
    assert "no babylm2024 GLUE score" in summary["note"] and "predictions" not in summary["tasks"]["rte"]
    # clean averages what ran, and says so.
    clean = glue_summary(GLUE_CLEAN, {t: entries[t] for t in ("rte", "boolq")})
    assert clean["score"] == entries["rte"]["score"] and "averaged over the tasks that ran" in clean["note"]


def test_gradient_accumulation_matches_full_batch(models, shared_layout):
    base = {**FAST, "max_epochs": 2, "train_limit": 32, "eval_limit": 8}
    full, accum = (run_glue(models["babyllama"], shared_layout, ["rte"], "causal", FAST_CLEAN, settings,
                            log=QUIET)["rte"] for settings in (base, {**base, "micro_batch_size": 5}))
    assert [h["train_loss"] for h in full["history"]] == pytest.approx([h["train_loss"] for h in accum["history"]],
                                                                        abs=1e-5)


def test_patience_stops_when_nothing_improves(models, shared_layout):
    # lr=0 leaves the weights unchanged, so every epoch scores the same: epoch 1 stays best and the
    # run stops after `patience` more epochs.
    settings = GlueSettings(**{**FAST, "lr": 0.0, "patience": 2, "max_epochs": 10, "train_limit": 32})
    entry = run_glue(models["ltgbert"], shared_layout, ["rte"], "mlm", FAST_CLEAN, settings, log=QUIET)["rte"]
    assert entry["best_epoch"] == 1 and entry["epochs_run"] == 3
    assert len({h["accuracy"] for h in entry["history"]}) == 1


@pytest.mark.parametrize("where", ["glue_filtered", "evaluation_data/glue_filtered", "full_eval/glue_filtered",
                                   "evaluation_data/full_eval/glue_filtered"])
def test_official_layouts_of_both_years(tmp_path, where):
    write_jsonl(tmp_path / where / "rte.valid.jsonl", toy_rows(3, 1))
    assert glue.load_task_data(tmp_path, "rte").validation_path == tmp_path / where / "rte.valid.jsonl"


def test_bad_inputs_are_user_errors(models, shared_layout, tmp_path):
    with pytest.raises(UserError, match="unknown GLUE task.*known: boolq, cola"):
        run_glue(models["babyllama"], shared_layout, ["stsb"], "causal", GLUE_CLEAN, log=QUIET)
    with pytest.raises(UserError, match="backend"):
        run_glue(models["babyllama"], shared_layout, ["rte"], "seq2seq", GLUE_CLEAN, log=QUIET)
    with pytest.raises(UserError, match="unknown GLUE setting.*warmup"):
        run_glue(models["babyllama"], shared_layout, ["rte"], "causal", GLUE_CLEAN, {"warmup": 1}, log=QUIET)
    with pytest.raises(UserError, match=r"validation file for wsc not found: .*glue/wsc/validation.jsonl"):
        run_glue(models["babyllama"], shared_layout, ["wsc"], "causal", GLUE_CLEAN, log=QUIET)
    with pytest.raises(UserError, match="no GLUE data"):
        run_glue(models["babyllama"], tmp_path / "nowhere", ["rte"], "causal", GLUE_CLEAN, log=QUIET)
    valid = shared_layout / "glue" / "rte" / "validation.jsonl"
    lines = valid.read_text().splitlines()
    valid.write_text("\n".join(lines[:2] + ['{"sentence1": "a", "sentence2": "b", "label": 2}'] + lines[2:]) + "\n")
    with pytest.raises(UserError, match=r"validation.jsonl:3: label 2 is not one of \[0, 1\]"):
        run_glue(models["babyllama"], shared_layout, ["rte"], "causal", GLUE_CLEAN, log=QUIET)
    valid.write_text("\n".join(lines[:4] + ['{"sentence1": "a", "sentence2": '] + lines[4:]) + "\n")
    with pytest.raises(UserError, match=r"validation.jsonl:5: malformed JSON"):
        glue.load_task_data(shared_layout, "rte")
    valid.write_text(json.dumps({"sentence1": "a", "label": 0}) + "\n")
    with pytest.raises(UserError, match=r"validation.jsonl:1: missing field 'sentence2'"):
        glue.load_task_data(shared_layout, "rte")


REAL_COUNTS = {"boolq": (None, 1635), "cola": (8551, 522), "mnli": (10000, 4908), "mrpc": (3668, 204),
               "multirc": (None, 2424), "qnli": (None, 2732), "qqp": (10000, 20215), "rte": (2490, 139),
               "sst2": (None, 436), "wsc": (554, 52)}


@pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(),
                    reason=f"real GLUE data not found at {SHARED_DATA}/glue (set ANTLM_SHARED_DATA)")
def test_real_shared_glue_files_load_and_validate():
    for task, (train, valid) in REAL_COUNTS.items():
        data = glue.load_task_data(SHARED_DATA, task)
        assert (None if data.train is None else len(data.train), len(data.validation)) == (train, valid), task
        assert all(0 <= r.label < glue.NUM_LABELS[task] for r in data.validation)
    assert len(glue.load_task_data(SHARED_DATA, "mnli").validation_mismatched) == 4916
