"""One optimizer step: the schedule's objective, the learning rate, the batch (split over ranks
and micro-batches), forward and backward, the gradient clip and the update, skipped when the loss
or a gradient is not finite. Everything else a step is followed by lives in the loop."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from antlm.objectives import Batch, fixed_shape, loss_sum
from antlm.train.optim import lr_at

if TYPE_CHECKING:
    from antlm.train.build import Run


@dataclass
class StepResult:
    objective: str
    lr: float
    loss: torch.Tensor  # this rank's loss sum over its micro-batches (a device scalar: no sync)
    bad: torch.Tensor  # True when the update was skipped (a device bool)
    tokens: int  # input tokens of the global batch
    num_targets: int
    seq_len: int


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    if parts == 1:
        return [batch]
    rows = batch.input_ids.size(0) // parts
    real = lambda sl: None if batch.attention_mask is None else batch.attention_mask[sl]  # noqa: E731
    if batch.target_mask is None:
        return [Batch("clm", batch.input_ids[sl], batch.targets[sl], None, True, attention_mask=real(sl))
                for sl in (slice(i * rows, (i + 1) * rows) for i in range(parts))]
    counts = batch.target_mask.sum(dim=1).tolist()
    out, start = [], 0
    for i in range(parts):
        n = sum(counts[i * rows:(i + 1) * rows])
        sl = slice(i * rows, (i + 1) * rows)
        out.append(Batch("mlm", batch.input_ids[sl], batch.targets[start:start + n], batch.target_mask[sl], False,
                         attention_mask=real(sl)))
        start += n
    return out


def train_step(run: "Run", step: int) -> StepResult:
    """Step `step` (0-based) of `run`."""
    cfg, info, optimizer = run.cfg, run.info, run.optimizer
    objective = run.schedule.objective_at(step)
    lr = lr_at(step, run.total, cfg.optim)
    for group in optimizer.param_groups:
        group["lr"] = lr
    selection = run.maker.select(step)
    stage = run.maker.stages[selection.stage]
    step_batch = len(selection)  # the stage's batch, or less under train.batch_warmup
    batch = run.maker.make(selection, objective, cfg.train.seed * 1_000_003 + step, step)
    # DDP averages gradients over ranks; scaling by the world size turns that into the sum of
    # per-rank losses, each already divided by the global number of targets.
    scale = info.world / max(1, batch.num_targets)  # a batch of only special tokens has no MLM targets
    if step + 1 in run.fault_steps:
        scale = scale * float("nan")
    parts = split_batch(split_batch(batch, info.world)[info.rank], max(1, step_batch // info.world // stage.micro))
    step_loss = torch.zeros((), device=run.device)
    for index, part in enumerate(parts):
        part = (fixed_shape(part, run.head_bucket) if cfg.train.compile else part).to(run.device)
        # Only the last micro-batch all-reduces gradients.
        with nullcontext() if not info.enabled or index == len(parts) - 1 else run.wrapped.no_sync():
            with run.autocast():
                distill = run.teachers.inputs(part, batch.num_targets, step_batch) if run.teachers else None
                loss = loss_sum(run.forward_model, part, distill, cfg.train.z_loss) * scale
            loss.backward()
        step_loss += loss.detach()
    # The gradient norm (after the all-reduce, so the same on every rank) is where a non-finite
    # loss or gradient shows; an infinite max_norm leaves the gradients bitwise unchanged.
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip or float("inf"))
    bad = ~torch.isfinite(grad_norm)
    if run.device_side_skip:
        # Fused AdamW reads `found_inf` and skips the update on the device: no host sync per step.
        optimizer.found_inf = bad.float()
        optimizer.step()
        if run.ema:
            run.ema.update(skipped=bad)
    elif bad.item():
        run.log(f"warning: non-finite loss or gradient at step {step + 1}; update skipped")
    else:
        optimizer.step()
        if run.ema:
            run.ema.update()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(objective, lr, step_loss, bad, batch.input_ids.numel(), batch.num_targets, stage.dataset.seq_len)
