"""Backbone registry: `build_model(cfg)` returns a module with `forward(input_ids, causal, ...)`."""
from __future__ import annotations

import torch.nn as nn

from antlm.config import ModelConfig


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.backbone == "babyllama":
        from antlm.models.babyllama import BabyLlama

        return BabyLlama(cfg)
    if cfg.backbone == "ltgbert":
        from antlm.models.ltgbert import LtgBert

        return LtgBert(cfg)
    raise ValueError(f"unknown backbone '{cfg.backbone}' (expected babyllama or ltgbert)")
