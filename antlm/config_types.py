"""The run configuration's types and defaults: one dataclass per section, every key typed and
documented. A leaf module: it imports nothing from antlm but the error type, so every part of the
package can read a config without the loading machinery (antlm/config.py: YAML, presets,
`--set` overrides, upgrades of saved configs)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

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
    schedule_rounding: str = "cumulative"
    """How phase lengths become whole steps (antlm/schedule.py): `cumulative` rounds the running
    total, so phases summing to N epochs train N epochs of steps; `per_phase` rounds each phase
    alone, as antlm did before 0.2 (a saved config without this key is read as `per_phase`)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mlm: MlmConfig = field(default_factory=MlmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


BACKBONES = ("babyllama", "ltgbert", "gptbert")

DEFAULTS_VERSION = 2
NORM_EPS = {"ltgbert": 1e-7, "babyllama": 1e-6, "gptbert": 1e-5}


def resolve_model_defaults(m: ModelConfig) -> ModelConfig:
    """A copy with backbone-dependent defaults (None) replaced by their values."""
    if m.norm_eps is None:
        m = dataclasses.replace(m, norm_eps=NORM_EPS.get(m.backbone, 1e-5))
    return m


def bucket_max(m: ModelConfig) -> int:
    """The distance LTG-BERT's log buckets reach the table edge at (+1)."""
    return m.position_max or m.max_seq_len


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def default_target_offset(backbone: str) -> int:
    # A decoder already maps position k to token k+1 in its CLM phases; MNTP keeps that mapping in
    # MLM phases, so both objectives train the same head semantics (GPT-BERT). LTG-BERT's native
    # objective is in-place BERT masking; GPT-BERT trains MNTP in both objectives.
    return 0 if backbone == "ltgbert" else 1


def default_masking(backbone: str) -> str:
    return "token" if backbone == "babyllama" else "span"
