"""The global batch of a training step, as a pure function of (seed, step), so a resumed run reads
exactly the batches an uninterrupted one reads.

A run has one or more length stages (data.length_schedule): each stage reads blocks of its own
length from its own view of the same token stream, `batch_size * data.seq_len / length` of them
per step (tokens per step stay the same, as LTG-BERT's `batch_size // 4` at `seq_length * 4`), in
its own seeded order whose epoch 0 begins at the stage's first step (the reference starts a new
epoch on its 512-token data). Within a stage the batch may grow (train.batch_warmup).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from antlm.config_types import RunConfig, default_target_offset
from antlm.data import tokenizer as tok_lib
from antlm.data.lengths import parse_length_schedule
from antlm.data.tokens import BlockDataset, grouped_blocks
from antlm.errors import UserError
from antlm.objectives import IGNORE, Batch, clm_batch, mask_rate_at, mlm_batch

SHORT_SALT = 13


def batch_sizes(batch_size: int, warmup: float, total_steps: int, granule: int) -> np.ndarray:
    """train.batch_warmup: the global batch of each step, growing linearly from batch_size/warmup at
    step 0 towards batch_size, as GPT-BERT's int(B / r * (1 - t) + B * t + 0.5) with t = step /
    max_steps (pretraining/train_10m.py, load_datasets), rounded to a multiple of `granule` (ranks x
    micro-batch) so every part splits evenly."""
    progress = np.arange(total_steps) / total_steps
    raw = np.floor(batch_size / warmup * (1 - progress) + batch_size * progress + 0.5)
    return np.clip(np.round(raw / granule) * granule, granule, batch_size).astype(np.int64)


@dataclass
class Stage:
    start: int  # the stage's first step
    dataset: BlockDataset
    batch_size: int  # global sequences per step (the most, under train.batch_warmup)
    micro: int  # sequences per forward pass on one rank
    sizes: Optional[np.ndarray] = None  # train.batch_warmup: the batch of each step of the stage

    def __post_init__(self):
        self.steps_per_epoch = max(1, len(self.dataset) // self.batch_size)
        self.cumulative = None if self.sizes is None else np.concatenate([[0], np.cumsum(self.sizes)])

    def sequences(self, local_steps: int) -> int:
        return local_steps * self.batch_size if self.cumulative is None else int(self.cumulative[local_steps])


@dataclass
class Selection:
    """Which blocks a step reads: dataset positions of one stage, with the epoch of each (their
    random offsets depend on it)."""
    stage: int
    positions: np.ndarray
    epochs: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.size)


def build_stages(cfg: RunConfig, train: BlockDataset, total_steps: int, world: int, micro: int) -> list[Stage]:
    """The run's length stages over `train` (the base view); `micro` is the base stage's per-rank
    micro-batch. Raises UserError when a stage's batch does not split over ranks and micro-batches."""
    base_len, batch = cfg.data.seq_len, cfg.train.batch_size
    stages = []
    for index, length in enumerate(parse_length_schedule(cfg.data.length_schedule, base_len)):
        factor = length.seq_len // base_len
        if index == 0:
            view = train
        else:
            view = BlockDataset(train.stream, length.seq_len, train.bos_id, grouped_blocks(train.block_ids, factor),
                                random_offsets=train.random_offsets, order_key=(length.seq_len,))
        if index and (batch % factor or (batch // factor) % world or micro % factor):  # the base: checked by the loop
            raise UserError(f"data.length_schedule: at {length.seq_len} tokens the batch of {batch} sequences "
                            f"becomes {batch / factor:g}, which must split evenly over {world} rank(s) and micro-batches "
                            f"of {micro / factor:g}")
        stage_batch, stage_micro = batch // factor, micro // factor
        start = length.start(total_steps)
        sizes = None
        if cfg.train.batch_warmup > 1:
            granule = world * (stage_micro if cfg.train.micro_batch_size else 1)
            sizes = batch_sizes(stage_batch, cfg.train.batch_warmup, total_steps, granule)[start:]
        if index and len(view) < stage_batch and start < total_steps:
            raise UserError(f"data.length_schedule: the corpus has {len(view)} blocks of {length.seq_len} tokens, "
                            f"fewer than one batch of {stage_batch}")
        stages.append(Stage(start, view, stage_batch, stage_micro, sizes))
    return stages


def shorten(inputs, targets, fraction: float, rng: np.random.Generator, pad_id: int):
    """data.short_fraction, LTG-BERT's short sequences (babylm/train/dataset.py, `__getitem__`):
    with probability `fraction` a row keeps <s> and its first n tokens, n uniform in 1..T-3 (the
    reference's `randint(1, seq_length - 2)` ordinary tokens), and is padded to T. Returns (inputs,
    targets, attention mask or None, CLM target count): CLM targets after the kept part are IGNORE;
    padding is never masked (its id is special), so MLM never targets it."""
    rows, length = inputs.shape
    short = rng.random(rows) < fraction
    kept = np.where(short, rng.integers(1, length - 2, rows) + 1, length)
    if not short.any():
        return inputs, targets, None, rows * length
    real = np.arange(length)[None, :] < kept[:, None]
    count = int(kept.sum())
    if torch.is_tensor(inputs):
        real = torch.from_numpy(real).to(inputs.device)
        return inputs.masked_fill(~real, pad_id), targets.masked_fill(~real, IGNORE), real, count
    return np.where(real, inputs, pad_id), np.where(real, targets, IGNORE), real, count


class BatchMaker:
    """Builds the global batch of a step; masks come from a generator seeded by (seed, step).
    `stages` (build_stages) gives the length stages; without them, one stage over `dataset` with
    train.batch_size, its batch per step from `sizes` (batch_sizes) when given. `training`: apply
    the training-only data choices (data.short_fraction); dev batches are whole blocks."""

    def __init__(self, cfg: RunConfig, dataset: BlockDataset, special: dict, vocab_size: int, total_steps: int,
                 sizes: np.ndarray | None = None, stages: list[Stage] | None = None, training: bool = False):
        self.cfg, self.dataset, self.special, self.vocab_size = cfg, dataset, special, vocab_size
        self.total_steps = total_steps
        self.offset = cfg.mlm.target_offset if cfg.mlm.target_offset is not None else default_target_offset(cfg.model.backbone)
        batch = cfg.train.batch_size
        self.stages = stages or [Stage(0, dataset, batch, cfg.train.micro_batch_size or batch, sizes)]
        self.starts = [stage.start for stage in self.stages]
        self.short_fraction = cfg.data.short_fraction if training else 0.0

    def stage_at(self, step: int) -> int:
        return bisect.bisect_right(self.starts, step) - 1

    def select(self, step: int) -> Selection:
        index = self.stage_at(step)
        stage, seed = self.stages[index], self.cfg.train.seed
        local = step - stage.start
        if stage.cumulative is not None:
            seen = np.arange(stage.cumulative[local], stage.cumulative[local + 1])
            epochs, within = np.divmod(seen, len(stage.dataset))
            positions = np.concatenate([stage.dataset.order(seed, int(e))[within[epochs == e]] for e in np.unique(epochs)])
            return Selection(index, positions, np.sort(epochs))
        epoch, within = divmod(local, stage.steps_per_epoch)
        positions = stage.dataset.order(seed, epoch)[within * stage.batch_size:(within + 1) * stage.batch_size]
        return Selection(index, positions, np.full(positions.size, epoch))

    def positions(self, step: int, batch_size: int | None = None, steps_per_epoch: int | None = None) -> np.ndarray:
        """The dataset positions step `step` reads (its stage's dataset)."""
        return self.select(step).positions

    def tokens_before(self, step: int) -> int:
        """Block tokens read by the steps before `step` (padding of short rows included)."""
        total = 0
        for index, stage in enumerate(self.stages):
            end = self.starts[index + 1] if index + 1 < len(self.stages) else self.total_steps
            if step > stage.start:
                total += stage.sequences(min(step, end) - stage.start) * stage.dataset.seq_len
        return total

    def make(self, selection: Selection | np.ndarray, objective: str, mask_seed: int, step: int) -> Batch:
        if not isinstance(selection, Selection):
            selection = Selection(0, np.asarray(selection), np.zeros(len(selection), dtype=np.int64))
        dataset = self.stages[selection.stage].dataset
        inputs, targets = dataset.blocks(selection.positions, selection.epochs, self.cfg.train.seed)
        real, count = None, None
        if self.short_fraction:
            rng = np.random.default_rng([self.cfg.train.seed, step, SHORT_SALT])
            inputs, targets, real, count = shorten(inputs, targets, self.short_fraction, rng, self.special["pad"])
        inputs, targets = (a if torch.is_tensor(a) else torch.from_numpy(a) for a in (inputs, targets))
        if real is not None and not torch.is_tensor(real):
            real = torch.from_numpy(real)
        if objective == "clm":
            batch = clm_batch(inputs, targets)
            batch.attention_mask, batch.target_count = real, (count if real is not None else None)
            return batch
        generator = torch.Generator(device=inputs.device).manual_seed(mask_seed)
        batch = mlm_batch(
            inputs, targets, self.cfg.mlm, self.cfg.model.backbone, self.offset,
            mask_rate_at(self.cfg.mlm, step, self.total_steps), self.special["mask"],
            len(tok_lib.SPECIAL_TOKENS), self.vocab_size, generator,
        )
        batch.attention_mask = real
        return batch
