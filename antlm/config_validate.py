"""The checks `antlm.config.validate` runs on a config before a run: value ranges, choices, and
the combinations a run cannot honour (found here, before anything is loaded or written)."""
from __future__ import annotations

from antlm.config_types import BACKBONES, DEFAULTS_VERSION, ConfigError, RunConfig


def _validate_data_recipe(cfg: RunConfig) -> None:
    """data.length_schedule, data.short_fraction, data.block_offsets."""
    from antlm.data.lengths import LengthScheduleError, parse_length_schedule

    d, t = cfg.data, cfg.train
    try:
        stages = parse_length_schedule(d.length_schedule, d.seq_len)
    except LengthScheduleError as err:
        raise ConfigError(str(err)) from None
    longest = stages[-1].seq_len
    if longest > cfg.model.max_seq_len:
        raise ConfigError(f"data.length_schedule reaches {longest} tokens, longer than model.max_seq_len "
                          f"({cfg.model.max_seq_len})")
    factor = longest // d.seq_len
    micro = t.micro_batch_size or t.batch_size
    if t.batch_size % factor or micro % factor:
        raise ConfigError(f"data.length_schedule: at {longest} tokens a step holds train.batch_size / {factor} "
                          f"sequences; train.batch_size ({t.batch_size}) and train.micro_batch_size ({micro}) "
                          f"must be multiples of {factor}")
    if not 0 <= d.short_fraction <= 1:
        raise ConfigError(f"data.short_fraction must be in [0, 1], got {d.short_fraction}")
    if d.short_fraction and d.seq_len < 4:
        raise ConfigError(f"data.short_fraction needs data.seq_len >= 4 (a short row keeps 1..seq_len-3 tokens), got {d.seq_len}")
    if d.block_offsets not in ("fixed", "random"):
        raise ConfigError(f"data.block_offsets must be fixed or random, got '{d.block_offsets}'")


def validate_config(cfg: RunConfig) -> None:
    m, d, o, t, mlm = cfg.model, cfg.data, cfg.optim, cfg.train, cfg.mlm
    if m.backbone not in BACKBONES:
        raise ConfigError(f"model.backbone must be one of {', '.join(BACKBONES)}, got '{m.backbone}'")
    positive = {
        "model.hidden_size": m.hidden_size, "model.num_layers": m.num_layers,
        "model.num_heads": m.num_heads, "model.ffn_size": m.ffn_size,
        "model.max_seq_len": m.max_seq_len, "data.seq_len": d.seq_len,
        "data.vocab_size": d.vocab_size, "train.batch_size": t.batch_size,
        "train.log_every": t.log_every, "train.eval_every": t.eval_every,
        "train.checkpoint_every": t.checkpoint_every, "model.position_buckets": m.position_buckets,
        "data.embedded_sentences": d.embedded_sentences, "mlm.max_span_length": mlm.max_span_length,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if m.hidden_size % m.num_heads:
        raise ConfigError(f"model.hidden_size ({m.hidden_size}) must be divisible by model.num_heads ({m.num_heads})")
    if m.backbone == "babyllama" and (m.hidden_size // m.num_heads) % 2:
        raise ConfigError("babyllama needs an even head size for rotary embeddings")
    if d.seq_len < 2:
        raise ConfigError(f"data.seq_len must be at least 2 (a block needs a token to predict), got {d.seq_len}")
    if d.corpus is None or not d.corpus.strip():
        raise ConfigError("data.corpus is empty (a directory in the BabyLM layout, or 'embedded')")
    if d.seq_len > m.max_seq_len:
        raise ConfigError(f"data.seq_len ({d.seq_len}) is longer than model.max_seq_len ({m.max_seq_len})")
    _validate_data_recipe(cfg)
    if d.word_budget is not None and d.word_budget <= 0:
        raise ConfigError(f"data.word_budget must be positive, got {d.word_budget}")
    if not 0 <= d.dev_fraction < 0.5:
        raise ConfigError(f"data.dev_fraction must be in [0, 0.5), got {d.dev_fraction}")
    if not (o.lr > 0 and o.lr < 1):
        raise ConfigError(f"optim.lr must be in (0, 1), got {o.lr}")
    if o.name not in ("adamw", "lamb"):
        raise ConfigError(f"optim.name must be adamw or lamb, got '{o.name}'")
    if o.weight_decay < 0 or o.grad_clip < 0 or not 0 <= o.min_lr_ratio <= 1:
        raise ConfigError("optim.weight_decay and optim.grad_clip must be >= 0, optim.min_lr_ratio in [0, 1]")
    if not (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1):
        raise ConfigError("optim.beta1 and optim.beta2 must be in [0, 1)")
    if o.warmup_steps is not None and o.warmup_steps < 0:
        raise ConfigError(f"optim.warmup_steps must be >= 0, got {o.warmup_steps}")
    if not 0 <= o.warmup_fraction < 1:
        raise ConfigError(f"optim.warmup_fraction must be in [0, 1), got {o.warmup_fraction}")
    if mlm.masking not in ("auto", "token", "span"):
        raise ConfigError(f"mlm.masking must be auto, token or span, got '{mlm.masking}'")
    for key, rate in (("mlm.mask_rate", mlm.mask_rate), ("mlm.mask_rate_end", mlm.mask_rate_end)):
        if rate is not None and not 0 < rate < 1:
            raise ConfigError(f"{key} must be in (0, 1), got {rate}")
    if mlm.replace_mask < 0 or mlm.replace_random < 0 or mlm.replace_mask + mlm.replace_random > 1:
        raise ConfigError("mlm.replace_mask + mlm.replace_random must lie in [0, 1]")
    choices = {
        "model.gelu": (m.gelu, ("tanh", "exact")), "model.residual_init": (m.residual_init, ("reference", "legacy")),
        "mlm.span_masking": (mlm.span_masking, ("reference", "legacy", "gptbert")),
        "optim.lr_schedule": (o.lr_schedule, ("cosine", "trapezoid")),
        "mlm.replace_unit": (mlm.replace_unit, ("span", "token")),
        "optim.lamb_trust_ratio": (o.lamb_trust_ratio, ("decay_groups", "all")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key} must be {' or '.join(allowed)}, got '{value}'")
    if not 0 <= o.warmup_fraction + o.cooldown_fraction < 1 or o.cooldown_fraction < 0:
        raise ConfigError("optim.cooldown_fraction must be >= 0, and with optim.warmup_fraction below 1")
    if t.z_loss < 0 or not 0 <= t.ema_decay < 1 or t.batch_warmup < 1:
        raise ConfigError(f"train.z_loss must be >= 0, train.ema_decay in [0, 1), train.batch_warmup >= 1; "
                          f"got {t.z_loss}, {t.ema_decay}, {t.batch_warmup}")
    if m.position_max is not None and m.position_max < 0:
        raise ConfigError(f"model.position_max must be >= 0 (0 or null: model.max_seq_len), got {m.position_max}")
    if m.norm_eps is not None and not m.norm_eps > 0:
        raise ConfigError(f"model.norm_eps must be positive, got {m.norm_eps}")
    if cfg.defaults_version != DEFAULTS_VERSION:
        raise ConfigError(f"defaults_version must be {DEFAULTS_VERSION} for a new run (old runs are upgraded when loaded), "
                          f"got {cfg.defaults_version}")
    if not o.no_decay.strip() or any(not part.strip() for part in o.no_decay.split(",")):
        raise ConfigError(f"optim.no_decay must be reference, ndim or a comma-separated list of name parts, got '{o.no_decay}'")
    if mlm.mean_span_length < 1:
        raise ConfigError(f"mlm.mean_span_length must be >= 1, got {mlm.mean_span_length}")
    if mlm.target_offset not in (None, 0, 1):
        raise ConfigError(f"mlm.target_offset must be 0 or 1, got {mlm.target_offset}")
    if t.micro_batch_size is not None and (t.micro_batch_size <= 0 or t.batch_size % t.micro_batch_size):
        raise ConfigError(f"train.micro_batch_size ({t.micro_batch_size}) must divide train.batch_size ({t.batch_size})")
    if t.precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"train.precision must be auto, fp32 or bf16, got '{t.precision}'")
    if t.max_steps is not None and t.max_steps <= 0:
        raise ConfigError(f"train.max_steps must be positive, got {t.max_steps}")
    if t.max_bad_steps < 0:
        raise ConfigError("train.max_bad_steps must be >= 0")
    dist = cfg.distill
    if not 0 <= dist.alpha <= 1 or dist.temperature <= 0:
        raise ConfigError(f"distill.alpha must be in [0, 1] and distill.temperature > 0, got {dist.alpha} and {dist.temperature}")
    if dist.scale not in ("per_token", "reference") or dist.weighting not in ("logits", "probs"):
        raise ConfigError(f"distill.scale must be per_token or reference and distill.weighting logits or probs, "
                          f"got '{dist.scale}' and '{dist.weighting}'")
    if dist.teachers and t.z_loss:
        raise ConfigError("train.z_loss is not implemented with distillation: set train.z_loss=0 or no distill.teachers")
    if dist.teachers and d.short_fraction:  # the teachers would attend to the padding
        raise ConfigError("data.short_fraction is not implemented with distillation: set data.short_fraction=0 "
                          "or no distill.teachers")
    if t.progress_every_s < 0:
        raise ConfigError(f"train.progress_every_s must be >= 0, got {t.progress_every_s}")
    from antlm.train.loggers import LOGGERS  # late import: loggers import nothing heavy at module level

    for name in t.log_to:
        if name not in LOGGERS:
            raise ConfigError(f"train.log_to: unknown logger '{name}' (choose from {', '.join(LOGGERS)})")
    if t.keep_checkpoints < 1:
        raise ConfigError("train.keep_checkpoints must be >= 1")
    from antlm.schedule import ROUNDINGS, parse_schedule  # late import: schedule has no config dependency
    from antlm.tracks import TrackError, get_track, parse_milestones

    parse_schedule(cfg.schedule)
    if cfg.schedule_rounding not in ROUNDINGS:
        raise ConfigError(f"schedule_rounding must be {' or '.join(ROUNDINGS)}, got '{cfg.schedule_rounding}'")
    try:
        parse_milestones(t.word_checkpoints, get_track(d.track))
    except TrackError as err:
        raise ConfigError(str(err)) from None
