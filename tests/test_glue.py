"""GLUE fine-tuning on a toy task (label 1 iff sentence2 contains "good") with tiny random-init
models, in both data layouts; metric, early-stopping and input-validation unit tests; and a
load-only check of the real shared GLUE files."""
import json
import random

import pytest
import torch

from antlm.config import ModelConfig, RunConfig
from antlm.data.tokenizer import train_tokenizer
from antlm.errors import UserError
from antlm.eval import glue
from antlm.eval.glue import GlueSettings, run_glue
from antlm.model_io import save_final
from antlm.models import build_model
from conftest import SHARED_DATA, WORDS

torch.set_num_threads(2)
QUIET = lambda message: None  # noqa: E731
FAST = dict(lr=3e-3, batch_size=8, max_epochs=3, patience=3, warmup_fraction=0.1, classifier_dropout=0.0)


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


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny random-init models (one per backbone) saved in the final/ layout."""
    root = tmp_path_factory.mktemp("glue-models")
    tokenizer = train_tokenizer([f"{r['sentence1']} {r['sentence2']}" for r in toy_rows(500, 9)], 300)
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
    nli = lambda rows: [{"premise": r["sentence1"], "hypothesis": r["sentence2"], "label": r["label"] * 2}
                        for r in rows]  # noqa: E731
    write_jsonl(root / "glue_filtered" / "mnli.train.jsonl", nli(toy_rows(256, 5)))
    write_jsonl(root / "glue_filtered" / "mnli.valid.jsonl", nli(toy_rows(48, 6)))
    write_jsonl(root / "glue_filtered" / "mnli-mm.valid.jsonl", nli(toy_rows(40, 7)))
    return root


def test_metrics():
    assert glue.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 50.0
    # tp=2, fp=1, fn=1 -> precision 2/3, recall 2/3, F1 2/3.
    assert glue.binary_f1([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(200 / 3)
    assert glue.binary_f1([0, 0], [1, 0]) == 0.0 and glue.binary_f1([0, 0], [0, 0]) == 0.0
    assert glue.binary_f1([1, 0, 1], [1, 0, 1]) == 100.0


def test_early_stopping_keeps_first_best_and_stops_after_patience():
    stopper = glue.EarlyStopping(patience=2)
    seen = []
    for epoch, score in enumerate([50, 60, 60, 55, 70, 65, 64], start=1):
        stopper.update(score, epoch)
        seen.append(epoch)
        if stopper.should_stop:
            break
    assert seen == [1, 2, 3, 4] and stopper.best_epoch == 2 and stopper.best == 60


def test_truncation_trims_longest_segment_first():
    a, b = glue.truncate_pair(list(range(10)), list(range(3)), 8)
    assert (len(a), len(b)) == (5, 3) and a == [0, 1, 2, 3, 4]
    a, b = glue.truncate_pair(list(range(6)), list(range(6)), 7)
    assert (len(a), len(b)) == (4, 3)


@pytest.mark.parametrize("backbone,backend", [("babyllama", "causal"), ("ltgbert", "mlm"), ("babyllama", "mlm")])
def test_learns_toy_task_shared_layout(models, shared_layout, backbone, backend):
    results = run_glue(models[backbone], shared_layout, ["rte", "boolq"], backend, GlueSettings(**FAST), log=QUIET)
    entry = results["rte"]
    assert entry["status"] == "ok" and entry["metric"] == "accuracy" and entry["accuracy"] > 85, entry["history"]
    assert entry["train_examples"] == 160 and entry["eval_examples"] == 64 and entry["max_length"] == 64
    assert 1 <= entry["best_epoch"] <= entry["epochs_run"] <= 3
    assert entry["score"] == max(h["accuracy"] for h in entry["history"])
    assert entry["settings"]["lr"] == 3e-3 and "seed" not in entry["settings"]
    # Predictions are from the best epoch, in validation-file order, and reproduce the score.
    labels = [r["label"] for r in toy_rows(64, 2)]
    assert [p["id"] for p in entry["predictions"]] == [f"rte_{i}" for i in range(64)]
    assert glue.accuracy([p["pred"] for p in entry["predictions"]], labels) == entry["score"]
    assert results["boolq"] == {"status": "not_run", "reason": "no training data (train split absent in "
                                f"{shared_layout / 'glue' / 'boolq' / 'train.jsonl'})"}


def test_official_layout_f1_mnli_mismatched_and_limits(models, official_layout):
    settings = GlueSettings(**{**FAST, "max_epochs": 2, "train_limit": 96, "eval_limit": 32})
    results = run_glue(models["babyllama"], official_layout, ["mrpc", "mnli"], "causal", settings, log=QUIET)
    mrpc, mnli = results["mrpc"], results["mnli"]
    assert mrpc["metric"] == "f1" and mrpc["score"] == mrpc["f1"]
    labels = [r["label"] for r in toy_rows(64, 4)][:32]
    preds = [p["pred"] for p in mrpc["predictions"]]
    assert mrpc["f1"] == glue.binary_f1(preds, labels) and mrpc["accuracy"] == glue.accuracy(preds, labels)
    assert mrpc["train_examples"] == 96 and mrpc["eval_examples"] == 32 and mrpc["epochs_run"] == 2
    assert {"train_limit": 96, "eval_limit": 32, "max_epochs": 2}.items() <= mrpc["settings"].items()
    assert mnli["metric"] == "accuracy" and mnli["eval_examples"] == 32 and mnli["eval_examples_mismatched"] == 32
    assert [p["id"] for p in mnli["predictions_mismatched"]] == [f"mnli-mm_{i}" for i in range(32)]
    assert 0 <= mnli["score_mismatched"] <= 100 and {p["pred"] for p in mnli["predictions"]} <= {0, 1, 2}


def test_gradient_accumulation_matches_full_batch(models, shared_layout):
    base = {**FAST, "max_epochs": 2, "train_limit": 32, "eval_limit": 8}
    full, accum = (run_glue(models["babyllama"], shared_layout, ["rte"], "causal", GlueSettings(**settings),
                            log=QUIET)["rte"] for settings in (base, {**base, "micro_batch_size": 5}))
    assert [h["train_loss"] for h in full["history"]] == pytest.approx([h["train_loss"] for h in accum["history"]],
                                                                        abs=1e-5)


def test_patience_stops_when_nothing_improves(models, shared_layout):
    # lr=0 leaves the weights unchanged, so every epoch scores the same: epoch 1 stays best and the
    # run stops after `patience` more epochs.
    settings = GlueSettings(**{**FAST, "lr": 0.0, "patience": 2, "max_epochs": 10, "train_limit": 32})
    entry = run_glue(models["ltgbert"], shared_layout, ["rte"], "mlm", settings, log=QUIET)["rte"]
    assert entry["best_epoch"] == 1 and entry["epochs_run"] == 3
    assert len({h["accuracy"] for h in entry["history"]}) == 1


def test_bad_inputs_are_user_errors(models, shared_layout, tmp_path):
    with pytest.raises(UserError, match="unknown GLUE task.*known: boolq, mnli"):
        run_glue(models["babyllama"], shared_layout, ["cola"], "causal", GlueSettings(), log=QUIET)
    with pytest.raises(UserError, match="backend"):
        run_glue(models["babyllama"], shared_layout, ["rte"], "seq2seq", GlueSettings(), log=QUIET)
    with pytest.raises(UserError, match=r"validation file for wsc not found: .*glue/wsc/validation.jsonl"):
        run_glue(models["babyllama"], shared_layout, ["wsc"], "causal", GlueSettings(), log=QUIET)
    with pytest.raises(UserError, match="no GLUE data"):
        run_glue(models["babyllama"], tmp_path / "nowhere", ["rte"], "causal", GlueSettings(), log=QUIET)
    valid = shared_layout / "glue" / "rte" / "validation.jsonl"
    lines = valid.read_text().splitlines()
    valid.write_text("\n".join(lines[:2] + ['{"sentence1": "a", "sentence2": "b", "label": 2}'] + lines[2:]) + "\n")
    with pytest.raises(UserError, match=r"validation.jsonl:3: label 2 is not one of \[0, 1\]"):
        run_glue(models["babyllama"], shared_layout, ["rte"], "causal", GlueSettings(), log=QUIET)
    valid.write_text("\n".join(lines[:4] + ['{"sentence1": "a", "sentence2": '] + lines[4:]) + "\n")
    with pytest.raises(UserError, match=r"validation.jsonl:5: malformed JSON"):
        glue.load_task_data(shared_layout, "rte")
    valid.write_text(json.dumps({"sentence1": "a", "label": 0}) + "\n")
    with pytest.raises(UserError, match=r"validation.jsonl:1: missing field 'sentence2'"):
        glue.load_task_data(shared_layout, "rte")


REAL_COUNTS = {"boolq": (None, 1635), "mnli": (10000, 4908), "mrpc": (3668, 204), "multirc": (None, 2424),
               "qqp": (10000, 20215), "rte": (2490, 139), "wsc": (554, 52)}


@pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(),
                    reason=f"real GLUE data not found at {SHARED_DATA}/glue (set ANTLM_SHARED_DATA)")
def test_real_shared_glue_files_load_and_validate():
    for task, (train, valid) in REAL_COUNTS.items():
        data = glue.load_task_data(SHARED_DATA, task)
        assert (None if data.train is None else len(data.train), len(data.validation)) == (train, valid), task
        assert all(0 <= e.label < glue.NUM_LABELS[task] for e in data.validation)
    assert len(glue.load_task_data(SHARED_DATA, "mnli").validation_mismatched) == 4916
