import torch

from antlm.config import MlmConfig
from antlm.data import masking
from antlm.objectives import mask_rate_at, mlm_batch

NUM_SPECIAL, MASK_ID, VOCAB = 5, 3, 100


def _inputs(batch=64, length=128):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(NUM_SPECIAL, VOCAB, (batch, length), generator=g)
    ids[:, 0] = 1  # <s>
    ids[:, length // 3] = 2  # </s> inside the block
    return ids


def test_token_mask_rate_is_exact_and_skips_specials():
    ids = _inputs()
    maskable = ids >= NUM_SPECIAL
    masked = masking.token_mask(maskable, 0.15, torch.Generator().manual_seed(1))
    assert not masked[~maskable].any()
    assert (masked.sum(1) == (maskable.sum(1) * 0.15).round()).all()


def test_span_mask_is_contiguous_and_near_rate():
    ids = _inputs()
    maskable = ids >= NUM_SPECIAL
    masked = masking.span_mask(maskable, 0.15, 3.0, 10, torch.Generator().manual_seed(1))
    assert not masked[~maskable].any()
    rate = masked.float().mean().item()
    assert 0.10 < rate < 0.17
    starts = (masked[:, 1:] & ~masked[:, :-1]).sum().item()
    assert masked.sum().item() / starts > 2.0  # spans, not single tokens


def test_80_10_10_replacement():
    ids = _inputs(256)
    masked = torch.ones_like(ids, dtype=torch.bool) & (ids >= NUM_SPECIAL)
    out = masking.corrupt(ids, masked, MASK_ID, NUM_SPECIAL, VOCAB, 0.8, 0.1, torch.Generator().manual_seed(2))
    n = masked.sum().item()
    frac_mask = (out[masked] == MASK_ID).sum().item() / n
    frac_same = (out[masked] == ids[masked]).sum().item() / n
    assert abs(frac_mask - 0.8) < 0.01 and abs(frac_same - 0.1) < 0.01 + 1 / VOCAB
    assert (out[masked] >= NUM_SPECIAL).logical_or(out[masked] == MASK_ID).all()
    assert torch.equal(out[~masked], ids[~masked])


def _batch(offset, masking_mode="token"):
    ids = _inputs(8, 32)
    targets = torch.cat([ids[:, 1:], torch.full((8, 1), 7)], dim=1)  # inputs are <s> + targets[:-1]
    cfg = MlmConfig(masking=masking_mode)
    return ids, targets, mlm_batch(ids, targets, cfg, "babyllama", offset, 0.3, MASK_ID, NUM_SPECIAL, VOCAB,
                                   torch.Generator().manual_seed(3))


def test_target_offset_zero_predicts_in_place():
    ids, _, batch = _batch(0)
    assert torch.equal(batch.targets, ids[batch.target_mask])
    assert not batch.causal and batch.objective == "mlm"


def test_target_offset_one_predicts_the_next_masked_token():
    ids, targets, batch = _batch(1)
    assert not batch.target_mask[:, -1].any()
    assert torch.equal(batch.targets, targets[batch.target_mask])
    # Position k has a target exactly when input k+1 was corrupted-or-kept as masked.
    assert torch.equal(batch.targets, ids[:, 1:][batch.target_mask[:, :-1]])


def test_linear_mask_rate_schedule():
    cfg = MlmConfig(mask_rate=0.3, mask_rate_end=0.15)
    assert mask_rate_at(cfg, 0, 101) == 0.3
    assert abs(mask_rate_at(cfg, 50, 101) - 0.225) < 1e-9
    assert abs(mask_rate_at(cfg, 100, 101) - 0.15) < 1e-9


def test_fixed_shape_batches_give_the_same_loss():
    from antlm.config import ModelConfig
    from antlm.models import build_model
    from antlm.objectives import fixed_shape, loss_sum

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="babyllama", hidden_size=32, num_layers=1, num_heads=4, ffn_size=32,
                                    max_seq_len=32, vocab_size=VOCAB))
    _, _, batch = _batch(1)
    padded = fixed_shape(batch, 64)
    assert padded.target_index.numel() % 64 == 0 and padded.target_mask is None
    assert torch.allclose(loss_sum(model, batch), loss_sum(model, padded), atol=1e-5)
