"""Hugging Face export: the exported models reproduce antlm's logits and scores with plain transformers."""
import ast
import json
import os
import random

import pytest
import torch
from safetensors.torch import load_file

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

from antlm.data.tokenizer import train_tokenizer  # noqa: E402
from antlm.errors import UserError  # noqa: E402
from antlm.eval.scoring import causal_logprobs, encode_masked, mask_id_of, pll_scores  # noqa: E402
from antlm.export.hf import export_hf, hf_causal_logprobs  # noqa: E402
from antlm.model_io import load_model  # noqa: E402
from conftest import SHARED_DATA, WORDS, save_random_model  # noqa: E402
from hf_export_checker import check  # noqa: E402

TOL = 1e-4
# What the official tools need: the masked LM's logits equal antlm's in fp32 (the causal export
# is held to the same bound).
LOGIT_TOL = 1e-5
BLIMP_PAIRS_PER_PARADIGM = 3
# EWoK-style (context, target) items: the 2025 pipeline scores " " + target after the context and
# finds its tokens by offsets. Spaces, newlines (2025 EWoK turn_taking) and non-ASCII text are
# where a tokenizer's offsets or prefix space go wrong.
EWOK_LIKE = [
    ("Ali is in the bakery. Ali sees the candle inside.", "Ali believes that the candle is in the bakery."),
    ("A: Did you see the dog?\nB: Yes.\nA:", "Where was it?"),
    ("A: hi\n", "B: hello there"),
    ("The box is  heavy.", "  It does not move."),
    ("Wei's café is naïve about the crème brûlée.", "Zoë – who owns it – smiles."),
    ("The 東京 train left at 9:45.", "It arrived \"late\"."),
    (" A leading space.", " And another one."),
    ("Tabs\tand\nnewlines", "end\n"),
]
OVERRIDES = {
    # A non-default rotary base catches an export whose rope setting is silently ignored.
    "babyllama": {"model.rope_theta": 500.0},
    # 8 buckets at length 32 puts distances beyond 4 in the log-bucketed range.
    "ltgbert": {"model.position_buckets": 8},
    "gptbert": {"model.position_buckets": 8},
}


def _sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) + " ." for _ in range(count)]


def _save_random_model(directory, tokenizer, backbone: str, **extra):
    return save_random_model(directory, tokenizer, backbone, **OVERRIDES[backbone], **extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run dirs (with final/) of a random tiny model per backbone, and their HF exports."""
    root = tmp_path_factory.mktemp("export")
    tokenizer = train_tokenizer(_sentences(800, 0), vocab_size=300)
    out = {}
    for backbone in ("babyllama", "ltgbert", "gptbert"):
        run = _save_random_model(root / backbone, tokenizer, backbone)
        out[backbone] = (run, export_hf(run, root / f"{backbone}-hf"))
    return out


def _random_ids(vocab: int, rows: int = 3, length: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(5, vocab, (rows, length), generator=generator)


def probe_texts() -> tuple[list[str], list[tuple[str, str]]]:
    """Real BLiMP sentences (when the shared data is here) and EWoK-style (context, target) items:
    the synthetic ones above plus, when present, real EWoK items read from the zip in memory."""
    from antlm.eval.tasks import load_task

    sentences = [" ".join(random.Random(i).choice(WORDS) for _ in range(6)) + " ." for i in range(20)]
    items = list(EWOK_LIKE)
    if (SHARED_DATA / "blimp_filtered").is_dir():
        for pairs in load_task(SHARED_DATA, "blimp", limit=BLIMP_PAIRS_PER_PARADIGM).values():
            sentences += [text for item in pairs for text in (item.good, item.bad)]
    if (SHARED_DATA / "ewok" / "ewok_filtered.zip").is_file():
        for domain in load_task(SHARED_DATA, "ewok", limit=2).values():
            items += [(item.context, target) for item in domain for target in (item.good, item.bad)]
    return sentences, items


def export_spec(run, hf_dir, sentences: list[str], items: list[tuple[str, str]]) -> dict:
    """What antlm computes for the checker (tests/hf_export_checker.py) to compare an export with.

    GPT-BERT's tokenizer is checked; its models have their own parity tests (test_gptbert_export.py)."""
    model, tokenizer = load_model(run)
    backbone = model.antlm_meta.backbone
    causal = backbone == "babyllama"
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")

    def wrap(ids: list[int]) -> list[int]:
        return [bos] + ids if causal else [bos] + ids + [eos]

    def encode(text: str):
        return tokenizer.encode(text, add_special_tokens=False)

    texts = sentences + [f"{context} {target}" for context, target in items]
    encodings = [encode(t) for t in texts]
    offsets = [[[0, 0]] + [list(o) for o in e.offsets] + ([] if causal else [[0, 0]]) for e in encodings]
    pairs = []
    for first, second in zip(texts[:6], texts[6:12]):
        a, b = encode(first).ids, encode(second).ids
        pairs.append([first, second, [bos] + a + [bos] + b if causal else [bos] + a + [eos] + b + [eos]])
    # BLiMP scores the whole sentence; EWoK the target's tokens, which follow the context's.
    completions = [[s, s, list(range(1, 1 + len(e.ids)))] for s, e in zip(sentences, encodings)]
    for context, target in items:
        head, whole = encode(context).ids, encode(f"{context} {target}").ids
        assert whole[:len(head)] == head, (context, target)  # else "the target's tokens" is ill-defined
        completions.append([f"{context} {target}", " " + target, list(range(1 + len(head), 1 + len(whole)))])
    ids = _random_ids(tokenizer.get_vocab_size())
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    mask[2, 7:] = 0
    with torch.no_grad():
        logits = model(ids, causal=causal, attention_mask=None if causal else mask)
    spec = {"name": hf_dir.name, "dir": str(hf_dir), "kind": "causal" if causal else "masked",
            "specials": {"pad": 0, "bos": bos, "eos": eos, "mask": tokenizer.token_to_id("<mask>")},
            "texts": texts, "ids": [wrap(e.ids) for e in encodings], "offsets": offsets,
            "pairs": pairs, "completions": completions, "tolerance": LOGIT_TOL}
    if backbone != "gptbert":
        spec["logits"] = {"ids": ids.tolist(), "mask": mask.tolist(), "values": logits.tolist()}
    return spec


@pytest.fixture(scope="module")
def spec(runs) -> dict:
    sentences, items = probe_texts()
    return {"exports": [export_spec(run, hf_dir, sentences, items) for run, hf_dir in runs.values()]}


def test_exports_work_in_the_official_tools(spec):
    """Tokenizer (ids, offsets, completion tokens, padding, pairs) and every Auto class the BabyLM
    pipelines load, under the transformers installed here (tests/test_export_hf4.py: 4.51.3)."""
    report = check(spec)
    assert report["failures"] == [], "\n".join(report["failures"])
    counts = report["counts"]
    assert counts["ltgbert-hf/AutoProcessor/texts"] >= len(EWOK_LIKE) + 20
    assert counts["ltgbert-hf/AutoModelForMaskedLM/max_abs_logit_error"] <= LOGIT_TOL


def test_export_tokenizer_config_names_the_prefix_space(runs):
    """transformers 4.x rebuilds the byte-level pre-tokenizer from this key (default False)."""
    for _, hf_dir in runs.values():
        config = json.loads((hf_dir / "tokenizer_config.json").read_text())
        assert config["add_prefix_space"] is True and config["padding_side"] == "right"
        assert json.loads((hf_dir / "tokenizer.json").read_text())["pre_tokenizer"]["add_prefix_space"] is True


def test_export_refuses_a_tokenizer_transformers_would_change(runs, tmp_path, monkeypatch):
    """The export re-reads its tokenizer with the installed transformers before publishing it."""
    import antlm.export.hf as hf

    run, _ = runs["ltgbert"]
    real = transformers.PreTrainedTokenizerFast.from_pretrained

    def drops_prefix_space(path, *args, **kwargs):
        loaded = real(path, *args, **kwargs)
        loaded.backend_tokenizer.pre_tokenizer = __import__("tokenizers").pre_tokenizers.ByteLevel(add_prefix_space=False)
        return loaded

    monkeypatch.setattr(transformers.PreTrainedTokenizerFast, "from_pretrained", drops_prefix_space)
    with pytest.raises(UserError, match="tokenizes the export unlike antlm"):
        hf.export_hf(run, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_babyllama_loads_as_stock_llama_with_same_logits(runs):
    run, hf_dir = runs["babyllama"]
    assert not list(hf_dir.glob("*.py")), "the Llama export must not need remote code"
    assert "model.layers.1.self_attn.q_proj.weight" in load_file(str(hf_dir / "model.safetensors"))
    hf = transformers.LlamaForCausalLM.from_pretrained(hf_dir).eval()
    assert hf.config.rope_parameters["rope_theta"] == 500.0
    model, tokenizer = load_model(run)
    ids = _random_ids(tokenizer.get_vocab_size())
    with torch.no_grad():
        expected = model(ids, causal=True)
        assert torch.allclose(hf(ids).logits, expected, atol=TOL)
        # Right padding must not change the real positions under the causal mask.
        mask = torch.ones_like(ids)
        mask[1, 20:] = 0
        assert torch.allclose(hf(ids, attention_mask=mask).logits[1, :20], expected[1, :20], atol=TOL)


def test_babyllama_tokenizer_prepends_bos(runs):
    run, hf_dir = runs["babyllama"]
    _, tokenizer = load_model(run)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    sentence = "the big dog sees the children near a tree ."
    ids = tokenizer.encode(sentence).ids
    assert hf_tok(sentence).input_ids == [tokenizer.token_to_id("<s>")] + ids
    assert hf_tok(sentence, add_special_tokens=False).input_ids == ids
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id) == (1, 2, 0)
    assert hf_tok.decode(ids) == " " + sentence  # byte-level BPE with a prefix space


def test_babyllama_causal_scores_match_antlm(runs):
    run, hf_dir = runs["babyllama"]
    model, tokenizer = load_model(run)
    sentences = _sentences(20, seed=3)
    expected = causal_logprobs(model, tokenizer, sentences)
    got = hf_causal_logprobs(hf_dir, sentences, batch_size=8)  # batches mix lengths: padding is exercised
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert abs(e - g) < TOL


def _load_ltgbert(hf_dir):
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(
        hf_dir, trust_remote_code=True, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return model.eval()


def test_ltgbert_loads_via_remote_code_with_same_logits(runs):
    run, hf_dir = runs["ltgbert"]
    hf = _load_ltgbert(hf_dir)
    assert type(hf).__name__ == "LtgBertForMaskedLM"
    assert hf.get_output_embeddings().weight is hf.get_input_embeddings().weight  # still tied
    model, tokenizer = load_model(run)
    ids = _random_ids(tokenizer.get_vocab_size())
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    mask[2, 7:] = 0
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, model(ids, causal=False), atol=TOL)
        got = hf(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(got, model(ids, causal=False, attention_mask=mask), atol=TOL)
        # Bidirectional: an early position sees later tokens (it would not under a causal mask).
        changed = ids.clone()
        changed[0, -1] = 5 if ids[0, -1] != 5 else 6
        assert not torch.allclose(hf(changed).logits[0, 0], hf(ids).logits[0, 0])


def test_ltgbert_tokenizer_and_pseudo_likelihood_match_antlm(runs):
    """A minicons-style PLL from `tokenizer(sentence)` equals antlm's masked scoring."""
    run, hf_dir = runs["ltgbert"]
    model, tokenizer = load_model(run)
    hf = _load_ltgbert(hf_dir)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=True)
    assert (hf_tok.cls_token, hf_tok.sep_token, hf_tok.mask_token) == ("<s>", "</s>", "<mask>")
    sentences = _sentences(6, seed=4)
    expected = pll_scores(model, [encode_masked(tokenizer, "", s) for s in sentences], mask_id_of(tokenizer), 0)
    for sentence, score in zip(sentences, expected):
        ids = hf_tok(sentence, return_tensors="pt").input_ids[0]
        assert ids.tolist() == [1] + tokenizer.encode(sentence).ids + [2]
        positions = torch.arange(1, len(ids) - 1)
        batch = ids.repeat(len(positions), 1)
        batch[torch.arange(len(positions)), positions] = hf_tok.mask_token_id
        with torch.no_grad():
            logprobs = torch.log_softmax(hf(batch).logits, dim=-1)
        total = logprobs[torch.arange(len(positions)), positions, ids[positions]].sum().item()
        assert abs(total - score) < TOL


def test_export_refuses_existing_dir_unless_forced(runs, tmp_path):
    run, _ = runs["ltgbert"]
    out = tmp_path / "hf"
    out.mkdir()
    export_hf(run / "final", out)  # an empty directory is fine
    with pytest.raises(UserError, match="already exists"):
        export_hf(run, out)
    (out / "stale.txt").write_text("old")
    assert export_hf(run, out, force=True) == out
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no temp or backup dirs left behind
    with pytest.raises(UserError, match="must not contain"):
        export_hf(run / "final", run, force=True)  # would delete the model being exported
    assert (run / "final" / "model.safetensors").is_file()


def test_bad_model_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        export_hf(tmp_path / "no-such-run", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_shifted_mlm_ltgbert_is_refused(runs, tmp_path):
    _, tokenizer = load_model(runs["ltgbert"][0])
    run = _save_random_model(tmp_path / "mntp", tokenizer, "ltgbert", **{"mlm.target_offset": 1})
    with pytest.raises(UserError, match="target_offset"):
        export_hf(run, tmp_path / "hf")


def test_shipped_model_code_is_standalone():
    """The copied files run inside the export dir: only torch, transformers and each other."""
    from antlm.export.hf import LTGBERT_FILES, SHIPPED_CODE

    for name in LTGBERT_FILES:
        tree = ast.parse((SHIPPED_CODE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"math", "typing", "torch", "transformers"}, (name, roots)


def test_blimp_accuracies_of_the_export_equal_antlm_eval(runs, tmp_path):
    """`antlm eval --backend causal` and plain transformers on the export agree per BLiMP paradigm."""
    from antlm.eval.runner import EvalOptions, run_eval

    run, hf_dir = runs["babyllama"]
    data = tmp_path / "evaluation_data" / "blimp_filtered"
    data.mkdir(parents=True)
    (tmp_path / "evaluation_data" / "supplement_filtered").mkdir()
    pairs = {}
    for index in range(67):
        rng = random.Random(index)  # short sentences: the tiny model's max_seq_len is 32
        good, bad = ([" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(6)] for _ in range(2))
        pairs[f"p{index:02d}"] = list(zip(good, bad))
        rows = [json.dumps({"sentence_good": g, "sentence_bad": b}) for g, b in zip(good, bad)]
        (data / f"p{index:02d}.jsonl").write_text("\n".join(rows))
    results = run_eval(run, tmp_path, EvalOptions(tasks=["blimp"], backend="causal"), log=lambda m: None)
    antlm_acc = results["results"]["causal"]["tasks"]["blimp"]["subtasks"]
    for name, items in pairs.items():
        scores = hf_causal_logprobs(hf_dir, [s for pair in items for s in pair])
        hf_acc = 100.0 * sum(scores[2 * i] >= scores[2 * i + 1] for i in range(len(items))) / len(items)
        assert abs(hf_acc - antlm_acc[name]) < 1e-9, name


def test_ltgbert_export_without_new_keys_computes_the_old_way(tmp_path):
    """An export made before defaults version 2 has no position_bucket_max, geglu_gelu or
    ffn_mid_dropout in its config.json; the shipped code must then compute as antlm did then."""
    tokenizer = train_tokenizer(_sentences(800, 0), vocab_size=300)
    legacy = {"model.position_max": 0, "model.gelu": "exact", "model.ffn_mid_dropout": "true"}
    run = _save_random_model(tmp_path / "old", tokenizer, "ltgbert", **legacy)
    hf_dir = export_hf(run, tmp_path / "old-hf")
    config_path = hf_dir / "config.json"
    config = json.loads(config_path.read_text())
    assert config["position_bucket_max"] == 32 and config["geglu_gelu"] == "exact"
    for key in ("position_bucket_max", "geglu_gelu", "ffn_mid_dropout"):
        del config[key]
    config_path.write_text(json.dumps(config))
    hf = _load_ltgbert(hf_dir)
    model, tokenizer = load_model(run)
    ids = _random_ids(tokenizer.get_vocab_size())
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, model(ids, causal=False), atol=TOL)
