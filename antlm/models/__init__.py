"""Backbone registry: `build_model(cfg)` returns a module with `forward(input_ids, causal, ...)`."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from antlm.config import ModelConfig, resolve_model_defaults


def build_model(cfg: ModelConfig) -> nn.Module:
    cfg = resolve_model_defaults(cfg)
    if cfg.backbone == "babyllama":
        from antlm.models.babyllama import BabyLlama

        return BabyLlama(cfg)
    if cfg.backbone == "ltgbert":
        from antlm.models.ltgbert import LtgBert

        return LtgBert(cfg)
    if cfg.backbone == "gptbert":
        from antlm.models.gptbert import GptBert

        return GptBert(cfg)
    raise ValueError(f"unknown backbone '{cfg.backbone}' (expected babyllama, ltgbert or gptbert)")


def select_positions(
    hidden: torch.Tensor, target_mask: Optional[torch.Tensor] = None, target_index: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """The rows of `hidden` [B, T, H] the LM head runs on. MLM predicts ~15% of positions, so the
    vocabulary projection (often the largest matmul of a small model) runs only there: given as a
    bool mask (a data-dependent count) or as flat indices into B*T (a fixed count, for torch.compile)."""
    if target_index is not None:
        return hidden.reshape(-1, hidden.size(-1)).index_select(0, target_index)
    if target_mask is not None:
        return hidden[target_mask.to(device=hidden.device, dtype=torch.bool)]
    return hidden
