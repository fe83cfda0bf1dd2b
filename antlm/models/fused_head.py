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


def _chunk_loss(logits: Tensor, targets: Tensor, z_loss: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    valid = targets != IGNORE
    safe = targets.clamp_min(0)
    log_norm = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = log_norm - picked
    if z_loss:
        loss = loss + z_loss * log_norm.square()
    return (loss * valid).sum(), log_norm, safe, valid


def _accumulate_grads(grad_logits: Tensor, rows: Tensor, start: int, matmul_weight: Tensor, grad_features: Optional[Tensor],
                      grad_weight: Optional[Tensor], grad_bias: Optional[Tensor]) -> None:
    """Turn one chunk's d loss / d logits into its share of the feature, weight and bias gradients."""
    if grad_bias is not None:
        grad_bias += grad_logits.sum(0)
    grad_logits = grad_logits.to(rows.dtype)
    if grad_features is not None:
        grad_features[start:start + rows.size(0)] = grad_logits @ matmul_weight
    if grad_weight is not None:
        grad_weight += (grad_logits.t() @ rows).float()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                chunk_rows: int, z_loss: float = 0.0) -> Tensor:
        want_features, want_weight, want_bias = ctx.needs_input_grad[:3]
        total = torch.zeros((), dtype=torch.float32, device=features.device)
        grad_features = torch.empty_like(features) if want_features else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if want_bias else None
        matmul_weight = weight.to(features.dtype)
        for start in range(0, features.size(0), chunk_rows):
            rows = features[start:start + chunk_rows]
            logits = _chunk_logits(rows, matmul_weight, bias)
            loss, log_norm, safe, valid = _chunk_loss(logits, targets[start:start + chunk_rows], z_loss)
            total += loss
            # d loss / d logits = softmax - one_hot(target), zero on ignored rows; made in place
            # in the logits buffer so the chunk needs no second [rows, V] allocation. The z-loss
            # z * lse^2 adds 2 z lse * softmax.
            grad_logits = logits.sub_(log_norm.unsqueeze(1)).exp_()
            if z_loss:
                grad_logits *= (1.0 + 2.0 * z_loss * log_norm).unsqueeze(1)
            grad_logits[torch.arange(rows.size(0), device=rows.device), safe] -= 1.0
            grad_logits *= valid.unsqueeze(1)
            _accumulate_grads(grad_logits, rows, start, matmul_weight, grad_features, grad_weight, grad_bias)
        ctx.save_for_backward(grad_features, grad_weight, grad_bias)
        ctx.dtypes = (features.dtype, weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grads = [None if g is None else (g * grad_output).to(dtype) for g, dtype in zip(ctx.saved_tensors, ctx.dtypes)]
        return (*grads, None, None, None)


def linear_cross_entropy(features: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                         chunk_rows: Optional[int] = None, z_loss: float = 0.0) -> Tensor:
    """Summed cross-entropy of `features [N, H] @ weight [V, H].T (+ bias)` against `targets [N]`
    (IGNORE rows skipped), without building the [N, V] logits; `z_loss` > 0 adds
    z_loss * logsumexp(logits)^2 per row (PaLM's z-loss)."""
    features = features.reshape(-1, features.size(-1))
    targets = targets.reshape(-1)
    rows = _rows_per_chunk(weight.size(0), features.device, chunk_rows)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (features, weight, bias))
    if needs_grad:
        return _LinearCrossEntropy.apply(features, weight, bias, targets, rows, z_loss)
    total = torch.zeros((), dtype=torch.float32, device=features.device)
    matmul_weight = weight.to(features.dtype)
    for start in range(0, features.size(0), rows):
        logits = _chunk_logits(features[start:start + rows], matmul_weight, bias)
        total += _chunk_loss(logits, targets[start:start + rows], z_loss)[0]
    return total


# ---------------------------------------------------------------------------------------------
# Distillation: cross-entropy plus KL to a teacher ensemble, chunk by chunk (issue: distillation).
#
# Per target row r, with student logits s, teacher logits t_k (k = 1..K) and temperature T:
#   loss_r = alpha * CE(s, y_r) + kl_weight * T^2 * KL(p || softmax(s / T))
# where p = softmax(mean_k t_k / T) ("logits", the BabyLlama reference) or mean_k softmax(t_k / T)
# ("probs"). kl_weight is (1 - alpha) for a per-token mean once the caller divides by the number
# of targets; the reference's KLDivLoss(reduction="batchmean") is (1 - alpha) * targets / sequences.
# d loss_r / d s = alpha * (softmax(s) - onehot(y)) + kl_weight * T * (softmax(s / T) - p).


def _teacher_probs(teachers, start: int, stop: int, temperature: float, weighting: str) -> Tensor:
    """p for rows [start, stop): teachers is a list of (features [N, H_k], weight [V, H_k], bias)."""
    if weighting == "logits":
        mean = sum(_chunk_logits(f[start:stop], w.to(f.dtype), b) for f, w, b in teachers) / len(teachers)
        return torch.softmax(mean / temperature, dim=-1)
    return sum(torch.softmax(_chunk_logits(f[start:stop], w.to(f.dtype), b) / temperature, dim=-1)
               for f, w, b in teachers) / len(teachers)


def _distill_chunk(logits: Tensor, targets: Tensor, probs: Tensor, alpha: float, kl_weight: float,
                   temperature: float, want_grad: bool) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    ce, log_norm, safe, valid = _chunk_loss(logits, targets)
    log_q = torch.log_softmax(logits / temperature, dim=-1)
    # xlogy: a teacher probability of exactly 0 contributes 0, as in KLDivLoss.
    kl_rows = (torch.xlogy(probs, probs) - probs * log_q).sum(-1)
    kl = (kl_rows * valid).sum()
    grad = None
    if want_grad:
        grad = alpha * (logits - log_norm.unsqueeze(1)).exp_()
        grad[torch.arange(logits.size(0), device=logits.device), safe] -= alpha
        grad += (kl_weight * temperature) * (log_q.exp_() - probs)
        grad *= valid.unsqueeze(1)
    return ce, kl, grad


class _LinearDistill(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, bias, targets, teachers, alpha, kl_weight, temperature, weighting, chunk_rows):
        want_features, want_weight, want_bias = ctx.needs_input_grad[:3]
        ce_total = torch.zeros((), dtype=torch.float32, device=features.device)
        kl_total = torch.zeros_like(ce_total)
        grad_features = torch.empty_like(features) if want_features else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if want_bias else None
        matmul_weight = weight.to(features.dtype)
        for start in range(0, features.size(0), chunk_rows):
            stop = min(start + chunk_rows, features.size(0))
            rows = features[start:stop]
            logits = _chunk_logits(rows, matmul_weight, bias)
            probs = _teacher_probs(teachers, start, stop, temperature, weighting)
            ce, kl, grad_logits = _distill_chunk(logits, targets[start:stop], probs, alpha, kl_weight, temperature, True)
            ce_total += ce
            kl_total += kl
            _accumulate_grads(grad_logits, rows, start, matmul_weight, grad_features, grad_weight, grad_bias)
        ctx.save_for_backward(grad_features, grad_weight, grad_bias)
        ctx.dtypes = (features.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.mark_non_differentiable(ce_total, kl_total)
        loss = alpha * ce_total + kl_weight * temperature ** 2 * kl_total
        return loss, ce_total, kl_total

    @staticmethod
    def backward(ctx, grad_output: Tensor, _grad_ce, _grad_kl):
        grads = [None if g is None else (g * grad_output).to(dtype) for g, dtype in zip(ctx.saved_tensors, ctx.dtypes)]
        return (*grads, None, None, None, None, None, None, None)


def linear_distill_loss(features: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                        teachers: list[tuple[Tensor, Tensor, Optional[Tensor]]], alpha: float, kl_weight: float,
                        temperature: float, weighting: str = "logits",
                        chunk_rows: Optional[int] = None) -> tuple[Tensor, Tensor, Tensor]:
    """`(loss, ce_sum, kl_sum)` summed over the non-IGNORE rows, where `loss = alpha * ce_sum +
    kl_weight * T^2 * kl_sum` (see the block comment above), without building [N, V] logits for the
    student or any teacher. `teachers`: one `(features [N, H_k], head weight [V, H_k], bias)` per
    teacher, read at the same rows as the student (no gradient flows into them)."""
    if weighting not in ("logits", "probs"):
        raise ValueError(f"weighting must be 'logits' or 'probs', got {weighting!r}")
    if not teachers:
        raise ValueError("linear_distill_loss needs at least one teacher")
    features = features.reshape(-1, features.size(-1))
    targets = targets.reshape(-1)
    teachers = [(f.detach().reshape(-1, f.size(-1)), w.detach(), None if b is None else b.detach()) for f, w, b in teachers]
    for f, w, _ in teachers:
        if f.size(0) != features.size(0) or w.size(0) != weight.size(0):
            raise ValueError(f"a teacher gives {f.size(0)} rows x {w.size(0)} vocab; the student {features.size(0)} x {weight.size(0)}")
    rows = _rows_per_chunk(weight.size(0), features.device, chunk_rows)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (features, weight, bias))
    if needs_grad:
        return _LinearDistill.apply(features, weight, bias, targets, teachers, alpha, kl_weight, temperature, weighting, rows)
    ce_total = torch.zeros((), dtype=torch.float32, device=features.device)
    kl_total = torch.zeros_like(ce_total)
    matmul_weight = weight.to(features.dtype)
    for start in range(0, features.size(0), rows):
        stop = min(start + rows, features.size(0))
        logits = _chunk_logits(features[start:stop], matmul_weight, bias)
        probs = _teacher_probs(teachers, start, stop, temperature, weighting)
        ce, kl, _ = _distill_chunk(logits, targets[start:stop], probs, alpha, kl_weight, temperature, False)
        ce_total += ce
        kl_total += kl
    return alpha * ce_total + kl_weight * temperature ** 2 * kl_total, ce_total, kl_total


def head_loss(features: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor, distill=None,
              z_loss: float = 0.0) -> Tensor:
    """The models' training loss at their head: summed cross-entropy (plus the z-loss), or with
    `distill` (antlm.distill.DistillInputs) the summed distillation loss."""
    if distill is None:
        return linear_cross_entropy(features, weight, bias, targets, z_loss=z_loss)
    if z_loss:
        raise ValueError("z_loss is not implemented with distillation")
    return linear_distill_loss(features, weight, bias, targets, distill.teachers, distill.alpha, distill.kl_weight,
                               distill.temperature, distill.weighting)[0]


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
