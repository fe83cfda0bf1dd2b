"""Masking for the MLM objective: which positions to corrupt, and with what.

Both modes draw from an explicit `torch.Generator`, so a batch's mask is a pure function of the
seed it was given (the trainer seeds it from (run seed, step): resume needs no RNG state).
Special tokens (ids below `num_special`, i.e. pad/bos/eos/mask/unk) are never masked.
"""
from __future__ import annotations

import torch


def token_mask(maskable: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Exactly round(rate * maskable count) positions per row (at least one), chosen uniformly."""
    scores = torch.rand(maskable.shape, generator=generator, device=maskable.device)
    scores = scores.masked_fill(~maskable, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    count = (maskable.sum(dim=1, keepdim=True) * rate).round().clamp(min=1)
    return (ranks < count) & maskable


def span_mask(
    maskable: torch.Tensor, rate: float, mean_span: float, max_span: int, generator: torch.Generator
) -> torch.Tensor:
    """Contiguous spans with geometric lengths (mean `mean_span`, capped at `max_span`), as in
    LTG-BERT. Spans start independently with probability rate/mean_span, so the realised rate is the
    target rate minus span overlaps (a little lower); every row with a maskable token gets one span."""
    batch, length = maskable.shape
    start = torch.rand(maskable.shape, generator=generator, device=maskable.device) < (rate / mean_span)
    # A geometric length from a uniform draw: floor(log(u) / log(1 - p)) + 1, with p = 1/mean.
    uniform = torch.rand(maskable.shape, generator=generator, device=maskable.device).clamp_min(1e-12)
    p = 1.0 / mean_span
    # A 0-dim CPU tensor mixes with CUDA tensors; it keeps float32 rounding identical on both.
    lengths = (torch.log(uniform) / torch.log(torch.tensor(1.0 - p)) if p < 1 else torch.zeros_like(uniform))
    lengths = (lengths.floor() + 1).clamp(max=max_span).long()
    forced = torch.randint(0, length, (batch,), generator=generator, device=maskable.device)
    start[torch.arange(batch, device=maskable.device), forced] |= ~start.any(dim=1)
    positions = torch.arange(length, device=maskable.device).expand(batch, length)
    ends = torch.where(start, positions + lengths, torch.zeros_like(positions))
    # A position is covered when some span starting at or before it ends after it.
    covered = positions < torch.cummax(ends, dim=1).values
    return covered & maskable


def corrupt(
    input_ids: torch.Tensor,
    masked: torch.Tensor,
    mask_id: int,
    num_special: int,
    vocab_size: int,
    replace_mask: float,
    replace_random: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """BERT's 80/10/10: a masked position becomes <mask>, a random ordinary token, or stays."""
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    random_tokens = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator,
                                  device=input_ids.device)
    out = input_ids.clone()
    to_mask = masked & (draw < replace_mask)
    to_random = masked & (draw >= replace_mask) & (draw < replace_mask + replace_random)
    out[to_mask] = mask_id
    out[to_random] = random_tokens[to_random]
    return out
