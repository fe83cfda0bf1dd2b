"""Zero-shot evaluation: batched scoring equals a naive reference, both layouts, results files."""
import gzip
import io
import json
import random
import zipfile
from pathlib import Path

import pytest
import torch

from antlm import load_model
from antlm.errors import UserError
from antlm.eval import scoring
from antlm.eval.outputs import format_table, write_outputs
from antlm.eval.runner import EvalOptions, run_eval
from antlm.eval.tasks import detect_layout, load_task, parse_task_list
from conftest import SHARED_DATA, WORDS, train_tiny_run


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("evalmodel"), 3, **{"model.max_seq_len": 64})


def _sentences(n, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) + " ." for _ in range(n)]


def _naive_pll(model, request, mask_id, offset, variant):
    total = 0.0
    full = list(request.prefix + request.target + request.suffix)
    for position, masked in scoring._mask_positions(request, variant):
        ids = torch.tensor([full])
        ids[0, masked] = mask_id
        logits = model(ids, causal=False)[0, position - offset]
        total += torch.log_softmax(logits, -1)[full[position]].item()
    return total


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("variant", ["original", "within_word_l2r"])
def test_batched_pll_equals_naive(tiny_model, offset, variant):
    model, tok = load_model(tiny_model)
    requests = [scoring.encode_masked(tok, "the dog ." if i % 3 == 0 else "", s) for i, s in enumerate(_sentences(6))]
    batched = scoring.pll_scores(model, requests, scoring.mask_id_of(tok), offset, variant, "sum", batch_tokens=64)
    for request, value in zip(requests, batched):
        assert abs(value - _naive_pll(model, request, scoring.mask_id_of(tok), offset, variant)) < 1e-4
    means = scoring.pll_scores(model, requests, scoring.mask_id_of(tok), offset, variant, "mean")
    assert all(abs(m - b / len(r.target)) < 1e-5 for m, b, r in zip(means, batched, requests))


def test_within_word_masks_the_rest_of_the_word(tiny_model):
    _, tok = load_model(tiny_model)
    request = scoring.encode_masked(tok, "", "unbelievably happy")
    plan = scoring._mask_positions(request, "within_word_l2r")
    words = request.target_words
    assert len(set(words)) == 2 and len(request.target) > 2
    first = plan[0][1]
    assert len(first) == words.count(words[0])  # the first piece hides its whole word


def test_batched_causal_equals_naive(tiny_model):
    model, tok = load_model(tiny_model)
    sentences = _sentences(20, seed=1)
    batched = scoring.causal_logprobs(model, tok, sentences, batch_tokens=40)
    for sentence, value in zip(sentences, batched):
        ids = torch.tensor([[1] + tok.encode(sentence).ids])
        lp = torch.log_softmax(model(ids, causal=True)[0, :-1], -1).gather(-1, ids[0, 1:, None]).sum().item()
        assert abs(lp - value) < 1e-4


def _write_official_layout(root: Path, with_glue=False) -> Path:
    data = root / "evaluation_data"
    rng = random.Random(5)
    pairs = lambda n: "\n".join(json.dumps({"sentence_good": g, "sentence_bad": b}) for g, b in  # noqa: E731
                                zip(_sentences(n, rng.random()), _sentences(n, rng.random())))
    (data / "blimp_filtered").mkdir(parents=True)
    for i in range(67):
        (data / "blimp_filtered" / f"p{i:02d}.jsonl").write_text(pairs(3))
    (data / "supplement_filtered").mkdir()
    for i in range(5):
        (data / "supplement_filtered" / f"s{i}.jsonl").write_text(pairs(4))
    (data / "ewok_filtered").mkdir()
    for i in range(11):
        rows = [{"Context1": "the cat sees .", "Target1": t1, "Target2": t2} for t1, t2 in zip(_sentences(2, i), _sentences(2, i + 50))]
        (data / "ewok_filtered" / f"d{i}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return root


def test_official_layout_hybrid_run(tiny_model, tmp_path):
    root = _write_official_layout(tmp_path)
    assert detect_layout(root) == "babylm2024"
    options = EvalOptions(tasks=["blimp", "blimp_supplement", "ewok"], backend="hybrid")
    results = run_eval(tiny_model, root, options, log=lambda m: None)
    for backend, reduction in (("causal", "sum"), ("mlm", "mean")):
        entry = results["results"][backend]
        assert entry["reduction"] == reduction and set(entry["tasks"]) == {"blimp", "blimp_supplement", "ewok"}
        assert len(entry["tasks"]["blimp"]["subtasks"]) == 67 and entry["macro"] is None and entry["missing"] == ["glue"]
        blimp = entry["tasks"]["blimp"]
        assert abs(blimp["score"] - sum(blimp["subtasks"].values()) / 67) < 1e-9
    assert results["compat"] == "babylm2024" and results["complete"]
    ewok = results["submission"]["causal"]["ewok"]["d0"]["predictions"]
    assert len(ewok) == 2 and {"id", "pred"} == set(ewok[0])
    # The synthetic subtask names are not the 2024 ones, and GLUE did not run: verify_dict would refuse.
    assert not results["submission_check"]["complete"] and results["submission_check"]["problems"] > 0
    write_outputs(results, tmp_path / "r.json", tmp_path / "sub.json.gz")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["backend"] == "hybrid" and "submission" not in saved
    sub = json.load(gzip.open(tmp_path / "sub.json.gz", "rt"))
    assert set(sub) == {"glue", "blimp", "blimp_supplement", "ewok"}
    assert "macro" in format_table(saved | {"results": saved["results"]})


def test_ties_count_only_in_compat_mode(tiny_model, tmp_path):
    root = tmp_path / "ties"
    (root / "blimp_filtered").mkdir(parents=True)
    same = json.dumps({"sentence_good": "the dog runs .", "sentence_bad": "the dog runs ."})
    for i in range(67):
        (root / "blimp_filtered" / f"p{i}.jsonl").write_text(same)
    (root / "supplement_filtered").mkdir()
    compat = run_eval(tiny_model, root, EvalOptions(tasks=["blimp"]), log=lambda m: None)
    clean = run_eval(tiny_model, root, EvalOptions(tasks=["blimp"], compat="clean"), log=lambda m: None)
    assert compat["results"]["causal"]["tasks"]["blimp"]["score"] == 100.0
    assert clean["results"]["causal"]["tasks"]["blimp"]["score"] == 0.0


def test_limit_is_recorded_as_incomplete(tiny_model, tmp_path):
    root = _write_official_layout(tmp_path)
    results = run_eval(tiny_model, root, EvalOptions(tasks=["blimp_supplement"], limit=2), log=lambda m: None)
    assert results["complete"] is False and results["results"]["causal"]["tasks"]["blimp_supplement"]["items"] == 10


def test_bad_task_data(tmp_path):
    root = _write_official_layout(tmp_path)
    bad = root / "evaluation_data" / "blimp_filtered" / "p05.jsonl"
    bad.write_text(bad.read_text() + "\n{not json\n")
    with pytest.raises(UserError, match=r"p05\.jsonl:4: malformed JSON"):
        load_task(root, "blimp")
    (root / "evaluation_data" / "blimp_filtered" / "p06.jsonl").unlink()
    with pytest.raises(UserError, match="needs 67"):
        load_task(root, "blimp")
    with pytest.raises(UserError, match="unknown task 'blimpp'"):
        parse_task_list("blimpp,ewok")
    with pytest.raises(UserError, match="not found"):
        detect_layout(tmp_path / "nothing")


def test_ewok_zip_is_read_in_memory(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    (root / "ewok").mkdir(parents=True)
    (root / "blimp_supplement").mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(11):
            row = {"Context1": "c", "Target1": "a", "Target2": "b"}
            archive.writestr(f"ewok_filtered/d{i}.jsonl", json.dumps(row))
    (root / "ewok" / "ewok_filtered.zip").write_bytes(buffer.getvalue())
    items = load_task(root, "ewok")
    assert len(items) == 11 and items["d0"][0].context == "c"
    assert sorted(p.name for p in root.rglob("*")) == ["blimp_supplement", "ewok", "ewok_filtered.zip"]


@pytest.mark.skipif(not (SHARED_DATA / "blimp_filtered").is_dir(), reason="shared data not found at ../shared/data")
def test_real_zero_shot_data_counts():
    assert detect_layout(SHARED_DATA) == "shared"
    blimp = load_task(SHARED_DATA, "blimp")
    assert len(blimp) == 67 and sum(map(len, blimp.values())) == 59_875
    supplement = load_task(SHARED_DATA, "blimp_supplement")
    assert sum(map(len, supplement.values())) == 5_218
    ewok = load_task(SHARED_DATA, "ewok")
    assert len(ewok) == 11 and sum(map(len, ewok.values())) == 7_618
    assert ewok["agent-properties"][0].context and ewok["agent-properties"][0].good


@pytest.mark.skipif(not (SHARED_DATA / "ewok").is_dir(), reason="shared data not found at ../shared/data")
def test_wrong_ewok_password_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("ANTLM_EWOK_PASSWORD", "wrong")
    with pytest.raises(UserError, match="EWoK password"):
        load_task(SHARED_DATA, "ewok", limit=1)


def test_long_context_is_cut_from_the_left():
    request = scoring.Request(tuple(range(10, 40)), (5, 6, 7))
    fitted = scoring.fit_length([request], 20)
    (cut,) = fitted.requests
    assert fitted.cut == 1 and cut.target == (5, 6, 7) and cut.prefix == tuple(range(23, 40))
    with pytest.raises(UserError, match=r"request 0 needs 30 tokens.*--overlong skip.*--overlong window"):
        scoring.fit_length([scoring.Request((1,), tuple(range(1, 30)))], 20)


def test_overlong_window_skip_and_error_policies():
    long = scoring.Request((1, 2, 3), tuple(range(10, 40)), tuple(range(30)))
    short = scoring.Request((1,), (5, 6))
    # window (lm-eval): the last limit + 1 = 21 tokens stay; the first of them only conditions.
    windowed = scoring.fit_length([long, short], 20, "window", shift=1)
    kept = windowed.requests[0]
    assert kept.prefix == (19,) and kept.target == tuple(range(20, 40)) and kept.target_words == tuple(range(10, 30))
    assert windowed.requests[1] == short and windowed.cut == 1
    # A prefix longer than the window is cut as well: the target keeps all of its tokens.
    assert scoring.fit_length([scoring.Request(tuple(range(50)), (7, 8))], 20, "window", shift=1).requests[0] == \
        scoring.Request(tuple(range(31, 50)), (7, 8))
    skipped = scoring.fit_length([short, long], 20, "skip", shift=1)
    assert skipped.skipped == (1,) and skipped.cut == 0 and skipped.requests[0] == short
    with pytest.raises(UserError, match="item blimp_7 \\(good sentence\\) needs 33 tokens"):
        scoring.fit_length([long], 20, "error", describe=lambda i: "item blimp_7 (good sentence)")


def test_overlong_items_score_as_the_2024_pipeline_and_can_be_skipped(tiny_model):
    """A sentence longer than the tiny model's 64-token window: babylm2024 causal scoring keeps the
    last 65 tokens as lm-eval does (checked against a direct computation), clean mode names the item,
    `skip` leaves it out and counts it."""
    from antlm.eval import runner as runner_lib
    from antlm.eval.tasks import Item

    model, tok = load_model(tiny_model)
    long_text = " ".join(["the big dog sees the small cat near the house ."] * 12)
    items = [Item("t_0", "", ("the dog runs .", "the dog run .")), Item("t_1", "", (long_text, "the cat ."))]
    stats = {}
    pairs = runner_lib.score_items(model, tok, items, "causal", EvalOptions(tasks=["blimp"]), stats=stats)[1.0]
    assert stats == {"policy": "window", "inputs_cut": 1, "inputs_skipped": 0}
    ids = ([tok.token_to_id("<s>")] + tok.encode(long_text, add_special_tokens=False).ids)[-65:]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids[:-1]]), causal=True)[0].float(), -1)
    direct = sum(logprobs[k - 1, ids[k]].item() for k in range(1, 65))
    assert pairs[1][0] == pytest.approx(direct, abs=1e-4)
    with pytest.raises(UserError, match=r"item t_1 \(option 1\) needs .*--overlong skip"):
        runner_lib.score_items(model, tok, items, "causal", EvalOptions(tasks=["blimp"], compat="clean"))
    skip = EvalOptions(tasks=["blimp"], compat="clean", overlong="skip")
    stats = {}
    pairs = runner_lib.score_items(model, tok, items, "mlm", skip, stats=stats)[1.0]
    assert stats["inputs_skipped"] == 1 and pairs[1][0] != pairs[1][0] and pairs[0][0] == pairs[0][0]  # NaN, finite


def test_compat_masked_text_is_the_2024_pipeline_join(tiny_model):
    """babylm2024 masked scoring sees "<context>  <target>" (minicons' join of the pipeline's
    context and " " + target): the lone space token is part of the scored target; clean mode scores
    the sentence's own tokens only."""
    from antlm.eval import runner as runner_lib
    from antlm.eval.tasks import Item
    from antlm.model_io import load_model

    model, tokenizer = load_model(tiny_model)
    seen = {}

    def spy(model, requests, *args, **kwargs):
        seen.setdefault("requests", []).extend(requests)
        return {1.0: [0.0] * len(requests)}

    item = Item("pair_0", "", ("the cat sleeps .", "the cat sleep ."))
    original = runner_lib.scoring.pll_scores
    runner_lib.scoring.pll_scores = spy
    try:
        for mode in ("babylm2024", "clean"):
            runner_lib.score_items(model, tokenizer, [item], "mlm", EvalOptions(tasks=["blimp"], compat=mode), log=lambda m: None)
    finally:
        runner_lib.scoring.pll_scores = original
    compat_good, _, clean_good, _ = seen["requests"]
    eos, bos = tokenizer.token_to_id("</s>"), tokenizer.token_to_id("<s>")
    space = tokenizer.token_to_id("Ġ")
    assert compat_good.prefix == (bos, eos) and compat_good.target[0] == space
    assert compat_good.target[1:] == clean_good.target and clean_good.prefix == (bos,)
