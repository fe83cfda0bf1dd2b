"""`query_index` (one bidirectional query row per input, the PLL fast path) and the sliced relative
table give the same logits as the full forward pass, for both backbones."""
import pytest
import torch

from antlm.config import ModelConfig
from antlm.models import build_model


def _model(backbone: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, vocab_size=97, hidden_size=32, num_layers=3, num_heads=4, ffn_size=48,
                      max_seq_len=24)
    if backbone == "ltgbert":
        cfg.position_buckets = 4  # several offsets share a bucket, so the band slicing is exercised
    return build_model(cfg).eval()


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
@pytest.mark.parametrize("length", [1, 5, 24])
def test_query_rows_equal_full_forward(backbone, length):
    model = _model(backbone)
    ids = torch.randint(5, 97, (6, length), generator=torch.Generator().manual_seed(length))
    query = torch.randint(0, length, (6,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids, causal=False)
        rows = model(ids, causal=False, query_index=query)
    torch.testing.assert_close(rows, full[torch.arange(6), query], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
def test_query_rows_respect_padding(backbone):
    model = _model(backbone)
    ids = torch.randint(5, 97, (2, 9), generator=torch.Generator().manual_seed(3))
    keep = torch.ones(2, 9, dtype=torch.bool)
    keep[1, 6:] = False
    query = torch.tensor([8, 2])
    with torch.no_grad():
        full = model(ids, causal=False, attention_mask=keep)
        rows = model(ids, causal=False, attention_mask=keep, query_index=query)
    torch.testing.assert_close(rows, full[torch.arange(2), query], rtol=1e-5, atol=1e-5)


def test_ltgbert_reference_path_with_band_slicing_matches_fast_path():
    model = _model("ltgbert")
    ids = torch.randint(5, 97, (3, 11), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fast = model(ids, causal=False)
        model.use_reference = True
        reference = model(ids, causal=False)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


def test_query_rows_refuse_the_causal_mask():
    with pytest.raises(ValueError, match="bidirectional"):
        _model("babyllama")(torch.ones(1, 4, dtype=torch.long), causal=True, query_index=torch.tensor([1]))
