"""Where training metrics go: `train.log_to` names any of `jsonl`, `tensorboard`, `wandb`.

Every sink gets the same rows under the same names (`train/loss`, `dev/dev_clm_loss`, ... with the
step as x-axis), so a curve in TensorBoard or W&B is the `metrics.jsonl` column of that name.
`metrics.jsonl` stays the record antlm itself reads (resume, report); the others are views.
W&B runs offline only: nothing here may reach the network (`wandb sync DIR/wandb/...` uploads later).
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable

from antlm.errors import UserError

LOGGERS = ("jsonl", "tensorboard", "wandb")
# Keys that label a row rather than measure something; they are not plotted.
_LABELS = ("split", "step", "phase", "objective")


def check_loggers(names: list[str]) -> None:
    """Refuse unknown names and missing optional packages before any training starts."""
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"train.log_to: unknown logger '{name}' (choose from {', '.join(LOGGERS)})")
    if "tensorboard" in names:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        except ImportError:
            raise UserError("train.log_to has tensorboard, which needs its package: pip install 'antlm[tensorboard]'") from None
    if "wandb" in names:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError("train.log_to has wandb, which needs its package: pip install 'antlm[wandb]'") from None


def scalars(row: dict) -> dict[str, float]:
    """A metrics row as `split/name` scalars, the names every non-jsonl sink uses."""
    prefix = row.get("split", "train")
    return {f"{prefix}/{key}": float(value) for key, value in row.items()
            if key not in _LABELS and isinstance(value, (int, float)) and not isinstance(value, bool)}


class MetricsSinks:
    """Writes each row to every configured sink; `metrics.jsonl` is always written (antlm reads it)."""

    def __init__(self, out: Path, names: list[str], config: dict, resume: bool, log: Callable = print):
        check_loggers(names)
        self.jsonl = open(out / "metrics.jsonl", "a")
        self.tensorboard = self.wandb_run = None
        if "tensorboard" in names:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run appends an event file; TensorBoard merges them by step.
            self.tensorboard = SummaryWriter(log_dir=str(out / "tensorboard"))
        if "wandb" in names:
            self.wandb_run = _start_wandb(out, config, resume)
        self._log = log

    def write(self, row: dict[str, Any]) -> None:
        self.jsonl.write(json.dumps(row) + "\n")
        self.jsonl.flush()
        values = scalars(row)
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(key, value, global_step=row["step"])
            self.tensorboard.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(values, step=row["step"])

    def close(self) -> None:
        self.jsonl.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
        self.tensorboard = self.wandb_run = None


def _start_wandb(out: Path, config: dict, resume: bool):
    import wandb

    # Offline, whatever the user's environment says: a training run must not wait on a network.
    os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    run_id_file = out / "wandb_run_id"
    run_id = run_id_file.read_text().strip() if resume and run_id_file.is_file() else uuid.uuid4().hex[:8]
    run_id_file.write_text(run_id + "\n")
    return wandb.init(mode="offline", dir=str(out), id=run_id, resume="allow" if resume else None,
                      project=os.environ.get("WANDB_PROJECT", "antlm"), name=out.name, config=config,
                      settings=wandb.Settings(console="off", x_disable_stats=True))
