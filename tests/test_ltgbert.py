import math

import pytest
import torch
import torch.nn.functional as F

from antlm.config import ModelConfig
from antlm.models.ltgbert import LtgBert, bucket_index_matrix

torch.set_num_threads(2)

VOCAB = 50
MAX_LEN = 16


def tiny_config(**overrides) -> ModelConfig:
    values = dict(backbone="ltgbert", hidden_size=32, num_layers=2, num_heads=4, ffn_size=48,
                  max_seq_len=MAX_LEN, vocab_size=VOCAB, position_buckets=8)
    values.update(overrides)
    return ModelConfig(**values)


def tiny_model(seed: int = 0, **overrides) -> LtgBert:
    torch.manual_seed(seed)
    return LtgBert(tiny_config(**overrides)).eval()


def test_causal_mode_does_not_leak_future_tokens():
    model = tiny_model()
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, MAX_LEN))
    with torch.no_grad():
        base = model(ids, causal=True)
        for t in (0, 3, 7, MAX_LEN - 2):
            changed = ids.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1 + torch.randint(0, VOCAB - 1, changed[:, t + 1:].shape)) % VOCAB
            out = model(changed, causal=True)
            torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1], atol=1e-5, rtol=0)
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-5)

        # Bidirectional: the last token must influence the first position.
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % VOCAB
        before, after = model(ids, causal=False), model(changed, causal=False)
        assert (after[:, 0] - before[:, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("causal", [True, False])
def test_fast_path_matches_reference(causal):
    model = tiny_model()
    torch.manual_seed(2)
    ids = torch.randint(0, VOCAB, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False   # right padding
    mask[2, 5:] = False
    cases = [None, mask]
    if not causal:
        left = torch.ones(3, 12, dtype=torch.bool)
        left[0, :4] = False  # left padding only makes sense bidirectionally
        cases.append(left)
    for attention_mask in cases:
        outputs, grads = [], []
        for reference in (False, True):
            model.use_reference = reference
            model.zero_grad()
            logits = model(ids, causal=causal, attention_mask=attention_mask)
            keep = attention_mask if attention_mask is not None else torch.ones_like(ids, dtype=torch.bool)
            logits[keep].square().mean().backward()
            outputs.append(logits[keep].detach())
            grads.append([p.grad.clone() for p in (model.relative_embedding, model.word_embedding.weight,
                                                   model.layers[0].attention.in_proj_qk.weight)])
        model.use_reference = False
        torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)
        for fast, ref in zip(*grads):
            torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)


def test_fully_masked_rows_stay_finite():
    # Left padding with a causal mask leaves the first query with no visible key.
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, :3] = False
    with torch.no_grad():
        assert torch.isfinite(model(ids, causal=True, attention_mask=mask)).all()


def test_target_mask_selects_positions():
    model = tiny_model()
    torch.manual_seed(3)
    ids = torch.randint(0, VOCAB, (3, 10))
    target = torch.rand(3, 10) < 0.3
    target[0, 0] = True
    with torch.no_grad():
        for causal in (True, False):
            full = model(ids, causal=causal)
            picked = model(ids, causal=causal, target_mask=target)
            assert picked.shape == (int(target.sum()), VOCAB)
            torch.testing.assert_close(picked, full[target], atol=1e-6, rtol=0)
    assert model(ids, causal=False).shape == (3, 10, VOCAB)
    assert model.hidden_states(ids, causal=False).shape == (3, 10, 32)


def test_head_is_tied_and_gradients_flow():
    model = tiny_model().train()
    decoder, embedding = model.head.decoder.weight, model.word_embedding.weight
    assert decoder is embedding
    assert decoder.data_ptr() == embedding.data_ptr()
    ids = torch.randint(0, VOCAB, (2, 9))
    logits = model(ids, causal=False)
    F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert embedding.grad.abs().sum() > 0
    assert model.relative_embedding.grad.abs().sum() > 0
    # Counting the tied matrix once.
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))


def test_overfits_one_masked_batch():
    model = tiny_model(seed=4).train()
    torch.manual_seed(5)
    ids = torch.randint(2, VOCAB, (4, MAX_LEN))
    target = torch.rand(4, MAX_LEN) < 0.3
    inputs = ids.masked_fill(target, 1)  # token 1 plays [MASK]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(150):
        logits = model(inputs, causal=False, target_mask=target)
        loss = F.cross_entropy(logits, ids[target])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(VOCAB)) < 1.0
    assert losses[-1] < 0.5, losses[-10:]


def test_too_long_sequence_raises():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, MAX_LEN + 1, dtype=torch.long), causal=True)
    model(torch.zeros(1, MAX_LEN, dtype=torch.long), causal=True)  # exactly max is fine


@pytest.mark.parametrize("buckets,max_len", [(8, 16), (32, 128), (2, 10), (7, 50), (64, 16)])
def test_bucket_indices(buckets, max_len):
    index = bucket_index_matrix(max_len, buckets)
    assert index.shape == (max_len, max_len)
    assert index.min() >= 0 and index.max() < 2 * buckets - 1
    pos = torch.arange(max_len)
    relative = pos[:, None] - pos[None, :]
    bucket = index - (buckets - 1)
    near = relative.abs() <= buckets // 2
    assert torch.equal(bucket[near], relative[near])
    # Depends only on i - j, keeps the sign, and grows monotonically with distance.
    distances = torch.arange(-(max_len - 1), max_len)
    per_distance = torch.stack([bucket[relative == d].unique().squeeze() for d in distances])
    assert torch.equal(per_distance.sign(), distances.sign())
    forward = per_distance[max_len - 1:]
    backward = -per_distance[:max_len].flip(0)
    for side in (forward, backward):
        assert (side[1:] >= side[:-1]).all()
    if max_len - 1 > buckets // 2:
        assert forward[-1] == buckets - 1 - (buckets % 2)  # the far edge reaches the table's end


def test_reference_residual_init_scales_ffn_up_and_down_not_out_proj():
    """ltg-bert babylm/train/model.py: layer i's FFN matrices shrink by 1/sqrt(2(i+1)) at init;
    `residual_init: legacy` (antlm before defaults version 2) scaled out_proj and down instead."""
    cfg = dict(hidden_size=256, ffn_size=512, num_layers=4, num_heads=4, position_buckets=8)
    std = math.sqrt(2.0 / (5.0 * 256))
    torch.manual_seed(0)
    ref = LtgBert(tiny_config(**cfg))
    legacy = LtgBert(tiny_config(**cfg, residual_init="legacy"))
    ratio = 1.0 / math.sqrt(2.0 * 4)
    trunc_std = std * 0.88  # a normal truncated at 2 std keeps ~88% of its std
    last_ref, last_old = ref.layers[3], legacy.layers[3]
    for weight, scale in ((last_ref.feed_forward.up.weight, ratio), (last_ref.feed_forward.down.weight, ratio),
                          (last_ref.attention.out_proj.weight, 1.0), (last_old.feed_forward.up.weight, 1.0),
                          (last_old.attention.out_proj.weight, ratio)):
        assert abs(weight.std().item() / (trunc_std * scale) - 1) < 0.05
    assert not any(isinstance(m, torch.nn.Dropout) for m in ref.layers[0].feed_forward.mid_dropout.modules())
