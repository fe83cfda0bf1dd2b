"""The device a run uses, its precision, where its token store lies, and what its work costs in
FLOPs (for MFU): the parts of a run that depend on the hardware, kept out of the loop."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch

from antlm.config_types import RunConfig
from antlm.errors import RunError


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


def autocast_for(precision: str, device: torch.device) -> Callable:
    """A factory of the context that forward passes run under: bf16 autocast, or nothing (fp32)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


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
