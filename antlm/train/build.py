"""A run, built once before its first step: data, schedule, word-checkpoint series, teachers,
model, optimizer, batch makers and the resume state. The loop (antlm/train/loop.py) then only
steps and records; nothing here runs per step."""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from antlm.config_types import RunConfig, default_target_offset
from antlm.data import tokenizer as tok_lib
from antlm.data.batches import BatchMaker, build_stages
from antlm.errors import RunError
from antlm.models import build_model
from antlm.schedule import Schedule
from antlm.tracks import check_schedule, get_track, words_after
from antlm.train import checkpoint as ckpt
from antlm.train.device import autocast_for, place_token_store
from antlm.train.distributed import DistInfo, barrier
from antlm.train.ema import WeightEma
from antlm.train.optim import build_optimizer
from antlm.train.series import Series
from antlm.train.setup import OutDirLock, RunData, claim_out_dir, prepare_data, rewrite_metrics, run_info, write_run_files


@dataclass
class Run:
    """Everything the loop reads. `model` is the bare module (checkpoints, EMA, dev loss);
    `wrapped` adds DDP (its `no_sync`), `forward_model` also `torch.compile` (the training forward)."""
    cfg: RunConfig
    out: Path
    info: DistInfo
    device: torch.device
    log: Callable
    autocast: Callable
    data: RunData
    schedule: Schedule
    steps_per_epoch: int
    stop_at: int
    series: Series
    teachers: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    wrapped: torch.nn.Module
    forward_model: torch.nn.Module
    head_bucket: int
    maker: BatchMaker
    dev_maker: BatchMaker
    ema: Optional[WeightEma]
    start_step: int = 0
    fault_steps: set = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.schedule.total_steps

    @property
    def device_side_skip(self) -> bool:
        """Fused AdamW on CUDA skips a non-finite update on the device: no host sync per step."""
        return self.device.type == "cuda" and getattr(self.optimizer, "defaults", {}).get("fused", False)

    def averaged(self):
        """The weights dev losses, word checkpoints and final/ use: the EMA when there is one."""
        return self.ema.applied() if self.ema else nullcontext()

    def words_after(self, step: int) -> int:
        return words_after(step, self.data.words, self.steps_per_epoch)

    def phase_text(self, step: int) -> str:
        """The phase of the step that has just run (steps count from 1 here)."""
        return self.schedule.phases[self.schedule.phase_index(step - 1)].phase.text


def fault_injection_steps() -> set[int]:
    """Steps (1-based) whose loss is made NaN, from $ANTLM_FAULT_NAN_STEPS ("5,6"): the hook the
    reliability tests use to check that non-finite steps are skipped, then stop the run."""
    raw = os.environ.get("ANTLM_FAULT_NAN_STEPS", "")
    return {int(x) for x in raw.split(",") if x.strip().isdigit()}


def _load_teachers(cfg: RunConfig, schedule: Schedule, tokenizer, device: torch.device, log: Callable):
    """Teachers are loaded and checked (vocabulary, phases they can serve) before the out dir changes."""
    if not cfg.distill.teachers:
        return None
    from antlm.distill import TeacherEnsemble  # transformers only when a run distills

    objectives = sorted({o for resolved in schedule.phases for o in resolved.phase.pattern})
    offset = default_target_offset(cfg.model.backbone) if cfg.mlm.target_offset is None else cfg.mlm.target_offset
    teachers = TeacherEnsemble(cfg.distill, tokenizer.get_vocab(), objectives, device, student_offset=offset)
    log(f"distilling from {len(teachers.teachers)} teacher(s): alpha {cfg.distill.alpha}, T {cfg.distill.temperature}, "
        f"scale {cfg.distill.scale}, weighting {cfg.distill.weighting}")
    return teachers


def build_run(cfg: RunConfig, out: Path, resume: bool, device: torch.device, info: DistInfo, log: Callable,
              lock: OutDirLock) -> Run:
    """Check everything that can be refused, then claim the out dir and build the run. The order of
    the random draws (model init, then whatever the optimizer and wrappers draw) is part of what a
    golden run pins: keep it."""
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
    schedule = Schedule(cfg.schedule, steps_per_epoch, batch_size * cfg.data.seq_len, cfg.schedule_rounding)
    total = schedule.total_steps
    # Refused before the out dir is touched: the words-seen budget is known from the schedule.
    total_words = check_schedule(get_track(cfg.data.track), cfg.schedule, total, data.words, steps_per_epoch)
    series = Series(cfg, out, data.words, steps_per_epoch, total)
    stages = build_stages(cfg, data.train, total, info.world, micro)  # refused here, before out/ changes
    teachers = _load_teachers(cfg, schedule, data.tokenizer, device, log)
    if info.is_main:
        claim_out_dir(out, resume)
        lock.started()
        write_run_files(out, cfg, data.tokenizer, {**run_info(device), "world_size": info.world})

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(device)
    optimizer = build_optimizer(model, cfg.optim, device)
    wrapped = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
    place_token_store(cfg, data, device, log)
    for stage in stages:  # every length stage reads the stream where it now lies
        stage.dataset.stream = data.train.stream
    run = Run(
        cfg=cfg, out=out, info=info, device=device, log=log, autocast=autocast_for(cfg.train.precision, device),
        data=data, schedule=schedule, steps_per_epoch=steps_per_epoch, stop_at=min(total, cfg.train.max_steps or total),
        series=series, teachers=teachers, model=model, optimizer=optimizer, wrapped=wrapped,
        forward_model=torch.compile(wrapped, dynamic=False) if cfg.train.compile else wrapped,
        head_bucket=max(64, micro * cfg.data.seq_len // 16),  # at most 16 MLM head shapes under compile
        maker=BatchMaker(cfg, data.train, special, vocab_size, total, stages=stages, training=True),
        dev_maker=BatchMaker(cfg, data.dev, special, vocab_size, total),
        ema=WeightEma(model, cfg.train.ema_decay) if cfg.train.ema_decay else None,
        fault_steps=fault_injection_steps(),
    )
    run.start_step = _restore(run, resume)
    _describe(run, total_words)
    return run


def _restore(run: Run, resume: bool) -> int:
    """The step to start from: the newest valid checkpoint's on --resume (weights, optimizer, EMA,
    RNG and the series restored), else 0. Metrics logged after that step are dropped."""
    info, out, log = run.info, run.out, run.log
    step = 0
    metrics_path = out / "metrics.jsonl"
    if resume:
        latest = ckpt.latest_valid(out / "checkpoints", log)
        if latest is not None:
            state = ckpt.load_checkpoint(latest, run.model, run.optimizer, run.ema)
            step = state["step"]
            log(f"resumed from {latest} at step {step}")
            if info.is_main:
                run.series.restore(state.get("word_checkpoints", {}), step)
        else:
            log("no valid checkpoint found; starting from step 0")
        if info.is_main:
            rewrite_metrics(metrics_path, step)
            if step == 0:
                run.series.restore({}, 0)
    elif info.is_main:
        metrics_path.unlink(missing_ok=True)
        run.series.start()
    return step


def _describe(run: Run, total_words: int) -> None:
    cfg, info, data, log = run.cfg, run.info, run.data, run.log
    log(f"{cfg.model.backbone}: {sum(p.numel() for p in run.model.parameters()):,} parameters on {run.device}"
        f"{f' x {info.world} ranks' if info.enabled else ''}; {len(data.train):,} train blocks of {cfg.data.seq_len}, "
        f"{run.steps_per_epoch} steps/epoch, {run.total} steps: {run.schedule.describe()}")
    if len(run.maker.stages) > 1:
        log("length stages: " + ", ".join(f"{s.dataset.seq_len} tokens x {s.batch_size} from step {s.start} "
                                          f"({len(s.dataset):,} blocks)" for s in run.maker.stages))
    log(f"{data.words:,} corpus words, {total_words:,} words seen over the schedule"
        f"{f' (track {cfg.data.track})' if cfg.data.track != 'none' else ''}; {run.series.describe()}")
