"""The word-checkpoint series: a model-only checkpoint each time words seen cross a milestone.

Layout: `DIR/word_checkpoints/chck_1M/` (model.safetensors, config.json, tokenizer.json: the
`final/` layout, so `load_model` and `antlm export` read it) and `DIR/word_checkpoints/series.json`
naming each milestone's step. They are never pruned. Each directory is built under a temporary
name, synced and renamed into place, as training checkpoints are (antlm/train/checkpoint.py).

Which milestones were written is part of the resume state: a training checkpoint records them, and
on resume anything written after that checkpoint is dropped and written again by the resumed run
(the same weights, since a resumed run equals an uninterrupted one).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_model
from tokenizers import Tokenizer

from antlm.atomic import WriteError, replace_dir, write_json
from antlm.config_types import RunConfig
from antlm.model_io import model_config_json
from antlm.tracks import crossed, get_track, milestone_name, parse_milestones, words_after
from antlm.errors import UserError
from antlm.train.checkpoint import CheckpointError

SERIES_DIR = "word_checkpoints"
SERIES_FILE = "series.json"


class Series:
    def __init__(self, cfg: RunConfig, out: Path, corpus_words: int, steps_per_epoch: int, total_steps: int):
        self.cfg, self.root = cfg, Path(out) / SERIES_DIR
        self.corpus_words, self.steps_per_epoch = corpus_words, steps_per_epoch
        self.total_words = words_after(total_steps, corpus_words, steps_per_epoch)
        marks = parse_milestones(cfg.train.word_checkpoints, get_track(cfg.data.track))
        self.milestones = [m for m in marks if crossed(m, total_steps, corpus_words, steps_per_epoch)]
        self.beyond = [m for m in marks if m not in self.milestones]
        self.written: dict[str, dict] = {}

    def describe(self) -> str:
        if not self.milestones and not self.beyond:
            return "no word checkpoints"
        text = f"{len(self.milestones)} word checkpoints ({', '.join(milestone_name(m) for m in self.milestones) or '-'})"
        if self.beyond:
            text += (f"; {', '.join(milestone_name(m) for m in self.beyond)} not written: beyond the run's "
                     f"{self.total_words:,} words seen")
        return text

    def state(self) -> dict:
        """What a training checkpoint records: the milestones written so far."""
        return dict(self.written)

    def restore(self, state: dict, step: int) -> None:
        """On resume: keep the milestones the checkpoint knew of; drop those written after it."""
        self.written = {name: entry for name, entry in (state or {}).items() if entry["step"] <= step}
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.is_dir() and path.name not in self.written:
                    shutil.rmtree(path, ignore_errors=True)
        if self.milestones or self.written:
            self._write_index()

    def start(self) -> None:
        """A fresh run: no series from an earlier run in this directory survives (--force)."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self.milestones:
            self._write_index()

    def due(self, step: int) -> bool:
        """Whether after_step(step) would write a checkpoint (the loop then swaps in the EMA weights)."""
        return any(milestone_name(m) not in self.written and crossed(m, step, self.corpus_words, self.steps_per_epoch)
                   for m in self.milestones)

    def after_step(self, step: int, model: torch.nn.Module, tokenizer: Tokenizer, log: Callable) -> None:
        for milestone in self.milestones:
            name = milestone_name(milestone)
            if name in self.written or not crossed(milestone, step, self.corpus_words, self.steps_per_epoch):
                continue
            seen = words_after(step, self.corpus_words, self.steps_per_epoch)
            entry = {"words": milestone, "step": step, "words_seen": seen}
            self._save(self.root / name, model, tokenizer, entry)
            self.written[name] = entry
            self._write_index()
            log(f"word checkpoint {name} at step {step} ({seen:,} words seen)")

    def _write_index(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / SERIES_FILE, durable=True, data={
            "track": self.cfg.data.track, "corpus_words": self.corpus_words, "steps_per_epoch": self.steps_per_epoch,
            "total_words": self.total_words, "milestones": [milestone_name(m) for m in self.milestones],
            "not_reached": [milestone_name(m) for m in self.beyond],
            "written": sorted(self.written.items(), key=lambda item: item[1]["words"]),
        })

    def _save(self, final: Path, model: torch.nn.Module, tokenizer: Tokenizer, entry: dict) -> None:
        try:
            with replace_dir(final, durable=True, tmp=final.with_name(f".tmp-{final.name}-{os.getpid()}")) as tmp:
                save_model(model, str(tmp / "model.safetensors"))
                meta = {**model_config_json(self.cfg, tokenizer), "track": self.cfg.data.track, **entry}
                (tmp / "config.json").write_text(json.dumps(meta, indent=1))
                tokenizer.save(str(tmp / "tokenizer.json"))
        except WriteError as err:
            raise CheckpointError(f"could not write word checkpoint {final}: {err.reason}; "
                                  "free space or fix permissions, then --resume") from None


def read_series(run: Path) -> list[tuple[str, Path, dict]]:
    """The written milestones of a run, in word order: (name, directory, entry)."""
    index = Path(run) / SERIES_DIR / SERIES_FILE
    if not index.is_file():
        return []
    try:
        written = json.loads(index.read_text())["written"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return []
    return [(name, Path(run) / SERIES_DIR / name, entry) for name, entry in written]


def written_series(run: Path, command: str) -> list[tuple[str, Path, dict]]:
    """read_series for a command that needs every milestone on disk: a one-line UserError naming
    `command` when the run has no series or lists a checkpoint it does not hold."""
    series = read_series(run)
    if not series:
        raise UserError(f"{command}: {run} has no word-checkpoint series ({Path(run) / SERIES_DIR / SERIES_FILE} is "
                        "missing or empty; train with train.word_checkpoints=babylm or a list like 1M,5M,10M)")
    missing = [name for name, path, _ in series if not (path / "config.json").is_file()]
    if missing:
        raise UserError(f"{command}: {Path(run) / SERIES_DIR} lists {', '.join(missing)} but has no such checkpoint")
    return series
