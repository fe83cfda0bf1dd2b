"""The training loop: one `while` over optimizer steps. The schedule decides each step's objective;
the batch, its mask and the learning rate are pure functions of (seed, step), and the checkpoint
holds weights, optimizer moments and RNG state, so a resumed run equals an uninterrupted one."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from antlm.config import RunConfig, default_target_offset
from antlm.data import tokenizer as tok_lib
from antlm.data.tokens import BlockDataset
from antlm.model_io import save_final
from antlm.models import build_model
from antlm.objectives import Batch, clm_batch, loss_sum, mask_rate_at, mlm_batch
from antlm.schedule import Schedule
from antlm.train import checkpoint as ckpt
from antlm.train.optim import build_optimizer, lr_at
from antlm.train.setup import RunError, claim_out_dir, prepare_data, prepare_out_dir, run_info, write_run_files

DEV_MASK_SEED = 1234


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"train.device={name} but no CUDA device is available")
    return device


class BatchMaker:
    """Builds the global batch of a step; masks come from a generator seeded by (seed, step)."""

    def __init__(self, cfg: RunConfig, dataset: BlockDataset, special: dict, vocab_size: int, total_steps: int):
        self.cfg, self.dataset, self.special, self.vocab_size = cfg, dataset, special, vocab_size
        self.total_steps = total_steps
        self.offset = cfg.mlm.target_offset if cfg.mlm.target_offset is not None else default_target_offset(cfg.model.backbone)

    def positions(self, step: int, batch_size: int, steps_per_epoch: int) -> np.ndarray:
        epoch, index = divmod(step, steps_per_epoch)
        return self.dataset.order(self.cfg.train.seed, epoch)[index * batch_size:(index + 1) * batch_size]

    def make(self, positions: np.ndarray, objective: str, mask_seed: int, step: int) -> Batch:
        inputs, targets = (torch.from_numpy(a) for a in self.dataset.blocks(positions))
        if objective == "clm":
            return clm_batch(inputs, targets)
        generator = torch.Generator().manual_seed(mask_seed)
        return mlm_batch(
            inputs, targets, self.cfg.mlm, self.cfg.model.backbone, self.offset,
            mask_rate_at(self.cfg.mlm, step, self.total_steps), self.special["mask"],
            len(tok_lib.SPECIAL_TOKENS), self.vocab_size, generator,
        )


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    if parts == 1:
        return [batch]
    rows = batch.input_ids.size(0) // parts
    if batch.target_mask is None:
        return [clm_batch(batch.input_ids[i * rows:(i + 1) * rows], batch.targets[i * rows:(i + 1) * rows]) for i in range(parts)]
    counts = batch.target_mask.sum(dim=1).tolist()
    out, start = [], 0
    for i in range(parts):
        n = sum(counts[i * rows:(i + 1) * rows])
        sl = slice(i * rows, (i + 1) * rows)
        out.append(Batch("mlm", batch.input_ids[sl], batch.targets[start:start + n], batch.target_mask[sl], False))
        start += n
    return out


@torch.no_grad()
def dev_losses(model, maker: BatchMaker, dev: BlockDataset, cfg: RunConfig, device, autocast) -> dict:
    """Dev loss of BOTH objectives on fixed blocks and fixed masks, whatever the phase."""
    if len(dev) == 0:
        return {}
    was_training = model.training
    model.eval()
    batch_size = min(cfg.train.micro_batch_size or cfg.train.batch_size, len(dev))
    n_batches = max(1, min(cfg.train.eval_batches, len(dev) // batch_size))
    # Spread the evaluated blocks over the whole dev set: corpus files are concatenated in order,
    # so the first blocks would all come from one source.
    spread = np.linspace(0, len(dev) - 1, n_batches * batch_size).round().astype(np.int64)
    result = {}
    for objective in ("clm", "mlm"):
        total, count = 0.0, 0
        for i in range(n_batches):
            positions = spread[i * batch_size:(i + 1) * batch_size]
            batch = maker.make(positions, objective, DEV_MASK_SEED + i, step=0).to(device)
            with autocast():
                total += loss_sum(model, batch).item()
            count += batch.num_targets
        result[f"dev_{objective}_loss"] = round(total / max(1, count), 5)
    model.train(was_training)
    return result


def _rewrite_metrics(path: Path, up_to_step: int) -> None:
    """On resume, drop rows logged after the checkpoint: they will be logged again."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= up_to_step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


def train(cfg: RunConfig, out: Path, resume: bool = False, force: bool = False, log: Callable = print) -> dict:
    out = Path(out)
    cfg = prepare_out_dir(out, cfg, resume, force)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
    use_bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext

    data = prepare_data(cfg, out if resume else None, log)
    vocab_size = data.tokenizer.get_vocab_size()
    cfg.model.vocab_size = vocab_size
    special = tok_lib.special_ids(data.tokenizer)
    batch_size = cfg.train.batch_size
    micro = cfg.train.micro_batch_size or batch_size
    steps_per_epoch = len(data.train) // batch_size
    schedule = Schedule(cfg.schedule, steps_per_epoch, batch_size * cfg.data.seq_len)
    total = schedule.total_steps
    stop_at = min(total, cfg.train.max_steps or total)
    claim_out_dir(out, resume)
    write_run_files(out, cfg, data.tokenizer, run_info(device))

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    forward_model = torch.compile(model) if cfg.train.compile else model
    maker = BatchMaker(cfg, data.train, special, vocab_size, total)
    dev_maker = BatchMaker(cfg, data.dev, special, vocab_size, total)

    step = 0
    metrics_path = out / "metrics.jsonl"
    if resume:
        latest = ckpt.latest_valid(out / "checkpoints", log)
        if latest is not None:
            step = ckpt.load_checkpoint(latest, model, optimizer)["step"]
            log(f"resumed from {latest} at step {step}")
        else:
            log("no valid checkpoint found; starting from step 0")
        _rewrite_metrics(metrics_path, step)
    elif metrics_path.exists():
        metrics_path.unlink()

    log(f"{cfg.model.backbone}: {sum(p.numel() for p in model.parameters()):,} parameters on {device}; "
        f"{len(data.train):,} train blocks of {cfg.data.seq_len}, {steps_per_epoch} steps/epoch, {total} steps: {schedule.describe()}")
    progress = None
    if cfg.train.progress or (cfg.train.progress is None and sys.stderr.isatty()):
        from tqdm import tqdm

        progress = tqdm(total=stop_at, initial=step, unit="step", dynamic_ncols=True)

    metrics = open(metrics_path, "a")
    model.train()
    window_loss = torch.zeros((), device=device)
    window_steps, window_start, window_tokens = 0, time.perf_counter(), 0
    last_loss = float("nan")
    while step < stop_at:
        objective = schedule.objective_at(step)
        lr = lr_at(step, total, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        positions = maker.positions(step, batch_size, steps_per_epoch)
        batch = maker.make(positions, objective, cfg.train.seed * 1_000_003 + step, step)
        global_targets = batch.num_targets
        for part in split_batch(batch, batch_size // micro):
            part = part.to(device)
            with autocast():
                loss = loss_sum(forward_model, part) / global_targets
            loss.backward()
            window_loss += loss.detach()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_steps += 1
        window_tokens += batch.input_ids.numel()
        if progress is not None:
            progress.update(1)

        last = step == stop_at
        if step % cfg.train.log_every == 0 or last:
            last_loss = (window_loss / window_steps).item()
            if not math.isfinite(last_loss):
                metrics.close()
                raise RunError(f"loss became {last_loss} at step {step}; the last checkpoint is kept in {out / 'checkpoints'}")
            elapsed = time.perf_counter() - window_start
            row = {
                "split": "train", "step": step, "epoch": round(step / steps_per_epoch, 4),
                "phase": schedule.phases[schedule.phase_index(step - 1)].phase.text,
                "objective": objective, "loss": round(last_loss, 5), "lr": lr,
                "tokens": step * batch_size * cfg.data.seq_len,
                "tokens_per_s": round(window_tokens / max(elapsed, 1e-9), 1),
            }
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            if progress is not None:
                progress.set_postfix(obj=objective, loss=f"{last_loss:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
            window_loss.zero_()
            window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
        if step % cfg.train.eval_every == 0 or last:
            row = {"split": "dev", "step": step, "epoch": round(step / steps_per_epoch, 4)}
            row.update(dev_losses(model, dev_maker, data.dev, cfg, device, autocast))
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
        if step % cfg.train.checkpoint_every == 0 or last:
            ckpt.save_checkpoint(out / "checkpoints", step, model, optimizer, {"schedule": cfg.schedule})
            ckpt.prune(out / "checkpoints", cfg.train.keep_checkpoints)
    metrics.close()
    if progress is not None:
        progress.close()
    finished_before = resume and step == total and (out / "final" / "config.json").is_file() and window_steps == 0
    if step >= total and not finished_before:
        save_final(out / "final", model, cfg, data.tokenizer)
    return {"steps": step, "total_steps": total, "final_loss": last_loss, "out": str(out), "finished": step >= total}
