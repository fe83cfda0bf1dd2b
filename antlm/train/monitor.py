"""What a reader of a run sees: the progress bar or heartbeat line, and the train rows of
metrics.jsonl (loss over the log window, tokens/s, MFU, skipped steps). Losses accumulate on the
device and are read at log intervals only, so a step costs no host sync."""
from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

import torch

from antlm.config_types import to_dict
from antlm.errors import RunError
from antlm.train.device import peak_flops, train_flops_per_token
from antlm.train.distributed import sum_across
from antlm.train.loggers import MetricsSinks
from antlm.train.step import StepResult

if TYPE_CHECKING:
    from antlm.train.build import Run


class Monitor:
    def __init__(self, run: "Run", resume: bool):
        cfg, info, device = run.cfg, run.info, run.device
        self.run = run
        self.progress = None
        if info.is_main and (cfg.train.progress or (cfg.train.progress is None and sys.stderr.isatty())):
            from tqdm import tqdm

            self.progress = tqdm(total=run.stop_at, initial=run.start_step, unit="step", dynamic_ncols=True)
        self.peak = peak_flops(device)
        self.metrics = MetricsSinks(run.out, cfg.train.log_to, to_dict(cfg), resume, run.log) if info.is_main else None
        # Without a progress bar, a line at least every progress_every_s tells a log reader the run lives.
        self.heartbeat_s = cfg.train.progress_every_s if self.progress is None and info.is_main else 0.0
        self.last_heartbeat = time.perf_counter()
        self.window_loss = torch.zeros((), device=device)
        self.window_good = torch.zeros((), dtype=torch.int32, device=device)
        self.bad_steps = torch.zeros((), dtype=torch.int32, device=device)
        self.window_steps, self.window_start, self.window_tokens, self.window_flops = 0, time.perf_counter(), 0, 0.0
        self.last_loss = math.nan

    def after_step(self, step: int, result: StepResult, last: bool) -> None:
        """Account step `step` (1-based, just taken); write a train row when one is due; stop the
        run once more than train.max_bad_steps steps were skipped."""
        run, cfg = self.run, self.run.cfg
        self.bad_steps += result.bad.int()
        self.window_loss += torch.where(result.bad, 0.0, result.loss)
        self.window_good += (~result.bad).int()
        self.window_steps += 1
        self.window_tokens += result.tokens
        head_fraction = 1.0 if result.objective == "clm" else result.num_targets / result.tokens
        self.window_flops += train_flops_per_token(cfg, head_fraction, result.seq_len) * result.tokens
        if self.progress is not None:
            self.progress.update(1)
        if self.heartbeat_s and time.perf_counter() - self.last_heartbeat >= self.heartbeat_s:
            self.last_heartbeat = time.perf_counter()
            run.log(f"step {step}/{run.stop_at} ({100 * step / run.stop_at:.0f}%), phase {run.phase_text(step)}"
                    f" ({result.objective}), loss {result.loss.item():.4f} (this step)")
        too_many = not run.device_side_skip and self.bad_steps.item() > cfg.train.max_bad_steps
        if step % cfg.train.log_every == 0 or last or too_many:
            self._log_window(step, result)

    def _log_window(self, step: int, result: StepResult) -> None:
        run, cfg = self.run, self.run.cfg
        skipped = int(self.bad_steps.item())
        if skipped > cfg.train.max_bad_steps:
            self.close_sinks()
            raise RunError(f"{skipped} steps had a non-finite loss or gradient (train.max_bad_steps="
                           f"{cfg.train.max_bad_steps}); stopped at step {step}, checkpoints kept in {run.out / 'checkpoints'}")
        good = int(self.window_good.item())
        self.last_loss = (sum_across(run.info, self.window_loss) / max(1, good * run.info.world)).item() if good else math.nan
        elapsed = max(time.perf_counter() - self.window_start, 1e-9)
        row = {
            "split": "train", "step": step, "epoch": round(step / run.steps_per_epoch, 4), "phase": run.phase_text(step),
            "objective": result.objective, "loss": round(self.last_loss, 5), "lr": result.lr,
            "tokens": run.maker.tokens_before(step), "words_seen": run.words_after(step),
            "tokens_per_s": round(self.window_tokens / elapsed, 1),
        }
        if good < self.window_steps:
            row["skipped_steps"] = self.window_steps - good
        if self.peak:
            row["mfu"] = round(self.window_flops / elapsed / (self.peak * run.info.world), 4)
        self.write(row)
        if self.progress is not None:
            self.progress.set_postfix(obj=result.objective, loss=f"{self.last_loss:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
        self.window_loss.zero_()
        self.window_good.zero_()
        self.window_steps, self.window_tokens, self.window_flops, self.window_start = 0, 0, 0.0, time.perf_counter()

    def write(self, row: dict) -> None:
        if self.metrics:
            self.metrics.write(row)

    def close_sinks(self) -> None:
        if self.metrics:
            self.metrics.close()

    def close(self) -> None:
        self.close_sinks()
        if self.progress is not None:
            self.progress.close()
