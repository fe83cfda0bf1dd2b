"""Loading a run configuration: YAML files and presets (`base:` inheritance), `--set a.b=value`
overrides with type checks, the upgrade of configs saved by older antlm versions, and validation.
The types and their defaults live in antlm/config_types.py (re-exported here, the public names).

Every key is declared with its type; unknown keys and wrongly typed values are errors
(raised as `ConfigError`, which the CLI turns into a one-line message and exit code 2).
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Optional

import yaml

from antlm.config_types import (  # noqa: F401 (the public names of antlm.config)
    BACKBONES, DEFAULTS_VERSION, NORM_EPS, ConfigError, DataConfig, DistillConfig, MlmConfig, ModelConfig,
    OptimConfig, RunConfig, TrainConfig, bucket_max, default_masking, default_target_offset, resolve_model_defaults,
    to_dict,
)
from antlm.config_validate import validate_config
from antlm.schedule import LEGACY_SCHEDULE_ROUNDING

# The keys that defaults version 2 added, and the values that reproduce what antlm did before them
# (through commit ab8c60b). A saved config that lacks a key gets this value, not today's default.
LEGACY_V1 = {
    "model": {"position_max": 0, "gelu": "exact", "ffn_mid_dropout": True, "residual_init": "legacy"},
    "mlm": {"span_masking": "legacy", "replace_unit": "token"},
    "optim": {"no_decay": "ndim", "lamb_trust_ratio": "all"},
}
# norm_eps was always written out, so an old config names its value; only a missing one needs it.
LEGACY_V1_NORM_EPS = 1e-5


def upgrade_model_section(model: dict, version: int) -> dict:
    """A saved `model` section (config.yaml or final config.json) with the keys its version lacked
    filled in with that version's values."""
    model = dict(model)
    if version < 2:
        for key, value in LEGACY_V1["model"].items():
            model.setdefault(key, value)
        if model.get("norm_eps") is None:
            model["norm_eps"] = LEGACY_V1_NORM_EPS
    return model


def upgrade_saved(data: dict) -> dict:
    """A saved run config, upgraded to today's keys with its own version's behaviour."""
    data = dict(data)
    version = data.get("defaults_version", 1)
    if not isinstance(version, int) or not 1 <= version <= DEFAULTS_VERSION:
        raise ConfigError(f"saved config has defaults_version {version!r}; this antlm knows 1..{DEFAULTS_VERSION}")
    data.setdefault("schedule_rounding", LEGACY_SCHEDULE_ROUNDING)
    if version < 2:
        data["model"] = upgrade_model_section(data.get("model") or {}, version)
        for section in ("mlm", "optim"):
            merged = dict(LEGACY_V1[section])
            merged.update(data.get(section) or {})
            data[section] = merged
        data["defaults_version"] = DEFAULTS_VERSION  # the values are now explicit
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


class _Override:
    """A --set value: YAML-parsed for typed keys, the raw text for string keys (so that
    `--set schedule=24` or `--set data.corpus=2024` stay strings)."""

    def __init__(self, parsed: Any, raw: str):
        self.parsed, self.raw = parsed, raw


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    if isinstance(value, _Override):
        optional_str = tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp))
        value = value.raw if optional_str and value.parsed is not None else value.parsed
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_type,) = typing.get_args(tp)
        if isinstance(value, str):  # --set train.log_to=jsonl,tensorboard or =[jsonl,tensorboard]
            value = [part.strip() for part in value.strip().strip("[]").split(",") if part.strip()]
        if isinstance(value, list):
            return [_coerce(item, item_type, key) for item in value]
    raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {value!r}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(obj: Any, updates: dict, prefix: str = "") -> None:
    if not isinstance(updates, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    hints = _hints(type(obj))
    for key, value in updates.items():
        full = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(f"unknown config key '{full}'")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, full + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # Keep strings like "4_clm+16_mlm" and paths as written.
    if isinstance(value, (dict, list)) or value is None and raw.strip() not in ("null", "~", "None"):
        value = raw
    if raw.strip() == "None":
        value = None
    return key.strip(), _Override(value, raw)


def set_key(cfg: RunConfig, dotted: str, value: Any) -> None:
    nested: dict = {}
    cursor = nested
    parts = dotted.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    _apply(cfg, nested)


# Presets are package data, so an installed wheel finds them from any working directory.
PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_preset(name: str | Path) -> Path:
    """A path, or the name of a preset in antlm/presets/ (`tiny`, `babyllama-antlm-4-16-4`)."""
    path = Path(name)
    if not path.exists() and path.suffix == "" and (PRESET_DIR / f"{name}.yaml").is_file():
        return PRESET_DIR / f"{name}.yaml"
    return path


def load_yaml(path: str | Path, _depth: int = 0) -> dict:
    path = resolve_preset(path)
    if not path.is_file():
        hint = f" (presets: {', '.join(preset_names())})" if path.suffix == "" and not path.parent.parts else ""
        raise ConfigError(f"config file not found: {path}{hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    data = data or {}
    base = data.pop("base", None)
    if base is None:
        return data
    # `base: NAME` builds a preset on another one (a reference recipe): its keys, then these.
    if not isinstance(base, str) or _depth >= 4:
        raise ConfigError(f"config file {path}: 'base' must name one preset or file (at most 4 deep), got {base!r}")
    return _merge(load_yaml(base if Path(base).is_absolute() or not (path.parent / base).is_file() else path.parent / base,
                            _depth + 1), data)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


CORPUS_ENV = "ANTLM_CORPUS"


def build_config(path: Optional[str | Path] = None, overrides: tuple[str, ...] | list[str] = ()) -> RunConfig:
    cfg = RunConfig()
    if path is not None:
        _apply(cfg, load_yaml(path))
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    if cfg.data.corpus is None:
        # Resolved here so that the saved config names the directory the run really read.
        from_env = os.environ.get(CORPUS_ENV, "").strip()
        if not from_env:
            raise ConfigError(f"{Path(str(path)).stem if path else 'this config'} trains on a corpus in the BabyLM layout: "
                              f"pass --set data.corpus=DIR (or set ${CORPUS_ENV})")
        cfg.data.corpus = from_env
    if cfg.distill.teachers is None:
        raise ConfigError(f"{Path(str(path)).stem if path else 'this config'} distills from teachers: pass "
                          "--set distill.teachers=[RUN_A,RUN_B] (antlm runs or Hugging Face causal-LM directories)")
    validate(cfg)
    cfg.model = resolve_model_defaults(cfg.model)
    return cfg


def from_dict(data: dict, saved: bool = False) -> RunConfig:
    """`saved=True` for a config a run wrote: old versions get their old values for missing keys."""
    cfg = RunConfig()
    _apply(cfg, upgrade_saved(data) if saved else data)
    cfg.model = resolve_model_defaults(cfg.model)
    return cfg


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError on the first bad value (the checks live in antlm/config_validate.py)."""
    validate_config(cfg)
