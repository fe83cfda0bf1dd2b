"""CLM and MLM batches and their losses.

A `Batch` carries everything the model call needs: inputs, which positions have targets, the
targets there, and the mask (`causal`). The LM head runs only at target positions for MLM.

Target alignment, with block tokens s_0..s_{T-1} fed as inputs x = [<s>, s_0, ..., s_{T-2}]:
- CLM: position k predicts s_k (the next token) under the causal mask.
- MLM, target_offset=0 (BERT): a masked position k predicts its own original token x_k.
- MLM, target_offset=1 (MNTP, GPT-BERT): when x_{k+1} is masked, position k predicts it; that is
  again s_k, so a decoder keeps the output-to-next-token mapping of its CLM phases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from antlm.config_types import MlmConfig, default_masking
from antlm.data import masking

IGNORE = -100


@dataclass
class Batch:
    objective: str
    input_ids: torch.Tensor  # [B, T]
    targets: torch.Tensor  # CLM: [B, T]; MLM: [N] at target positions
    target_mask: Optional[torch.Tensor]  # MLM: bool [B, T]; CLM: None (every position)
    causal: bool
    target_index: Optional[torch.Tensor] = None  # MLM with fixed shapes: flat indices into B*T
    # Rows cut short (data.short_fraction): True at the real positions, padding after them; the
    # model's attention skips the padding. None: every position is real.
    attention_mask: Optional[torch.Tensor] = None
    # Targets that are not IGNORE, when the host knows it without reading the device (padded CLM).
    target_count: Optional[int] = None

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(self.objective, move(self.input_ids), move(self.targets), move(self.target_mask), self.causal,
                     move(self.target_index), move(self.attention_mask), self.target_count)

    @property
    def num_targets(self) -> int:
        return int(self.targets.numel()) if self.target_count is None else self.target_count


def clm_batch(input_ids: torch.Tensor, targets: torch.Tensor) -> Batch:
    return Batch("clm", input_ids, targets, None, causal=True)


def mlm_batch(
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    cfg: MlmConfig,
    backbone: str,
    target_offset: int,
    mask_rate: float,
    mask_id: int,
    num_special: int,
    vocab_size: int,
    generator: torch.Generator,
) -> Batch:
    maskable = input_ids >= num_special
    if target_offset == 1:
        # Position k predicts x_{k+1}; the last input has no successor inside the block.
        maskable[:, 0] = False
    mode = default_masking(backbone) if cfg.masking == "auto" else cfg.masking
    draw = None
    if mode == "span" and cfg.span_masking == "reference":
        masked, span_draw = masking.reference_span_mask(maskable, mask_rate, cfg.mean_span_length,
                                                         cfg.max_span_length, generator)
        draw = span_draw if cfg.replace_unit == "span" else None
    elif mode == "span" and cfg.span_masking == "gptbert":
        masked, span_draw = masking.gptbert_span_mask(maskable, mask_rate, cfg.max_span_length, generator)
        draw = span_draw if cfg.replace_unit == "span" else None
    elif mode == "span":
        masked = masking.span_mask(maskable, mask_rate, cfg.mean_span_length, cfg.max_span_length, generator)
    else:
        masked = masking.token_mask(maskable, mask_rate, generator)
    corrupted = masking.corrupt(
        input_ids, masked, mask_id, num_special, vocab_size, cfg.replace_mask, cfg.replace_random, generator, draw
    )
    if target_offset == 0:
        target_mask = masked
        flat_targets = input_ids[masked]
    else:
        target_mask = torch.zeros_like(masked)
        target_mask[:, :-1] = masked[:, 1:]
        flat_targets = targets[target_mask]  # s_k == x_{k+1}
    return Batch("mlm", corrupted, flat_targets, target_mask, causal=False)


def fixed_shape(batch: Batch, bucket: int) -> Batch:
    """For torch.compile: the LM head runs on a target count rounded up to a multiple of `bucket`
    (padding targets are ignored by the loss), so MLM steps, whose mask sizes vary, reuse a few
    compiled graphs instead of recompiling; CLM batches already have a fixed shape."""
    if batch.target_mask is None:
        return batch
    index = batch.target_mask.reshape(-1).nonzero().squeeze(1)
    padding = -(-max(1, index.numel()) // bucket) * bucket - index.numel()
    index = torch.cat([index, index.new_zeros(padding)])
    targets = torch.cat([batch.targets, batch.targets.new_full((padding,), IGNORE)])
    return Batch(batch.objective, batch.input_ids, targets, None, batch.causal, index, batch.attention_mask)


def loss_sum(model: torch.nn.Module, batch: Batch, distill=None, z_loss: float = 0.0) -> torch.Tensor:
    """Summed token cross-entropy (with `distill`, antlm.distill.DistillInputs for this batch: the
    summed distillation loss; `z_loss` > 0 adds z_loss * logsumexp^2 per target); the caller
    divides by the (global) target count."""
    extra = {"z_loss": z_loss} if z_loss else {}  # models without the argument (HF teachers) still work
    if batch.attention_mask is not None:
        extra["attention_mask"] = batch.attention_mask
    return model(batch.input_ids, causal=batch.causal, target_mask=batch.target_mask,
                 target_index=batch.target_index, targets=batch.targets, distill=distill, **extra)


def mask_rate_at(cfg: MlmConfig, step: int, total_steps: int) -> float:
    if cfg.mask_rate_end is None or total_steps <= 1:
        return cfg.mask_rate
    progress = min(1.0, step / (total_steps - 1))
    return cfg.mask_rate + (cfg.mask_rate_end - cfg.mask_rate) * progress
