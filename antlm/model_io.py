"""The `final/` layout and `load_model`: weights in safetensors, a JSON config that names the
backbone and the MLM target offset, and the tokenizer. Nothing here unpickles."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors_model
from safetensors.torch import save_model as save_safetensors_model
from tokenizers import Tokenizer

from antlm.atomic import WriteError, replace_dir
from antlm.config import upgrade_model_section
from antlm.config_types import ModelConfig, RunConfig, default_target_offset, to_dict
from antlm.data import tokenizer as tok_lib
from antlm.errors import UserError
from antlm.models import build_model

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelMeta:
    """What a model's config.json says beside its weights; `load_model` attaches it to the model as
    `model.antlm_meta`. `raw` is the file as read (keys a later antlm may add)."""
    backbone: str
    mlm_target_offset: int
    """0: a masked position predicts its own token; 1: the next one (MNTP)."""
    model: ModelConfig
    defaults_version: int = 1
    schedule: Optional[str] = None
    special_tokens: dict = field(default_factory=dict)
    track: Optional[str] = None
    words_seen: Optional[int] = None
    ema_decay: Optional[float] = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> "ModelMeta":
        """Raises KeyError or TypeError when `data` is not an antlm model config."""
        version = data.get("defaults_version", 1)
        # A config.json without defaults_version predates the reference defaults: the keys it
        # lacks take the values that antlm used then, so the weights mean what they meant.
        model = ModelConfig(**upgrade_model_section(data["model"], version))
        backbone = data.get("backbone", model.backbone)
        offset = data.get("mlm_target_offset")
        return cls(backbone=backbone, mlm_target_offset=default_target_offset(backbone) if offset is None else int(offset),
                   model=model, defaults_version=version, schedule=data.get("schedule"),
                   special_tokens=dict(data.get("special_tokens") or {}), track=data.get("track"),
                   words_seen=data.get("words_seen"), ema_decay=data.get("ema_decay"), raw=dict(data))


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
    try:
        with replace_dir(directory) as tmp:
            save_safetensors_model(model, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps({**model_config_json(cfg, tokenizer), **(extra or {})}, indent=1))
            tokenizer.save(str(tmp / "tokenizer.json"))
    except WriteError as err:
        raise UserError(f"could not write {directory}: {err.reason}; the run's checkpoints are "
                        "untouched: free space or fix permissions, then --resume") from None


def _final_dir(path: Path) -> Path:
    if (path / "final" / "config.json").is_file():
        return path / "final"
    if (path / "config.json").is_file():
        return path
    raise UserError(f"{path} is neither an antlm run directory with final/ nor a final/ directory")


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Load a trained model and its tokenizer from a run dir or its `final/`.

    Returns (model in eval mode, tokenizers.Tokenizer); `model.antlm_meta` is its ModelMeta.
    """
    directory = _final_dir(Path(path))
    try:
        meta = ModelMeta.from_json(json.loads((directory / "config.json").read_text()))
        model_cfg = meta.model
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
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
    model.antlm_meta = meta
    return model.to(device).eval(), tokenizer
