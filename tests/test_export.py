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

from antlm.config import build_config  # noqa: E402
from antlm.data.tokenizer import train_tokenizer  # noqa: E402
from antlm.errors import UserError  # noqa: E402
from antlm.eval.scoring import causal_logprobs, encode_masked, mask_id_of, pll_scores  # noqa: E402
from antlm.export.hf import export_hf, hf_causal_logprobs  # noqa: E402
from antlm.model_io import load_model, save_final  # noqa: E402
from antlm.models import build_model  # noqa: E402
from conftest import WORDS, tiny_overrides  # noqa: E402

TOL = 1e-4
OVERRIDES = {
    # A non-default rotary base catches an export whose rope setting is silently ignored.
    "babyllama": {"model.rope_theta": 500.0},
    # 8 buckets at length 32 puts distances beyond 4 in the log-bucketed range.
    "ltgbert": {"model.position_buckets": 8},
}


def _sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) + " ." for _ in range(count)]


def _save_random_model(directory, tokenizer, backbone: str, **extra):
    cfg = build_config(None, tiny_overrides(directory / "unused-corpus", **{"model.backbone": backbone},
                                            **OVERRIDES[backbone], **extra))
    cfg.model.vocab_size = tokenizer.get_vocab_size()
    torch.manual_seed(0)
    model = build_model(cfg.model)
    with torch.no_grad():
        # Move norms and biases off their 1/0 init, so a mis-mapped one cannot go unnoticed.
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_final(directory / "final", model, cfg, tokenizer)
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run dirs (with final/) of a random tiny model per backbone, and their HF exports."""
    root = tmp_path_factory.mktemp("export")
    tokenizer = train_tokenizer(_sentences(800, 0), vocab_size=300)
    out = {}
    for backbone in ("babyllama", "ltgbert"):
        run = _save_random_model(root / backbone, tokenizer, backbone)
        out[backbone] = (run, export_hf(run, root / f"{backbone}-hf"))
    return out


def _random_ids(vocab: int, rows: int = 3, length: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(5, vocab, (rows, length), generator=generator)


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
