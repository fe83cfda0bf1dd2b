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

from antlm.config import RunConfig, default_target_offset, to_dict
from antlm.data import tokenizer as tok_lib
from antlm.data.batches import BatchMaker, Selection, batch_sizes, build_stages  # noqa: F401 (re-exported)
from antlm.data.tokens import BlockDataset
from antlm.model_io import save_final
from antlm.models import build_model
from antlm.objectives import Batch, fixed_shape, loss_sum
from antlm.schedule import Schedule
from antlm.tracks import check_schedule, get_track, words_after
from antlm.train import checkpoint as ckpt
from antlm.train.distributed import DistInfo, barrier, init_distributed, shutdown, sum_across
from antlm.train.ema import WeightEma
from antlm.train.loggers import MetricsSinks, check_loggers
from antlm.train.optim import build_optimizer, lr_at
from antlm.train.series import Series
from antlm.train.setup import (
    RunError, claim_out_dir, lock_out_dir, prepare_data, prepare_out_dir, release_out_dir, run_info, write_run_files,
)

DEV_MASK_SEED = 1234


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RunError(f"unknown device '{name}' (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"device {name} requested but no CUDA device is available")
    return device


def place_token_store(cfg: RunConfig, data, device: torch.device, log: Callable) -> None:
    """Move the token stream (shared by the train and dev blocks when they come from one store) to
    the accelerator, so a step's batch is gathered and masked there with no host work or copy."""
    streams = {id(d.stream): d.stream for d in (data.train, data.dev)}
    size = sum(int(s.size) for s in streams.values()) * 4  # held as int32
    wanted = cfg.data.store_on_device
    if wanted is None:
        wanted = device.type == "cuda" and size < torch.cuda.mem_get_info(device)[0] // 4
    if not wanted:
        return
    moved = {key: torch.from_numpy(np.asarray(s, dtype=np.int32)).to(device) for key, s in streams.items()}
    for dataset in (data.train, data.dev):
        dataset.stream = moved[id(dataset.stream)]
    log(f"token store kept on {device} ({size / 2**20:.1f} MiB)")


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


def fault_injection_steps() -> set[int]:
    """Steps (1-based) whose loss is made NaN, from $ANTLM_FAULT_NAN_STEPS ("5,6"): the hook the
    reliability tests use to check that non-finite steps are skipped, then stop the run."""
    raw = os.environ.get("ANTLM_FAULT_NAN_STEPS", "")
    return {int(x) for x in raw.split(",") if x.strip().isdigit()}


def _rewrite_metrics(path: Path, up_to_step: int) -> None:
    """On resume, drop rows logged after the checkpoint: they will be logged again."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= up_to_step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line torn by a crash mid-write: it is after the checkpoint anyway
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


# Dense bf16 peaks (FLOP/s) for MFU; a device missing here logs no MFU rather than a guess.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12,
              "A10": 125e12, "L4": 121e12, "4090": 165e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_FLOPS.items() if key in name), None)


def train_flops_per_token(cfg: RunConfig, head_fraction: float, seq_len: int | None = None) -> float:
    """Forward+backward FLOPs per input token (3x forward): matmuls, the LM head at the fraction of
    positions that have targets, and attention scores/values (dense, as the kernels compute them)."""
    m = cfg.model
    # Attention: q, k, v, out projections; FFN: SwiGLU and GEGLU both have three h x ffn matrices.
    layer = 4 * m.hidden_size * m.hidden_size + 3 * m.hidden_size * m.ffn_size
    forward = 2 * m.num_layers * layer + 2 * m.vocab_size * m.hidden_size * head_fraction
    forward += 4 * m.num_layers * (seq_len or cfg.data.seq_len) * m.hidden_size
    return 3 * forward


def train(cfg: RunConfig, out: Path, resume: bool = False, force: bool = False, log: Callable = print) -> dict:
    """Run (or resume) a training run in `out`; under torchrun, every rank calls this."""
    out = Path(out)
    is_main = int(os.environ.get("RANK", "0")) == 0
    check_loggers(cfg.train.log_to)  # a missing optional package stops the run before it touches out/
    # An existing out dir is locked before it is inspected; a new one right after it is created.
    locks = [lock_out_dir(out)] if is_main and out.is_dir() else []
    try:
        cfg = prepare_out_dir(out, cfg, resume, force)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        device = pick_device(cfg.train.device)
        info = init_distributed(device.type)
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        try:
            return _train(cfg, out, resume, device, info, log if info.is_main else (lambda message: None), locks)
        finally:
            shutdown(info)
    finally:
        for lock in locks:
            release_out_dir(lock)


def _train(cfg: RunConfig, out: Path, resume: bool, device: torch.device, info: DistInfo, log: Callable, locks: list) -> dict:
    use_bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext

    # Rank 0 trains the tokenizer and builds the token store; the others then read them from the cache.
    if not info.is_main:
        barrier(info)
    data = prepare_data(cfg, out if resume else None, log)
    if info.is_main:
        barrier(info)
    vocab_size = data.tokenizer.get_vocab_size()
    cfg.model.vocab_size = vocab_size
    special = tok_lib.special_ids(data.tokenizer)
    batch_size = cfg.train.batch_size
    if batch_size % info.world:
        raise RunError(f"train.batch_size={batch_size} must divide evenly over {info.world} ranks")
    local_batch = batch_size // info.world
    micro = min(cfg.train.micro_batch_size or local_batch, local_batch)
    if local_batch % micro:
        raise RunError(f"train.micro_batch_size={micro} must divide the per-rank batch of {local_batch}")
    steps_per_epoch = len(data.train) // batch_size
    schedule = Schedule(cfg.schedule, steps_per_epoch, batch_size * cfg.data.seq_len)
    total = schedule.total_steps
    stop_at = min(total, cfg.train.max_steps or total)
    # Refused before the out dir is touched: the words-seen budget is known from the schedule.
    total_words = check_schedule(get_track(cfg.data.track), cfg.schedule, total, data.words, steps_per_epoch)
    series = Series(cfg, out, data.words, steps_per_epoch, total)
    stages = build_stages(cfg, data.train, total, info.world, micro)  # refused here, before out/ changes
    # Teachers are loaded and checked (vocabulary, phases they can serve) before the out dir changes.
    teachers = None
    if cfg.distill.teachers:
        from antlm.distill import TeacherEnsemble

        if cfg.train.z_loss:
            raise RunError("train.z_loss is not implemented with distillation: set train.z_loss=0 or no distill.teachers")
        if cfg.data.short_fraction:  # the teachers would attend to the padding
            raise RunError("data.short_fraction is not implemented with distillation: set data.short_fraction=0 or no distill.teachers")
        objectives = sorted({o for resolved in schedule.phases for o in resolved.phase.pattern})
        teachers = TeacherEnsemble(cfg.distill, data.tokenizer.get_vocab(), objectives, device,
                                   student_offset=default_target_offset(cfg.model.backbone) if cfg.mlm.target_offset is None
                                   else cfg.mlm.target_offset)
        log(f"distilling from {len(teachers.teachers)} teacher(s): alpha {cfg.distill.alpha}, T {cfg.distill.temperature}, "
            f"scale {cfg.distill.scale}, weighting {cfg.distill.weighting}")
    if info.is_main:
        claim_out_dir(out, resume)
        if not locks:
            locks.append(lock_out_dir(out))
        for lock in locks:
            lock.created_here = False  # the run has started: its lock file stays with it
        write_run_files(out, cfg, data.tokenizer, {**run_info(device), "world_size": info.world})

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    wrapped = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
    forward_model = torch.compile(wrapped, dynamic=False) if cfg.train.compile else wrapped
    head_bucket = max(64, micro * cfg.data.seq_len // 16)  # at most 16 MLM head shapes under compile
    place_token_store(cfg, data, device, log)
    for stage in stages:  # every length stage reads the stream where it now lies
        stage.dataset.stream = data.train.stream
    maker = BatchMaker(cfg, data.train, special, vocab_size, total, stages=stages, training=True)
    ema = WeightEma(model, cfg.train.ema_decay) if cfg.train.ema_decay else None
    averaged = ema.applied if ema else nullcontext  # what dev losses, word checkpoints and final/ use
    dev_maker = BatchMaker(cfg, data.dev, special, vocab_size, total)

    step = 0
    metrics_path = out / "metrics.jsonl"
    if resume:
        latest = ckpt.latest_valid(out / "checkpoints", log)
        if latest is not None:
            state = ckpt.load_checkpoint(latest, model, optimizer, ema)
            step = state["step"]
            log(f"resumed from {latest} at step {step}")
            if info.is_main:
                series.restore(state.get("word_checkpoints", {}), step)
        else:
            log("no valid checkpoint found; starting from step 0")
        if info.is_main:
            _rewrite_metrics(metrics_path, step)
            if step == 0:
                series.restore({}, 0)
    elif info.is_main:
        metrics_path.unlink(missing_ok=True)
        series.start()

    log(f"{cfg.model.backbone}: {sum(p.numel() for p in model.parameters()):,} parameters on {device}"
        f"{f' x {info.world} ranks' if info.enabled else ''}; {len(data.train):,} train blocks of {cfg.data.seq_len}, "
        f"{steps_per_epoch} steps/epoch, {total} steps: {schedule.describe()}")
    if len(maker.stages) > 1:
        log("length stages: " + ", ".join(f"{s.dataset.seq_len} tokens x {s.batch_size} from step {s.start} "
                                          f"({len(s.dataset):,} blocks)" for s in maker.stages))
    log(f"{data.words:,} corpus words, {total_words:,} words seen over the schedule"
        f"{f' (track {cfg.data.track})' if cfg.data.track != 'none' else ''}; {series.describe()}")
    progress = None
    if info.is_main and (cfg.train.progress or (cfg.train.progress is None and sys.stderr.isatty())):
        from tqdm import tqdm

        progress = tqdm(total=stop_at, initial=step, unit="step", dynamic_ncols=True)

    peak = peak_flops(device)
    metrics = MetricsSinks(out, cfg.train.log_to, to_dict(cfg), resume, log) if info.is_main else None
    # Without a progress bar, a line at least every progress_every_s tells a log reader the run lives.
    heartbeat_s = cfg.train.progress_every_s if progress is None and info.is_main else 0.0
    last_heartbeat = time.perf_counter()
    model.train()
    window_loss = torch.zeros((), device=device)
    window_good = torch.zeros((), dtype=torch.int32, device=device)
    bad_steps = torch.zeros((), dtype=torch.int32, device=device)
    device_side_skip = device.type == "cuda" and getattr(optimizer, "defaults", {}).get("fused", False)
    fault_steps = fault_injection_steps()
    window_steps, window_start, window_tokens, window_flops = 0, time.perf_counter(), 0, 0.0
    last_loss = float("nan")
    while step < stop_at:
        objective = schedule.objective_at(step)
        lr = lr_at(step, total, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        selection = maker.select(step)
        stage = maker.stages[selection.stage]
        step_batch = len(selection)  # the stage's batch, or less under train.batch_warmup
        batch = maker.make(selection, objective, cfg.train.seed * 1_000_003 + step, step)
        # DDP averages gradients over ranks; scaling by the world size turns that into the sum of
        # per-rank losses, each already divided by the global number of targets.
        scale = info.world / max(1, batch.num_targets)  # a batch of only special tokens has no MLM targets
        if step + 1 in fault_steps:
            scale = scale * float("nan")
        parts = split_batch(split_batch(batch, info.world)[info.rank], max(1, step_batch // info.world // stage.micro))
        step_loss = torch.zeros((), device=device)
        for index, part in enumerate(parts):
            part = (fixed_shape(part, head_bucket) if cfg.train.compile else part).to(device)
            # Only the last micro-batch all-reduces gradients.
            with nullcontext() if not info.enabled or index == len(parts) - 1 else wrapped.no_sync():
                with autocast():
                    distill = teachers.inputs(part, batch.num_targets, step_batch) if teachers else None
                    loss = loss_sum(forward_model, part, distill, cfg.train.z_loss) * scale
                loss.backward()
            step_loss += loss.detach()
        # The gradient norm (after the all-reduce, so the same on every rank) is where a non-finite
        # loss or gradient shows; an infinite max_norm leaves the gradients bitwise unchanged.
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
        bad = ~torch.isfinite(grad_norm)
        if device_side_skip:
            # Fused AdamW reads `found_inf` and skips the update on the device: no host sync per step.
            optimizer.found_inf = bad.float()
            optimizer.step()
            if ema:
                ema.update(skipped=bad)
        elif bad.item():
            log(f"warning: non-finite loss or gradient at step {step + 1}; update skipped")
        else:
            optimizer.step()
            if ema:
                ema.update()
        optimizer.zero_grad(set_to_none=True)
        bad_steps += bad.int()
        window_loss += torch.where(bad, 0.0, step_loss)
        window_good += (~bad).int()
        step += 1
        window_steps += 1
        window_tokens += batch.input_ids.numel()
        head_fraction = 1.0 if objective == "clm" else batch.num_targets / batch.input_ids.numel()
        window_flops += train_flops_per_token(cfg, head_fraction, stage.dataset.seq_len) * batch.input_ids.numel()
        if progress is not None:
            progress.update(1)
        if heartbeat_s and time.perf_counter() - last_heartbeat >= heartbeat_s:
            last_heartbeat = time.perf_counter()
            log(f"step {step}/{stop_at} ({100 * step / stop_at:.0f}%), phase {schedule.phases[schedule.phase_index(step - 1)].phase.text}"
                f" ({objective}), loss {step_loss.item():.4f} (this step)")

        last = step == stop_at
        if step % cfg.train.log_every == 0 or last or (not device_side_skip and bad_steps.item() > cfg.train.max_bad_steps):
            skipped = int(bad_steps.item())
            if skipped > cfg.train.max_bad_steps:
                if metrics:
                    metrics.close()
                raise RunError(f"{skipped} steps had a non-finite loss or gradient (train.max_bad_steps="
                               f"{cfg.train.max_bad_steps}); stopped at step {step}, checkpoints kept in {out / 'checkpoints'}")
            good = int(window_good.item())
            last_loss = (sum_across(info, window_loss) / max(1, good * info.world)).item() if good else float("nan")
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            row = {
                "split": "train", "step": step, "epoch": round(step / steps_per_epoch, 4),
                "phase": schedule.phases[schedule.phase_index(step - 1)].phase.text,
                "objective": objective, "loss": round(last_loss, 5), "lr": lr,
                "tokens": maker.tokens_before(step),
                "words_seen": words_after(step, data.words, steps_per_epoch),
                "tokens_per_s": round(window_tokens / elapsed, 1),
            }
            if good < window_steps:
                row["skipped_steps"] = window_steps - good
            if peak:
                row["mfu"] = round(window_flops / elapsed / (peak * info.world), 4)
            if metrics:
                metrics.write(row)
            if progress is not None:
                progress.set_postfix(obj=objective, loss=f"{last_loss:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
            window_loss.zero_()
            window_good.zero_()
            window_steps, window_tokens, window_flops, window_start = 0, 0, 0.0, time.perf_counter()
        if info.is_main and (step % cfg.train.eval_every == 0 or last):
            row = {"split": "dev", "step": step, "epoch": round(step / steps_per_epoch, 4),
                   "words_seen": words_after(step, data.words, steps_per_epoch)}
            with averaged():
                row.update(dev_losses(model, dev_maker, data.dev, cfg, device, autocast))
            metrics.write(row)
        if info.is_main and series.due(step):
            with averaged():
                series.after_step(step, model, data.tokenizer, log)
        if info.is_main and (step % cfg.train.checkpoint_every == 0 or last):
            ckpt.save_checkpoint(out / "checkpoints", step, model, optimizer, {
                "schedule": cfg.schedule, "world_size": info.world, "word_checkpoints": series.state()},
                ema.state_tensors() if ema else None)
            ckpt.prune(out / "checkpoints", cfg.train.keep_checkpoints)
    if metrics:
        metrics.close()
    if progress is not None:
        progress.close()
    finished_before = resume and step == total and (out / "final" / "config.json").is_file() and window_steps == 0
    if info.is_main and step >= total and not finished_before:
        with averaged():
            save_final(out / "final", model, cfg, data.tokenizer,
                       {"track": cfg.data.track, "words_seen": words_after(step, data.words, steps_per_epoch),
                        **({"ema_decay": cfg.train.ema_decay} if ema else {})})
    barrier(info)
    return {"steps": step, "total_steps": total, "final_loss": last_loss, "out": str(out), "finished": step >= total}
