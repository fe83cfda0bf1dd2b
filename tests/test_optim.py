"""LAMB as LTG-BERT runs it, and weight-decay groups chosen by name as the reference does."""
from __future__ import annotations

import math

import pytest
import torch

from antlm.config import ModelConfig, OptimConfig
from antlm.models import build_model
from antlm.train.optim import Lamb, param_groups


def _adam_step(param, grad, lr, betas, eps):
    """One Adam step from zero moments, by hand: m = (1-b1) g, v = (1-b2) g^2, then bias-corrected."""
    m_hat = (1 - betas[0]) * grad / (1 - betas[0])
    v_hat = (1 - betas[1]) * grad * grad / (1 - betas[1])
    return param - lr * m_hat / (v_hat.sqrt() + eps)


def _two_groups():
    torch.manual_seed(0)
    decayed = torch.nn.Parameter(torch.randn(4, 3))
    spared = torch.nn.Parameter(torch.randn(5))
    decayed.grad, spared.grad = torch.randn(4, 3), torch.randn(5)
    groups = [{"params": [decayed], "weight_decay": 0.1}, {"params": [spared], "weight_decay": 0.0}]
    return decayed, spared, groups


def test_no_decay_parameter_takes_a_plain_adam_step():
    decayed, spared, groups = _two_groups()
    before, grad = spared.detach().clone(), spared.grad.clone()
    Lamb(groups, lr=1e-2, betas=(0.9, 0.98), eps=1e-6).step()
    torch.testing.assert_close(spared.detach(), _adam_step(before, grad, 1e-2, (0.9, 0.98), 1e-6), rtol=0, atol=1e-7)


def test_decay_group_update_is_trust_ratio_scaled():
    decayed, spared, groups = _two_groups()
    before, grad = decayed.detach().clone(), decayed.grad.clone()
    Lamb(groups, lr=1e-2, betas=(0.9, 0.98), eps=1e-6).step()
    adam = (before - _adam_step(before, grad, 1.0, (0.9, 0.98), 1e-6)) + 0.1 * before
    expected = before - 1e-2 * before.norm() / adam.norm() * adam
    torch.testing.assert_close(decayed.detach(), expected, rtol=0, atol=1e-7)
    # A unit-norm step of size lr * ||w||: what makes LAMB's step independent of the gradient scale.
    assert math.isclose((before - decayed.detach()).norm().item(), 1e-2 * before.norm().item(), rel_tol=1e-5)


def test_trust_ratio_all_rescales_no_decay_groups_too():
    _, spared, groups = _two_groups()
    before, grad = spared.detach().clone(), spared.grad.clone()
    Lamb(groups, lr=1e-2, betas=(0.9, 0.98), eps=1e-6, trust_ratio="all").step()
    adam = before - _adam_step(before, grad, 1.0, (0.9, 0.98), 1e-6)
    torch.testing.assert_close(spared.detach(), before - 1e-2 * before.norm() / adam.norm() * adam, rtol=0, atol=1e-7)


def _names(model, cfg):
    lookup = {id(p): n for n, p in model.named_parameters()}
    decay, spared = param_groups(model, cfg)
    return {lookup[id(p)] for p in decay["params"]}, {lookup[id(p)] for p in spared["params"]}


def test_ltgbert_decay_groups_match_the_reference_by_name():
    model = build_model(ModelConfig(backbone="ltgbert", vocab_size=40, hidden_size=16, num_layers=2, num_heads=2,
                                    ffn_size=24, max_seq_len=16, position_buckets=8))
    decay, spared = _names(model, OptimConfig(no_decay="reference"))
    # The reference's decay set (babylm/train/train.py, no_decay = bias, layer_norm, embedding),
    # in antlm's names: the projection matrices only. The tied decoder is the word embedding.
    expected = {f"layers.{i}.{m}.weight" for i in range(2) for m in
                ("attention.in_proj_qk", "attention.in_proj_v", "attention.out_proj", "feed_forward.up", "feed_forward.down")}
    assert decay == expected | {"head.dense.weight"}
    assert {"word_embedding.weight", "relative_embedding", "relative_norm.weight", "relative_norm.bias",
            "layers.0.attention.post_norm.weight", "head.decoder.bias"} <= spared
    old_decay, _ = _names(model, OptimConfig(no_decay="ndim"))
    assert {"word_embedding.weight", "relative_embedding"} <= old_decay
    custom_decay, _ = _names(model, OptimConfig(no_decay="bias"))
    assert "relative_norm.weight" in custom_decay and "relative_norm.bias" not in custom_decay


def test_babyllama_reference_rule_spares_norm_gains_only():
    model = build_model(ModelConfig(backbone="babyllama", vocab_size=40, hidden_size=16, num_layers=2, num_heads=2,
                                    ffn_size=24, max_seq_len=16))
    decay, spared = _names(model, OptimConfig(no_decay="reference"))
    # HF Trainer (the BabyLlama reference) decays every matrix and spares norm weights; here the
    # name rule and the ndim rule agree.
    assert spared == {n for n, p in model.named_parameters() if p.dim() < 2}
    assert "embed_tokens.weight" in decay


@pytest.mark.parametrize("bad", ["", "bias,,norm"])
def test_bad_no_decay_is_a_config_error(bad):
    from antlm.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="optim.no_decay"):
        build_config(None, [f"optim.no_decay={bad}"])
