"""The training loop: one `while` over optimizer steps. A run is built once (antlm/train/build.py);
each step is `train_step` (antlm/train/step.py) and `after_step` (logging, dev loss, word
checkpoints, checkpoint). The schedule decides each step's objective; the batch, its mask and the
learning rate are pure functions of (seed, step), and the checkpoint holds weights, optimizer
moments and RNG state, so a resumed run equals an uninterrupted one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from antlm.config_types import RunConfig
from antlm.model_io import save_final
from antlm.train import checkpoint as ckpt
from antlm.train.build import Run, build_run
from antlm.train.dev_loss import dev_losses
from antlm.train.device import pick_device
from antlm.train.distributed import barrier, init_distributed, shutdown
from antlm.train.loggers import check_loggers
from antlm.train.monitor import Monitor
from antlm.train.setup import OutDirLock, prepare_out_dir
from antlm.train.step import StepResult, train_step


def train(cfg: RunConfig, out: Path, resume: bool = False, force: bool = False, log: Callable = print) -> dict:
    """Run (or resume) a training run in `out`; under torchrun, every rank calls this."""
    out = Path(out)
    is_main = int(os.environ.get("RANK", "0")) == 0
    check_loggers(cfg.train.log_to)  # a missing optional package stops the run before it touches out/
    with OutDirLock(out, enabled=is_main) as lock:
        cfg = prepare_out_dir(out, cfg, resume, force)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        device = pick_device(cfg.train.device)
        info = init_distributed(device.type)
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        try:
            run = build_run(cfg, out, resume, device, info, log if info.is_main else (lambda message: None), lock)
            return _train(run, resume)
        finally:
            shutdown(info)


def _train(run: Run, resume: bool) -> dict:
    step = run.start_step
    monitor = Monitor(run, resume)
    run.model.train()
    while step < run.stop_at:
        result = train_step(run, step)
        step += 1
        after_step(run, monitor, step, result)
    monitor.close()
    # A resumed run that had already finished keeps its final/ as it is.
    finished_before = resume and step == run.total and (run.out / "final" / "config.json").is_file()
    if run.info.is_main and step >= run.total and not finished_before:
        with run.averaged():
            save_final(run.out / "final", run.model, run.cfg, run.data.tokenizer,
                       {"track": run.cfg.data.track, "words_seen": run.words_after(step),
                        **({"ema_decay": run.cfg.train.ema_decay} if run.ema else {})})
    barrier(run.info)
    return {"steps": step, "total_steps": run.total, "final_loss": monitor.last_loss, "out": str(run.out),
            "finished": step >= run.total}


def after_step(run: Run, monitor: Monitor, step: int, result: StepResult) -> None:
    """What follows step `step` (1-based), in order: the train row, the dev losses, a word
    checkpoint when words seen cross a milestone, and a training checkpoint. The last step does
    all of them."""
    cfg, is_main = run.cfg, run.info.is_main
    last = step == run.stop_at
    monitor.after_step(step, result, last)
    if is_main and (step % cfg.train.eval_every == 0 or last):
        row = {"split": "dev", "step": step, "epoch": round(step / run.steps_per_epoch, 4), "words_seen": run.words_after(step)}
        with run.averaged():
            row.update(dev_losses(run.model, run.dev_maker, run.data.dev, cfg, run.device, run.autocast))
        monitor.write(row)
    if is_main and run.series.due(step):
        with run.averaged():
            run.series.after_step(step, run.model, run.data.tokenizer, run.log)
    if is_main and (step % cfg.train.checkpoint_every == 0 or last):
        ckpt.save_checkpoint(run.out / "checkpoints", step, run.model, run.optimizer, {
            "schedule": cfg.schedule, "world_size": run.info.world, "word_checkpoints": run.series.state()},
            run.ema.state_tensors() if run.ema else None)
        ckpt.prune(run.out / "checkpoints", cfg.train.keep_checkpoints)
