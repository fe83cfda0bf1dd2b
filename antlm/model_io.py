"""The `final/` layout and `load_model`: weights in safetensors, a JSON config that names the
backbone and the MLM target offset, and the tokenizer. Nothing here unpickles."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors_model
from safetensors.torch import save_model as save_safetensors_model
from tokenizers import Tokenizer

from antlm.config import ModelConfig, RunConfig, default_target_offset, to_dict, upgrade_model_section
from antlm.data import tokenizer as tok_lib
from antlm.errors import UserError
from antlm.models import build_model

FORMAT_VERSION = 1


def model_config_json(cfg: RunConfig, tokenizer: Tokenizer) -> dict:
    offset = cfg.mlm.target_offset if cfg.mlm.target_offset is not None else default_target_offset(cfg.model.backbone)
    return {
        "format": "antlm", "format_version": FORMAT_VERSION, "defaults_version": cfg.defaults_version,
        "backbone": cfg.model.backbone,
        "mlm_target_offset": offset, "schedule": cfg.schedule, "model": to_dict(cfg)["model"],
        "special_tokens": tok_lib.special_ids(tokenizer),
    }


def save_final(directory: Path, model: torch.nn.Module, cfg: RunConfig, tokenizer: Tokenizer,
               extra: dict | None = None) -> None:
    """`extra` adds run facts to config.json (the trainer records the track and words seen)."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_safetensors_model(model, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({**model_config_json(cfg, tokenizer), **(extra or {})}, indent=1))
        tokenizer.save(str(tmp / "tokenizer.json"))
        if directory.exists():
            shutil.rmtree(directory)
        os.rename(tmp, directory)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"could not write {directory}: {err.strerror or err}; the run's checkpoints are "
                        "untouched: free space or fix permissions, then --resume") from None


def _final_dir(path: Path) -> Path:
    if (path / "final" / "config.json").is_file():
        return path / "final"
    if (path / "config.json").is_file():
        return path
    raise UserError(f"{path} is neither an antlm run directory with final/ nor a final/ directory")


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Load a trained model and its tokenizer from a run dir or its `final/`.

    Returns (model in eval mode, tokenizers.Tokenizer); `model.antlm_config` holds config.json.
    """
    directory = _final_dir(Path(path))
    try:
        meta = json.loads((directory / "config.json").read_text())
        # A config.json without defaults_version predates the reference defaults: the keys it
        # lacks take the values that antlm used then, so the weights mean what they meant.
        model_cfg = ModelConfig(**upgrade_model_section(meta["model"], meta.get("defaults_version", 1)))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(f"{directory / 'config.json'} is not an antlm model config ({err})") from None
    tokenizer = tok_lib.load_tokenizer(directory / "tokenizer.json")
    if tokenizer.get_vocab_size() != model_cfg.vocab_size:
        raise UserError(
            f"tokenizer in {directory} has {tokenizer.get_vocab_size()} tokens but the model expects {model_cfg.vocab_size}"
        )
    model = build_model(model_cfg)
    try:
        load_safetensors_model(model, str(directory / "model.safetensors"))
    except (OSError, RuntimeError, SafetensorError) as err:
        raise UserError(f"cannot load {directory / 'model.safetensors'}: {(str(err) or type(err).__name__).splitlines()[0]}") from None
    model.antlm_config = meta
    return model.to(device).eval(), tokenizer
