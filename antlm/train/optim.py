"""Optimizers (AdamW, LAMB) and the learning-rate schedule: warmup, cosine (or constant:
`trapezoid`), and an optional linear cooldown to 0 over the last steps.

The LR is a pure function of the step over the whole run, so it continues unchanged across
CLM/MLM phase switches and needs no state of its own on resume.
"""
from __future__ import annotations

import math

import torch

from antlm.config_types import OptimConfig


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(round(cfg.warmup_fraction * total_steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    # Truncated, as GPT-BERT's int(max_steps * cooldown_proportion) (pretraining/train_10m.py).
    cooldown = int(cfg.cooldown_fraction * total_steps)
    if cooldown and step >= total_steps - cooldown:
        # GPT-BERT's cosine_schedule_with_warmup_cooldown (pretraining/utils.py): from the cosine's
        # floor, lr * min_lr_ratio, linearly to 0; a trapezoid falls from the full lr.
        start = cfg.min_lr_ratio if cfg.lr_schedule == "cosine" else 1.0
        return cfg.lr * start * (total_steps - step) / cooldown
    if cfg.lr_schedule == "trapezoid":
        return cfg.lr
    progress = (step - warmup) / max(1, total_steps - warmup - 1)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2020): Adam's update rescaled per tensor by ||w|| / ||update||, which lets
    large batches train at high learning rates; LTG-BERT pretrains with it.

    `trust_ratio="decay_groups"` is LTG-BERT's variant: only groups with weight_decay > 0 are
    rescaled; the others (biases, norms, embeddings) take a plain Adam step at the lr. "all"
    rescales every tensor (antlm before defaults version 2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0, trust_ratio="decay_groups"):
        if trust_ratio not in ("decay_groups", "all"):
            raise ValueError(f"trust_ratio must be decay_groups or all, got {trust_ratio!r}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.trust_ratio = trust_ratio

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = state["step"]  # a tensor: no host sync per parameter
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(param.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                update = (exp_avg / (1 - beta1**step)) / ((exp_avg_sq / (1 - beta2**step)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(param, alpha=group["weight_decay"])
                elif self.trust_ratio == "decay_groups":
                    param.add_(update, alpha=-group["lr"])
                    continue
                weight_norm, update_norm = param.norm(), update.norm()
                trust = torch.where(
                    (weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, torch.ones_like(weight_norm)
                )
                param.add_(update * trust, alpha=-group["lr"])


# LTG-BERT's rule (babylm/train/train.py) names `bias`, `layer_norm` and `embedding`; antlm's norms
# are named `*_norm`/`*norm` (relative_norm, post_norm; BabyLlama's *_layernorm, norm), so `norm`.
REFERENCE_NO_DECAY = ("bias", "norm", "embedding")


def no_decay_rule(spec: str):
    """A predicate (name, param) -> True when the parameter gets no weight decay."""
    if spec == "ndim":
        return lambda name, param: param.dim() < 2
    parts = REFERENCE_NO_DECAY if spec == "reference" else tuple(p.strip() for p in spec.split(","))
    return lambda name, param: any(part in name for part in parts)


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """Decay and no-decay groups by name; named_parameters() yields a tied weight once, under its
    first name (LTG-BERT's decoder under word_embedding, as the reference's does)."""
    spared = no_decay_rule(cfg.no_decay)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if spared(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    betas = (cfg.beta1, cfg.beta2)
    if cfg.name == "lamb":
        return Lamb(groups, lr=cfg.lr, betas=betas, eps=cfg.eps, trust_ratio=cfg.lamb_trust_ratio)
    # The fused kernel (CUDA, and CPU since torch 2.4) updates all tensors in one pass: ~10% of a
    # small model's CPU step goes to the per-parameter loop otherwise.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps, fused=device.type in ("cuda", "cpu"))
