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
    """`span_masking: legacy` (antlm before defaults version 2): contiguous spans with geometric
    lengths (mean `mean_span`, capped at `max_span`). Spans start independently with probability rate/mean_span, so the realised rate is the
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


# The reference stops adding spans after 100 per block; a block of T tokens at rate r needs about
# r*T/2.7 of them, so a bound well above that keeps the [B, spans, T] work small on short blocks.
MAX_SPANS = 100


def wrapped_geometric(uniform: torch.Tensor, mean_span: float, max_span: int) -> torch.Tensor:
    """Geometric(1/mean_span) lengths (1, 2, ...) from uniforms, taken modulo max_span: the
    reference's law, lengths 1..max_span-1 and 0 (an empty span) for multiples of max_span."""
    p = 1.0 / mean_span
    uniform = uniform.clamp_min(1e-12)
    # A 0-dim CPU tensor mixes with CUDA tensors; it keeps float32 rounding identical on both.
    geometric = torch.log(uniform) / torch.log(torch.tensor(1.0 - p)) if p < 1 else torch.zeros_like(uniform)
    return (geometric.floor().long() + 1) % max_span


def reference_span_mask(
    maskable: torch.Tensor, rate: float, mean_span: float, max_span: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """LTG-BERT's span masking (babylm/train/dataset.py, SpanMaskingStrategy), batched.

    Per row: a target count n ~ Binomial(maskable count, rate), at least 1; spans are drawn in
    order, each with length geometric(1/mean_span) modulo max_span (0 = an empty span) at an offset
    uniform in [-(length-1), T+length), so spans may start before the row and the first positions
    are masked as often as the middle; spans are added until n positions are covered, which
    overshoots `rate` a little. Returns (masked [B, T], span_draw [B, T]): span_draw is one uniform
    per span, given to each position by the last span covering it (a later span overwrites an
    earlier one, as in the reference), for `corrupt` to make the 80/10/10 choice per span.

    Unlike the reference, the row's last position can be masked: the reference clips spans at
    T-1 because its blocks end in [SEP], and antlm's blocks end in an ordinary token.
    """
    batch, length = maskable.shape
    device = maskable.device
    spans = min(MAX_SPANS, int(4 * rate * length / max(1.0, mean_span - 1)) + 16)
    counts = maskable.sum(dim=1).float()
    target = torch.binomial(counts, torch.full_like(counts, rate), generator=generator)
    target = torch.minimum(target.clamp(min=1), counts)
    uniform = torch.rand(batch, spans, generator=generator, device=device)
    lengths = wrapped_geometric(uniform, mean_span, max_span)
    offsets = (torch.rand(batch, spans, generator=generator, device=device) * (length + 2 * lengths - 1)).floor().long()
    offsets = offsets - (lengths - 1)
    span_draw = torch.rand(batch, spans, generator=generator, device=device)
    positions = torch.arange(length, device=device)
    cover = ((positions >= offsets[..., None]) & (positions < (offsets + lengths)[..., None])
             & maskable[:, None, :])  # [B, spans, T]
    order = torch.arange(spans, device=device)[None, :, None]
    first = torch.where(cover, order, spans).amin(dim=1)  # [B, T]: the first span covering it
    # Covered count after k spans, for every k at once: positions first covered by span < k.
    newly = torch.zeros(batch, spans + 1, device=device).scatter_add_(1, first, torch.ones_like(first, dtype=torch.float))
    covered_after = newly[:, :spans].cumsum(dim=1)
    used = ((covered_after < target[:, None]).sum(dim=1) + 1).clamp(max=spans)
    used = torch.where(target > 0, used, torch.zeros_like(used))
    masked = first < used[:, None]
    last = torch.where(cover & (order < used[:, None, None]), order, -1).amax(dim=1)
    return masked, span_draw.gather(1, last.clamp(min=0))


def gptbert_span_mask(
    maskable: torch.Tensor, rate: float, max_span: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-BERT's span masking (ltgoslo/gpt-bert pretraining/dataset.py, SpanMaskingStrategy and
    MaskedDataset.apply_mask), batched.

    Each row is cut into consecutive spans of lengths uniform in 1..max_span (the reference: 3);
    each span draws one score, and the spans with the lowest scores are masked whole until at
    least k = max(1, floor(rate * maskable + U)) tokens are (the span at the threshold is included
    whole, so a row may get a few more). Returns (masked, span_draw) like reference_span_mask: one
    uniform per span for the 80/10/10 choice. The reference also scales the scores by a softmax of
    how often each token was masked in earlier epochs; antlm keeps no per-token history.
    """
    batch, length = maskable.shape
    device = maskable.device
    lengths = torch.randint(1, max_span + 1, (batch, length), generator=generator, device=device)
    starts = lengths.cumsum(dim=1) - lengths
    inside = (starts < length).float()
    is_start = torch.zeros(batch, length, device=device).scatter_add_(1, starts.clamp(max=length - 1), inside)
    span = is_start.cumsum(dim=1).long() - 1  # [B, T]: the span each position belongs to
    scores = torch.rand(batch, length, generator=generator, device=device).gather(1, span)
    span_draw = torch.rand(batch, length, generator=generator, device=device).gather(1, span)
    scores = scores.masked_fill(~maskable, float("inf"))
    counts = maskable.sum(dim=1)
    jitter = torch.rand(batch, generator=generator, device=device)
    wanted = (counts * rate + jitter).floor().long().clamp(min=1)
    wanted = torch.minimum(wanted, counts.clamp(min=1))
    threshold = scores.sort(dim=1).values.gather(1, (wanted - 1)[:, None])
    return (scores <= threshold) & maskable, span_draw


def corrupt(
    input_ids: torch.Tensor,
    masked: torch.Tensor,
    mask_id: int,
    num_special: int,
    vocab_size: int,
    replace_mask: float,
    replace_random: float,
    generator: torch.Generator,
    draw: torch.Tensor | None = None,
) -> torch.Tensor:
    """BERT's 80/10/10: a masked position becomes <mask>, a random ordinary token, or stays.
    `draw` [B, T] in [0, 1): shared by the positions of one span for a per-span choice; None: one
    draw per token."""
    if draw is None:
        draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    random_tokens = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator,
                                  device=input_ids.device)
    out = input_ids.clone()
    to_mask = masked & (draw < replace_mask)
    to_random = masked & (draw >= replace_mask) & (draw < replace_mask + replace_random)
    out[to_mask] = mask_id
    out[to_random] = random_tokens[to_random]
    return out
