"""Data parallelism through torch.distributed, started by `torchrun` (or any launcher that sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT). Without those variables every helper
is a no-op and the loop runs as a single process.

Design: every rank builds the same *global* batch (same blocks, same MLM mask: both are pure
functions of seed and step) and takes its own slice of rows. Losses are normalised by the global
target count, so N ranks compute exactly the update of one process with the same global batch,
and a run can resume on a different number of ranks.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


_joined_a_group = False


def init_distributed(device_type: str) -> DistInfo:
    global _joined_a_group
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    _joined_a_group = True
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def sum_across(info: DistInfo, value: torch.Tensor) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def end_rank_process(code: int) -> None:
    """End a process that joined a process group with `code`, skipping the interpreter's teardown.

    DDP keeps the process group alive after `destroy_process_group` (torch 2.13), so gloo's worker
    threads outlive the training code and may release a collective's tensor while the interpreter
    finalizes; taking the GIL then aborts the rank ("terminate called without an active
    exception", about 1 two-rank CPU run in 20), and torchrun reports a finished run as failed.
    By the time this runs, the run's files are written and closed."""
    if _joined_a_group:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
