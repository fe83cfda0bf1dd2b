"""GPT-BERT backbone: causal leakage, fast vs reference attention, each component against a hand
computation, overfitting one batch, and a tiny GPT-BERT AntLM run end to end with its recipe's
training features (z-loss, EMA, cooldown, batch warm-up), resumed exactly.

Parity with the reference code itself (ltgoslo/gpt-bert model_extra.py) is measured by
benchmarks/gptbert_reference_parity.py, which needs the fetched reference (not in CI)."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from antlm import load_model
from antlm.config import ModelConfig, build_config
from antlm.models import build_model
from antlm.models.gptbert import GptBert
from antlm.train.loop import train
from conftest import tiny_overrides

torch.set_num_threads(1)
VOCAB, MAX_LEN = 50, 16
QUIET = lambda message: None  # noqa: E731


def tiny_model(seed: int = 0, perturb: bool = True, **overrides) -> GptBert:
    values = dict(backbone="gptbert", hidden_size=32, num_layers=2, num_heads=4, ffn_size=48,
                  max_seq_len=MAX_LEN, vocab_size=VOCAB, position_buckets=8)
    values.update(overrides)
    torch.manual_seed(seed)
    model = GptBert(ModelConfig(**values)).eval()
    if perturb and model.layer_weights is not None:  # off the identity init, so the weighting matters
        with torch.no_grad():
            for weights in model.layer_weights:
                weights.add_(torch.randn_like(weights) * 0.3)
    return model


def test_registered_with_its_reference_defaults():
    cfg = build_config(None, ["model.backbone=gptbert"])
    assert cfg.model.norm_eps == 1e-5
    assert isinstance(build_model(ModelConfig(backbone="gptbert", vocab_size=60, hidden_size=32, num_heads=4,
                                              num_layers=1, ffn_size=32)), GptBert)
    from antlm.config import default_target_offset

    assert default_target_offset("gptbert") == 1  # MNTP in both objectives


def test_causal_mode_does_not_leak_future_tokens():
    model = tiny_model()
    torch.manual_seed(1)
    ids = torch.randint(5, VOCAB, (2, MAX_LEN))
    with torch.no_grad():
        base = model(ids, causal=True)
        for t in (0, 4, MAX_LEN - 2):
            changed = ids.clone()
            changed[:, t + 1:] = 5 + (changed[:, t + 1:] - 5 + 1 + torch.randint(0, VOCAB - 6, changed[:, t + 1:].shape)) % (VOCAB - 5)
            out = model(changed, causal=True)
            torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1], atol=1e-5, rtol=0)
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-5)
        changed = ids.clone()
        changed[:, -1] = 5 + (changed[:, -1] - 4) % (VOCAB - 5)
        assert (model(changed, causal=False)[:, 0] - model(ids, causal=False)[:, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("causal", [True, False])
def test_fast_path_matches_reference_path_with_padding(causal):
    model = tiny_model()
    ids = torch.randint(5, VOCAB, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False
    outputs = []
    for reference in (False, True):
        model.use_reference = reference
        logits = model(ids, causal=causal, attention_mask=mask)
        outputs.append(logits[mask])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)


def test_query_index_equals_the_full_forward():
    model = tiny_model()
    ids = torch.randint(5, VOCAB, (3, 12))
    query = torch.tensor([0, 6, 11])
    with torch.no_grad():
        full = model(ids, causal=False)[torch.arange(3), query]
        torch.testing.assert_close(model(ids, causal=False, query_index=query), full, atol=1e-5, rtol=0)


def test_gated_attention_by_hand():
    """One head, no positions that matter: context * GELU(gate) -> parameter-free LN -> out_proj."""
    model = tiny_model()
    attention = model.layers[0].attention
    x = torch.randn(1, 5, 32)
    rel = torch.zeros(2 * 8 - 1, 32)  # a zero table leaves only the content term (plus qk bias terms)
    with torch.no_grad():
        attention.in_proj_qk.bias.zero_()
        out = attention(x, rel, model.bucket_index[:5, :5], None)
        h = F.layer_norm(x, (32,), eps=model.cfg.norm_eps)
        q, k = attention.in_proj_qk(h).chunk(2, dim=-1)
        value, gate = attention.in_proj_vg(h).chunk(2, dim=-1)
        split = lambda t: t.view(1, 5, 4, 8).transpose(1, 2)  # noqa: E731
        probs = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(3 * 8), dim=-1)
        context = (probs @ split(value)).transpose(1, 2).reshape(1, 5, 32) * F.gelu(gate)
        expected = attention.out_proj(F.layer_norm(context, (32,), eps=model.cfg.norm_eps))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert not any("post_norm" in n for n, _ in model.named_parameters())  # the norm has no parameters


def test_layer_weighting_is_the_identity_at_init_and_a_weighted_sum_after():
    plain = tiny_model(perturb=False, layer_weighting=False)
    weighted = tiny_model(perturb=False)
    state = {k: v for k, v in weighted.state_dict().items() if not k.startswith("layer_weights")}
    plain.load_state_dict(state)
    ids = torch.randint(5, VOCAB, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(weighted(ids, causal=False), plain(ids, causal=False), atol=1e-5, rtol=0)
        assert [w.numel() for w in weighted.layer_weights] == [2, 3, 4, 5]
        states = [torch.randn(2, 3) for _ in range(3)]
        weighted.layer_weights[1].copy_(torch.tensor([0.5, -1.0, 2.0]))
        new = states.pop()
        mixed = weighted._mix(states, new, 1)
        torch.testing.assert_close(mixed, 0.5 * states[0] - states[1] + 2.0 * new)


def test_z_loss_matches_a_hand_computation():
    model = tiny_model().train()
    ids = torch.randint(5, VOCAB, (2, 10))
    targets = torch.randint(5, VOCAB, (2, 10))
    z = 1e-2
    total = model(ids, causal=True, targets=targets.flatten(), z_loss=z)
    logits = model(ids, causal=True).flatten(0, 1)
    expected = F.cross_entropy(logits, targets.flatten(), reduction="sum") + z * torch.logsumexp(logits, -1).square().sum()
    torch.testing.assert_close(total, expected, atol=1e-4, rtol=1e-6)
    # The fused backward (softmax * (1 + 2 z lse) - onehot) equals autograd of the hand formula.
    grads = torch.autograd.grad(total, model.word_embedding.weight)[0]
    logits = model(ids, causal=True).flatten(0, 1)
    hand = F.cross_entropy(logits, targets.flatten(), reduction="sum") + z * torch.logsumexp(logits, -1).square().sum()
    torch.testing.assert_close(grads, torch.autograd.grad(hand, model.word_embedding.weight)[0], atol=1e-5, rtol=1e-4)


def test_overfits_one_batch_in_both_directions():
    torch.manual_seed(0)
    model = tiny_model(perturb=False).train()
    ids = torch.randint(5, VOCAB, (4, 12))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(150):
        causal = step % 2 == 0
        logits = model(ids, causal=causal)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for causal in (True, False):
            final = F.cross_entropy(model.eval()(ids, causal=causal)[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
            assert final < 0.3, (causal, final)


def _gptbert_run(corpus, out, resume=False, **extra):
    values = {"model.backbone": "gptbert", "schedule": "4st_clm+16st_mix(clm=1,mlm=3)", "optim.name": "lamb",
              "optim.lr": 0.01, "optim.cooldown_fraction": 0.1, "train.z_loss": 1e-4, "train.ema_decay": 0.9,
              "train.batch_warmup": 4, "train.micro_batch_size": 2, "mlm.span_masking": "gptbert",
              "mlm.max_span_length": 3, "mlm.mask_rate": 0.3, "mlm.mask_rate_end": 0.15, "model.dropout": 0.1}
    values.update(extra)
    return train(build_config(None, tiny_overrides(corpus, **values)), out, resume=resume, log=QUIET)


def test_tiny_gptbert_recipe_trains_end_to_end_and_resumes_exactly(text_corpus, tmp_path):
    result = _gptbert_run(text_corpus, tmp_path / "whole")
    assert result["finished"] and result["steps"] == 20
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert {r["objective"] for r in train_rows} == {"clm", "mlm"}
    assert train_rows[-1]["lr"] < 0.01 * 0.1  # in the cooldown
    assert train_rows[0]["tokens"] < 5 * 8 * 32  # the batch warm-up saw fewer sequences than 5 full batches
    meta = json.loads((tmp_path / "whole" / "final" / "config.json").read_text())
    assert meta["backbone"] == "gptbert" and meta["mlm_target_offset"] == 1 and meta["ema_decay"] == 0.9

    # final/ holds the EMA weights, not the raw ones of the last checkpoint.
    final = load_file(str(tmp_path / "whole" / "final" / "model.safetensors"))
    last = load_file(str(tmp_path / "whole" / "checkpoints" / "step_00000020" / "model.safetensors"))
    trainer = load_file(str(tmp_path / "whole" / "checkpoints" / "step_00000020" / "trainer.safetensors"))
    name = "layers.0.attention.in_proj_qk.weight"
    assert not torch.equal(final[name], last[name]) and torch.equal(final[name], trainer["ema." + name])
    model, _ = load_model(tmp_path / "whole")
    assert isinstance(model, GptBert)

    _gptbert_run(text_corpus, tmp_path / "split", **{"train.max_steps": 11})
    _gptbert_run(text_corpus, tmp_path / "split", resume=True)
    a = load_file(str(tmp_path / "split" / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], a[k]) for k in final)
    dev = lambda run: {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())  # noqa: E731
                       if r["split"] == "dev"}
    whole, split = dev(tmp_path / "whole"), dev(tmp_path / "split")
    assert all(split[step] == row for step, row in whole.items())
