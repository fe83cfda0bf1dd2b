"""Typed run configuration: dataclasses, YAML presets and `--set a.b=value` overrides.

Every key is declared here with its type; unknown keys and wrongly typed values are errors
(raised as `ConfigError`, which the CLI turns into a one-line message and exit code 2).
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from antlm.errors import UserError


class ConfigError(UserError):
    """A user-facing configuration problem (bad key, type or value)."""


@dataclass
class DataConfig:
    corpus: Optional[str] = "embedded"
    """A directory in the BabyLM layout (*.train, *.dev, *.test, *.txt), or `embedded` for the
    built-in synthetic grammar corpus. Null (the real-data presets): taken from $ANTLM_CORPUS,
    else the run is refused with a message that says to pass `--set data.corpus=DIR`."""
    word_budget: Optional[int] = None
    """Fail when the training files hold more whitespace words than this (strict-small: 10M)."""
    track: str = "none"
    """BabyLM track whose limits the run must keep (antlm/tracks.py): `strict-small-2024`,
    `strict-small-2025`, `strict-2025`, `strict-small-2026`, `strict-2026` or `none`. A corpus with
    more words, or a schedule that would see more words, than the track allows is refused."""
    vocab_size: int = 16000
    """Target size of the trained BPE vocabulary (special tokens included)."""
    tokenizer: Optional[str] = None
    """Reuse this tokenizer.json instead of training one."""
    seq_len: int = 128
    length_schedule: Optional[str] = None
    """Longer training blocks late in the run: `LEN@FRACTION[,LEN@FRACTION...]`, e.g. `512@0.9`
    (LTG-BERT: 128 -> 512 for the last 10% of steps) or `256@0.7,512@0.9` (GPT-BERT's lengths).
    From step int(FRACTION * total steps) blocks are LEN tokens (a multiple of seq_len, at most
    model.max_seq_len), batch_size * seq_len / LEN of them per step, so tokens per step, the
    phases and the LR schedule run on unchanged; each stage reads its blocks in its own seeded
    order from its first step. Dev losses stay at seq_len. None: seq_len throughout."""
    short_fraction: float = 0.0
    """Share of training rows cut short (LTG-BERT's short_p, 0.1): such a row keeps <s> and its first
    n tokens, n uniform in 1..T-3, and is padded; attention, masking and the loss skip the padding."""
    block_offsets: str = "fixed"
    """`fixed`: block k is always stream tokens [kT, (k+1)T). `random` (BabyLlama's random_chunk):
    each epoch, a training block starts at a seeded random offset in [0, T) past that, reading into
    the next block (not into a dev block or past the stream)."""
    dev_fraction: float = 0.005
    """Share of training blocks held out for dev loss when the corpus has no *.dev files."""
    cache_dir: Optional[str] = None
    """Where token stores and the embedded corpus are cached ($ANTLM_CACHE or ~/.cache/antlm)."""
    embedded_sentences: int = 60000
    embedded_seed: int = 0
    store_on_device: Optional[bool] = None
    """Keep the token stream in accelerator memory and build batches (and MLM masks, from a
    generator on that device) there; None: on CUDA when it takes under a quarter of free memory."""


@dataclass
class ModelConfig:
    backbone: str = "babyllama"
    """`babyllama` (Llama decoder), `ltgbert` (LTG-BERT encoder) or `gptbert` (GPT-BERT: LTG-BERT with
    gated attention and layer weighting)."""
    hidden_size: int = 512
    num_layers: int = 16
    num_heads: int = 8
    ffn_size: int = 1024
    max_seq_len: int = 128
    vocab_size: int = 0
    """Set from the tokenizer at run time; a value here is overwritten."""
    dropout: float = 0.0
    attention_dropout: float = 0.0
    norm_eps: Optional[float] = None
    """None: the backbone's reference value (ltgbert 1e-7, babyllama 1e-6, gptbert 1e-5); resolved when the config
    is built, so config.yaml names the number used."""
    rope_theta: float = 10000.0
    """BabyLlama only."""
    position_buckets: int = 32
    """LTG-BERT and GPT-BERT: size of the log-bucketed relative-position table (per direction)."""
    init_std: float = 0.02
    position_max: Optional[int] = 512
    """LTG-BERT only: the distance at which the log-bucketed relative positions reach the table
    edge (the reference's max_position_embeddings, 512, whatever the sequence length). None or 0:
    model.max_seq_len (antlm before defaults version 2)."""
    gelu: str = "tanh"
    """LTG-BERT only: the GELU inside GeGLU, `tanh` (approximate, as the reference) or `exact` (erf).
    The LM head always uses the exact GELU, as the reference does."""
    ffn_mid_dropout: bool = False
    """LTG-BERT only: a dropout after the FFN's middle LayerNorm. The reference has none (its FFN
    ends in the one dropout after the down projection); antlm before version 2 had one."""
    residual_init: str = "reference"
    """Which residual-branch weights shrink by 1/sqrt(2(i+1)) in layer i at init. `reference`:
    ltgbert the FFN up and down projections (not attention out_proj), babyllama none (plain
    normal(init_std) everywhere). `legacy` (antlm before version 2): ltgbert out_proj and down;
    babyllama o_proj and down_proj by 1/sqrt(2 * num_layers)."""
    attention_gate: bool = True
    """GPT-BERT only: multiply the attention context by GELU of a learned gate (the reference)."""
    layer_weighting: bool = True
    """GPT-BERT only: after each sub-layer the stream is a learned weighted sum of all earlier
    states (DenseFormer's depth-weighted average, as the reference); off: the plain residual stream."""


@dataclass
class MlmConfig:
    masking: str = "auto"
    """`token`, `span`, or `auto` (babyllama: token, ltgbert: span)."""
    mask_rate: float = 0.15
    mask_rate_end: Optional[float] = None
    """When set, the rate moves linearly from mask_rate to this over the run (e.g. 0.3 -> 0.15)."""
    max_span_length: int = 10
    """Span lengths are geometric draws taken modulo this (`span_masking: reference`: lengths
    1..max-1, a multiple of max gives an empty span) or capped at it (`legacy`)."""
    mean_span_length: float = 3.0
    """1/p of the geometric span-length law (3: p = 1/3, as the reference)."""
    span_masking: str = "reference"
    """`reference` (LTG-BERT's SpanMaskingStrategy): a per-row masked count ~ Binomial(maskable, rate),
    spans added at uniform offsets (which may start before the row) until the count is reached.
    `gptbert` (GPT-BERT's SpanMaskingStrategy): the row is cut into spans of uniform length
    1..max_span_length, and whole spans with the lowest random scores are masked until
    floor(rate * maskable + U) tokens. `legacy` (antlm before version 2): spans start
    independently with probability rate/mean."""
    replace_unit: str = "span"
    """Whether the 80/10/10 choice (mask / random / keep) is drawn once per `span` (the reference;
    where spans overlap the later span wins) or per `token`. Token masking and legacy span masking
    always decide per token."""
    replace_mask: float = 0.8
    replace_random: float = 0.1
    """The rest of the masked positions keep their token (80/10/10 by default)."""
    target_offset: Optional[int] = None
    """0: predict the masked token in place (BERT); 1: predict masked token k+1 at position k
    (MNTP, GPT-BERT). None: the backbone's default (babyllama 1, ltgbert 0)."""


@dataclass
class OptimConfig:
    name: str = "adamw"
    """`adamw` or `lamb`."""
    lr: float = 3e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8
    warmup_steps: Optional[int] = None
    warmup_fraction: float = 0.01
    """Used when warmup_steps is not set."""
    min_lr_ratio: float = 0.1
    """The cosine decays to lr * min_lr_ratio at the last step."""
    lr_schedule: str = "cosine"
    """`cosine` (warmup, cosine to lr * min_lr_ratio) or `trapezoid` (warmup, constant lr, then the
    cooldown). Either ends in the cooldown when cooldown_fraction > 0."""
    cooldown_fraction: float = 0.0
    """The last share of steps, over which the lr falls linearly to 0 from where the schedule
    stands (GPT-BERT: 0.016, from lr * min_lr_ratio, as its cosine_schedule_with_warmup_cooldown)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 disables it."""
    no_decay: str = "reference"
    """Which parameters get no weight decay. `reference`: names containing `bias`, `norm` or
    `embedding` (LTG-BERT's rule, whose `layer_norm` is antlm's `norm`; it spares the word and
    relative embeddings too). For babyllama this is every norm gain, as HF Trainer does.
    `ndim`: every tensor with fewer than 2 dims (antlm before version 2: embeddings decay).
    Or a comma-separated list of name substrings, e.g. `bias,norm`."""
    lamb_trust_ratio: str = "decay_groups"
    """LAMB only: `decay_groups` (the reference) rescales by ||w||/||update|| only in parameter groups
    with weight_decay > 0, the others take a plain Adam step at the lr; `all` (antlm before version 2)
    rescales every tensor."""


@dataclass
class TrainConfig:
    batch_size: int = 32
    """Global batch in sequences per optimizer step."""
    micro_batch_size: Optional[int] = None
    """Sequences per forward pass; batch_size / micro_batch_size gives gradient accumulation."""
    seed: int = 0
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, `cuda:N`."""
    precision: str = "auto"
    """`auto` (fp32 on CPU, bf16 autocast on CUDA), `fp32` or `bf16`."""
    compile: bool = False
    threads: Optional[int] = None
    """torch CPU threads; None leaves torch's default."""
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 8
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_steps: Optional[int] = None
    """Stop early after this many steps (the LR schedule still spans the whole run)."""
    progress: Optional[bool] = None
    """Show a progress bar; None: when stderr is a terminal."""
    progress_every_s: float = 20.0
    """Without a progress bar (a log file, CI), print a progress line (phase, step, loss) at least
    this often, in seconds; 0: never."""
    log_to: list[str] = field(default_factory=lambda: ["jsonl"])
    """Metric sinks: `jsonl` (DIR/metrics.jsonl, always written), `tensorboard` (DIR/tensorboard/,
    extra `antlm[tensorboard]`), `wandb` (offline, DIR/wandb/, extra `antlm[wandb]`). Same rows and
    names in each."""
    word_checkpoints: Optional[str] = None
    """Model-only checkpoints when words seen cross milestones, in DIR/word_checkpoints/chck_<N>M/:
    `babylm` (1M..10M, 20M..100M, 200M..1B, up to the track's cap), `none`, or a list such as
    `1M,5M,10M` (suffixes k, M, B). None: babylm under the 2025/2026 tracks, else none."""
    z_loss: float = 0.0
    """Adds z_loss * logsumexp(logits)^2 per target to the training loss (PaLM's z-loss; GPT-BERT 1e-4):
    it keeps the softmax normaliser near 1. Dev losses are plain cross-entropy."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights, ema = decay * ema + (1 - decay) * w after
    each update (GPT-BERT: 0.999); dev losses, word checkpoints and final/ (so eval and export) use
    it, and checkpoints store it. 0: off."""
    batch_warmup: float = 1.0
    """The global batch starts this many times smaller and grows linearly with the step to
    train.batch_size at the end (GPT-BERT: 4); phases keep their step counts, so fewer sequences
    are seen. 1: off."""
    max_bad_steps: int = 5
    """Steps with a non-finite loss or gradient are skipped (no update); after this many the run
    stops, keeping its last good checkpoint."""


@dataclass
class DistillConfig:
    teachers: Optional[list[str]] = field(default_factory=list)
    """Teacher models: antlm run dirs, their final/, or Hugging Face causal-LM directories. Empty:
    no distillation. Null (the distillation presets): must be given, `--set distill.teachers=[A,B]`.
    Teachers must share the student's vocabulary (data.tokenizer)."""
    alpha: float = 0.5
    """Weight of the student's own cross-entropy; the KL term gets 1 - alpha (BabyLlama: 0.5)."""
    temperature: float = 2.0
    scale: str = "per_token"
    """`per_token`: CE and KL both means over targets; `reference`: the BabyLlama code's
    KLDivLoss(reduction="batchmean"), a KL summed over positions and divided by sequences only."""
    weighting: str = "logits"
    """Ensemble target: softmax of the teachers' mean `logits` (the reference) or mean of their `probs`."""
    skip_unsupported_phases: bool = False
    """Train phases no teacher can serve (MLM with causal-only HF teachers) without distillation,
    instead of refusing the run."""


@dataclass
class RunConfig:
    defaults_version: int = 2
    """Which set of defaults a saved config was written under. A saved config.yaml or final
    config.json without it is version 1: its missing keys take LEGACY_V1 values (see
    `upgrade_saved`), so an old run keeps loading and resuming with its old behaviour."""
    schedule: str = "4_clm+16_mlm+4_clm"
    """Phases joined by `+`; see antlm/schedule.py for the language."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mlm: MlmConfig = field(default_factory=MlmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


BACKBONES = ("babyllama", "ltgbert", "gptbert")

DEFAULTS_VERSION = 2
# The keys that defaults version 2 added, and the values that reproduce what antlm did before them
# (through commit ab8c60b). A saved config that lacks a key gets this value, not today's default.
LEGACY_V1 = {
    "model": {"position_max": 0, "gelu": "exact", "ffn_mid_dropout": True, "residual_init": "legacy"},
    "mlm": {"span_masking": "legacy", "replace_unit": "token"},
    "optim": {"no_decay": "ndim", "lamb_trust_ratio": "all"},
}
# norm_eps was always written out, so an old config names its value; only a missing one needs it.
LEGACY_V1_NORM_EPS = 1e-5
NORM_EPS = {"ltgbert": 1e-7, "babyllama": 1e-6, "gptbert": 1e-5}


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
    if version < 2:
        data["model"] = upgrade_model_section(data.get("model") or {}, version)
        for section in ("mlm", "optim"):
            merged = dict(LEGACY_V1[section])
            merged.update(data.get(section) or {})
            data[section] = merged
        data["defaults_version"] = DEFAULTS_VERSION  # the values are now explicit
    return data


def resolve_model_defaults(m: ModelConfig) -> ModelConfig:
    """A copy with backbone-dependent defaults (None) replaced by their values."""
    if m.norm_eps is None:
        m = dataclasses.replace(m, norm_eps=NORM_EPS.get(m.backbone, 1e-5))
    return m


def bucket_max(m: ModelConfig) -> int:
    """The distance LTG-BERT's log buckets reach the table edge at (+1)."""
    return m.position_max or m.max_seq_len


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


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def default_target_offset(backbone: str) -> int:
    # A decoder already maps position k to token k+1 in its CLM phases; MNTP keeps that mapping in
    # MLM phases, so both objectives train the same head semantics (GPT-BERT). LTG-BERT's native
    # objective is in-place BERT masking; GPT-BERT trains MNTP in both objectives.
    return 0 if backbone == "ltgbert" else 1


def default_masking(backbone: str) -> str:
    return "token" if backbone == "babyllama" else "span"


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError on the first bad value (the checks live in antlm/config_validate.py)."""
    from antlm.config_validate import validate_config

    validate_config(cfg)
