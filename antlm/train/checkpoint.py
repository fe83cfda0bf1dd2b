"""Checkpoints that resume exactly and never unpickle anything.

Layout: `checkpoints/step_00001234/` with `model.safetensors`, `trainer.safetensors` (optimizer
moments and RNG states), `state.json` (step, optimizer hyper-parameters, config) and, written
last, `manifest.json` with the SHA-256 of every file. A directory is built under a temporary
name and renamed into place, so a kill leaves either a complete checkpoint or an ignored
temporary; a checkpoint whose manifest is missing or does not match is never loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from antlm.atomic import WriteError, replace_dir
from antlm.errors import UserError

PREFIX = "step_"
FILES = ("model.safetensors", "trainer.safetensors", "state.json")


class CheckpointError(UserError):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = tensor.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, param_groups: list) -> None:
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def save_checkpoint(
    root: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
    extra_tensors: Optional[dict] = None,
) -> Path:
    """`extra_tensors` (the weight EMA's, names prefixed) are stored in trainer.safetensors."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    try:
        # Durable: every file and the rename reach the disk before the run goes on.
        with replace_dir(final, durable=True, tmp=root / f".tmp-{final.name}-{os.getpid()}") as tmp:
            _write_checkpoint(tmp, model, optimizer, {**state, "step": step}, extra_tensors or {})
    except WriteError as err:
        # Disk full or permissions changed under a running job: the partial copy is gone (it holds
        # no space); stop with what is still safe to resume from.
        older = [p.name for p in list_checkpoints(root) if p != final]
        kept = f"the newest earlier checkpoint, {older[-1]}, is untouched" if older else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint {final}: {err.reason}; {kept}; "
                              "free space or fix permissions, then --resume") from None
    return final


def _write_checkpoint(tmp: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                      extra_tensors: dict) -> None:
    save_model(model, str(tmp / "model.safetensors"))
    tensors, param_groups = _optimizer_tensors(optimizer)
    tensors.update(extra_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(tmp / "trainer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "param_groups": param_groups}, indent=1))
    (tmp / "manifest.json").write_text(json.dumps({name: _sha256(tmp / name) for name in FILES}, indent=1))


def verify(path: Path) -> Optional[str]:
    """None when the checkpoint is complete and intact, else the reason it is not."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        return f"{manifest_path} is missing (incomplete checkpoint)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{manifest_path} is not valid JSON"
    for name in FILES:
        file = path / name
        if not file.is_file():
            return f"{file} is missing"
        if manifest.get(name) != _sha256(file):
            return f"{file} does not match its checksum (truncated or altered)"
    return None


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def latest_valid(root: Path, log=print) -> Optional[Path]:
    """The newest checkpoint that verifies; damaged newer ones are reported and skipped."""
    for path in reversed(list_checkpoints(root)):
        problem = verify(path)
        if problem is None:
            return path
        log(f"warning: skipping damaged checkpoint: {problem}")
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema=None) -> dict:
    """Restores model, optimizer, RNG and, given `ema` (antlm.train.ema.WeightEma), its average."""
    problem = verify(path)
    if problem:
        raise CheckpointError(problem)
    load_model(model, str(path / "model.safetensors"), device=str(next(model.parameters()).device))
    tensors = load_file(str(path / "trainer.safetensors"))
    state = json.loads((path / "state.json").read_text())
    if ema is not None:
        try:
            ema.load_state_tensors(tensors)
        except KeyError as err:
            raise CheckpointError(f"{path}: {err.args[0]}") from None
        tensors = {k: v for k, v in tensors.items() if not k.startswith("ema.")}
    _restore_optimizer(optimizer, tensors, state.pop("param_groups"))
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return state


def prune(root: Path, keep: int) -> None:
    for path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
