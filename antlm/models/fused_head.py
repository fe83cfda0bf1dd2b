"""Vocabulary projection and cross-entropy in one pass over row chunks.

A CLM step of a small model at vocab 16k materialises [B*T, V] logits several times (logits,
log-softmax, its gradient): ~130 MB each at batch 128 x 128 tokens. On CPU most of that cost is
page faults on freshly mapped buffers, not arithmetic (docs/performance.md). Here the logits of
`chunk_rows` rows at a time are made, reduced to their loss and, when training, turned at once
into the gradients of the features, the weight and the bias, so no buffer larger than one chunk
ever exists. The result equals `F.cross_entropy(features @ weight.T + bias, targets,
reduction="sum", ignore_index=-100)` up to float summation order (tested).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

IGNORE = -100
# Elements per logits chunk. CPU: 4M floats (16 MB) stays below glibc's mmap threshold ceiling,
# so chunk buffers are reused from the heap instead of being mapped and faulted in every step.
# GPU: memory, not page faults, is the point, and fewer, larger chunks keep kernel launches few.
CHUNK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 25}


def _rows_per_chunk(vocab: int, device: torch.device, chunk_rows: Optional[int]) -> int:
    return chunk_rows or max(16, CHUNK_ELEMENTS.get(device.type, 1 << 22) // vocab)


def _chunk_logits(features: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """`weight` already in the features' dtype (converted once, not per chunk)."""
    logits = (features @ weight.t()).float()
    return logits if bias is None else logits + bias.float()


def _chunk_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    valid = targets != IGNORE
    safe = targets.clamp_min(0)
    log_norm = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1)
    return ((log_norm - picked) * valid).sum(), log_norm, safe, valid


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                chunk_rows: int) -> Tensor:
        want_features, want_weight, want_bias = ctx.needs_input_grad[:3]
        total = torch.zeros((), dtype=torch.float32, device=features.device)
        grad_features = torch.empty_like(features) if want_features else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if want_bias else None
        matmul_weight = weight.to(features.dtype)
        for start in range(0, features.size(0), chunk_rows):
            rows = features[start:start + chunk_rows]
            logits = _chunk_logits(rows, matmul_weight, bias)
            loss, log_norm, safe, valid = _chunk_loss(logits, targets[start:start + chunk_rows])
            total += loss
            # d loss / d logits = softmax - one_hot(target), zero on ignored rows; made in place
            # in the logits buffer so the chunk needs no second [rows, V] allocation.
            grad_logits = logits.sub_(log_norm.unsqueeze(1)).exp_()
            grad_logits[torch.arange(rows.size(0), device=rows.device), safe] -= 1.0
            grad_logits *= valid.unsqueeze(1)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0)
            grad_logits = grad_logits.to(features.dtype)
            if grad_features is not None:
                grad_features[start:start + chunk_rows] = grad_logits @ matmul_weight
            if grad_weight is not None:
                grad_weight += (grad_logits.t() @ rows).float()
        ctx.save_for_backward(grad_features, grad_weight, grad_bias)
        ctx.dtypes = (features.dtype, weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grads = [None if g is None else (g * grad_output).to(dtype) for g, dtype in zip(ctx.saved_tensors, ctx.dtypes)]
        return (*grads, None, None)


def linear_cross_entropy(features: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                         chunk_rows: Optional[int] = None) -> Tensor:
    """Summed cross-entropy of `features [N, H] @ weight [V, H].T (+ bias)` against `targets [N]`
    (IGNORE rows skipped), without building the [N, V] logits."""
    features = features.reshape(-1, features.size(-1))
    targets = targets.reshape(-1)
    rows = _rows_per_chunk(weight.size(0), features.device, chunk_rows)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (features, weight, bias))
    if needs_grad:
        return _LinearCrossEntropy.apply(features, weight, bias, targets, rows)
    total = torch.zeros((), dtype=torch.float32, device=features.device)
    matmul_weight = weight.to(features.dtype)
    for start in range(0, features.size(0), rows):
        logits = _chunk_logits(features[start:start + rows], matmul_weight, bias)
        total += _chunk_loss(logits, targets[start:start + rows])[0]
    return total
