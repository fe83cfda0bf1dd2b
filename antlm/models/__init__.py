"""Backbone registry: `build_model(cfg)` returns a module with `forward(input_ids, causal, ...)`."""
from __future__ import annotations

import torch.nn as nn

from antlm.config_types import ModelConfig, resolve_model_defaults


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
