import pytest
import torch

from antlm.config import ModelConfig
from antlm.models import build_model

CFG = dict(hidden_size=32, num_layers=2, num_heads=4, ffn_size=64, max_seq_len=16, vocab_size=50)


@pytest.fixture(params=["babyllama", "ltgbert"])
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=request.param, **CFG)).eval()


def test_causal_mode_never_sees_the_future(model):
    ids = torch.randint(5, 50, (2, 16))
    base = model(ids, causal=True)
    for t in (0, 5, 14):
        changed = ids.clone()
        changed[:, t + 1:] = torch.randint(5, 50, changed[:, t + 1:].shape)
        assert torch.allclose(model(changed, causal=True)[:, : t + 1], base[:, : t + 1], atol=1e-5)


def test_bidirectional_mode_sees_the_future(model):
    ids = torch.randint(5, 50, (2, 16))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1 - 5) % 45 + 5
    assert not torch.allclose(model(changed, causal=False)[:, 0], model(ids, causal=False)[:, 0], atol=1e-6)


def test_target_mask_selects_head_positions(model):
    ids = torch.randint(5, 50, (3, 12))
    mask = torch.rand(3, 12) < 0.3
    mask[0, 0] = True
    full = model(ids, causal=False)
    assert torch.allclose(model(ids, causal=False, target_mask=mask), full[mask], atol=1e-5)


def test_padding_mask_in_bidirectional_mode(model):
    ids = torch.randint(5, 50, (1, 10))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[True] * 10 + [False] * 4])
    alone = model(ids, causal=False)
    assert torch.allclose(model(padded, causal=False, attention_mask=mask)[:, :10], alone, atol=1e-5)


def test_too_long_sequence_is_an_error(model):
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 17, dtype=torch.long), causal=True)


def test_babyllama_head_is_untied():
    model = build_model(ModelConfig(backbone="babyllama", **CFG))
    assert model.lm_head.weight.data_ptr() != model.embed_tokens.weight.data_ptr()
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_paper_size_babyllama_has_58m_parameters():
    model = build_model(ModelConfig(backbone="babyllama", vocab_size=16000))
    assert 57e6 < model.num_parameters() < 59e6


@pytest.mark.parametrize("causal", [True, False])
def test_overfit_one_batch(causal):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="babyllama", **CFG))
    ids = torch.randint(5, 50, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(120):
        logits = model(ids, causal=causal)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Causal next-token prediction on random tokens is learnable only by memorising; 0.3 nats is far
    # below the ln(45) = 3.8 of chance. Bidirectional attention can copy from position k+1.
    assert loss.item() < 0.3


def test_reference_defaults_eps_and_init():
    """Baby-Llama-58M (timinar/BabyLlama) is a stock LlamaConfig: RMSNorm eps 1e-6 and normal(0.02)
    for every matrix; `residual_init: legacy` keeps antlm's old depth-scaled o_proj/down_proj."""
    from antlm.models import build_model

    sizes = dict(backbone="babyllama", vocab_size=500, hidden_size=128, num_layers=8, num_heads=4, ffn_size=256,
                 max_seq_len=16)
    torch.manual_seed(0)
    model = build_model(ModelConfig(**sizes))
    assert model.cfg.norm_eps == 1e-6 and model.norm.eps == 1e-6
    for name in ("layers.7.self_attn.o_proj.weight", "layers.7.mlp.down_proj.weight", "layers.0.self_attn.q_proj.weight"):
        assert abs(model.get_parameter(name).std().item() - 0.02) < 0.002, name
    legacy = build_model(ModelConfig(**sizes, residual_init="legacy"))
    assert abs(legacy.get_parameter("layers.7.self_attn.o_proj.weight").std().item() - 0.02 / 4) < 0.001
