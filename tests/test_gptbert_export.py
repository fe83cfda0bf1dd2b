"""GPT-BERT's Hugging Face export (shipped code, trust_remote_code): the masked-LM, causal-LM and
sequence-classification classes reproduce antlm's logits."""
import ast
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

from antlm.config import build_config  # noqa: E402
from antlm.data.tokenizer import train_tokenizer  # noqa: E402
from antlm.errors import UserError  # noqa: E402
from antlm.export.hf import GPTBERT_CODE, GPTBERT_FILES, export_hf  # noqa: E402
from antlm.model_io import load_model, save_final  # noqa: E402
from antlm.models import build_model  # noqa: E402
from conftest import WORDS, tiny_overrides  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-4


def _save_random(directory, tokenizer, **extra):
    cfg = build_config(None, tiny_overrides(directory / "unused", **{"model.backbone": "gptbert",
                                                                     "model.position_buckets": 8}, **extra))
    cfg.model.vocab_size = tokenizer.get_vocab_size()
    torch.manual_seed(0)
    model = build_model(cfg.model)
    with torch.no_grad():  # off the 1/0/identity inits, so a mis-mapped weight shows
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_final(directory / "final", model, cfg, tokenizer)
    return directory


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("gptbert-export")
    import random

    rng = random.Random(0)
    tokenizer = train_tokenizer([" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(800)], vocab_size=300)
    run = _save_random(root / "run", tokenizer)
    return run, export_hf(run, root / "hf")


def _load(auto, hf_dir):
    model, info = auto.from_pretrained(hf_dir, trust_remote_code=True, output_loading_info=True)
    return model.eval(), info


def test_masked_and_causal_classes_reproduce_antlm(exported):
    run, hf_dir = exported
    model, tokenizer = load_model(run)
    ids = torch.randint(5, tokenizer.get_vocab_size(), (3, 32), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    masked, info = _load(transformers.AutoModelForMaskedLM, hf_dir)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert type(masked).__name__ == "GptBertForMaskedLM"
    assert masked.get_output_embeddings().weight is masked.get_input_embeddings().weight
    causal, info = _load(transformers.AutoModelForCausalLM, hf_dir)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        ours = model(ids, causal=False, attention_mask=mask)
        got = masked(input_ids=ids, attention_mask=mask).logits
        # MNTP as trained: the masked-LM class's output at k predicts token k+1, as antlm's does
        # (what the 2025 pipeline's mntp backend reads).
        real = mask.bool()
        assert torch.allclose(got[real], ours[real], atol=TOL)
        masked.config.shift_mlm_logits = True
        shifted = masked(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(shifted[:, 1:][mask[:, 1:].bool()], ours[:, :-1][mask[:, 1:].bool()], atol=TOL)
        masked.config.shift_mlm_logits = False
        assert torch.allclose(causal(ids).logits, model(ids, causal=True), atol=TOL)
        changed = ids.clone()
        changed[0, -1] = 5 if ids[0, -1] != 5 else 6
        assert torch.allclose(causal(changed).logits[0, :-1], causal(ids).logits[0, :-1], atol=1e-6)
        assert not torch.allclose(masked(changed).logits[0, 1], masked(ids).logits[0, 1])


def test_sequence_classification_loads_with_a_fresh_head(exported):
    _, hf_dir = exported
    classifier, info = _load(transformers.AutoModelForSequenceClassification, hf_dir)
    assert type(classifier).__name__ == "GptBertForSequenceClassification"
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    out = classifier(input_ids=torch.tensor([[1, 7, 8, 2]]), labels=torch.tensor([1]))
    assert out.logits.shape == (1, 2) and torch.isfinite(out.loss)


def test_in_place_mlm_gptbert_is_refused(exported, tmp_path):
    _, tokenizer = load_model(exported[0])
    run = _save_random(tmp_path / "bert", tokenizer, **{"mlm.target_offset": 0})
    with pytest.raises(UserError, match="target_offset=1"):
        export_hf(run, tmp_path / "hf")


def test_shipped_code_is_standalone():
    for name in GPTBERT_FILES:
        for node in ast.walk(ast.parse((GPTBERT_CODE / name).read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"math", "typing", "torch", "transformers"}, (name, roots)
