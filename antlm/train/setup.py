"""Everything a run needs before its first step: the out dir, the corpus, the tokenizer, the
token store and the datasets. Kept apart from the loop so the loop reads as one `while`."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from tokenizers import Tokenizer

from antlm import config as config_lib
from antlm.atomic import replace_file, write_json, write_text
from antlm.config_types import RunConfig
from antlm.data import tokenizer as tok_lib
from antlm.data.corpus import Corpus, check_budget, count_words, find_corpus, iter_documents
from antlm.data.tokens import BlockDataset, TokenStore, build_store, default_cache_dir, split_dev
from antlm.errors import RunError
from antlm.tracks import check_corpus, get_track

RUN_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints", "final")
# Keys that may differ between a run and its resumption: they do not change what is computed.
RESUMABLE_KEYS = {("train", "progress"), ("train", "threads"), ("train", "max_steps"), ("train", "device"),
                  ("train", "progress_every_s"), ("train", "log_to")}


@dataclass
class RunData:
    corpus: Corpus
    words: int
    tokenizer: Tokenizer
    store: TokenStore
    train: BlockDataset
    dev: BlockDataset


def is_run_dir(out: Path) -> bool:
    return out.is_dir() and any((out / marker).exists() for marker in RUN_MARKERS)


def _diff_keys(a: dict, b: dict, prefix: tuple = (), saved_keys_only: bool = False) -> list[str]:
    """Dotted keys whose values differ. `saved_keys_only`: keys absent from `a` (a config saved by
    an older antlm) are not compared; the saved run's version decides their values."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        path = prefix + (key,)
        if saved_keys_only and key not in a or path == ("defaults_version",):
            continue
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            diffs += _diff_keys(a[key], b[key], path, saved_keys_only)
        elif a.get(key) != b.get(key) and path not in RESUMABLE_KEYS and path != ("model", "vocab_size"):
            diffs.append(".".join(path))
    return diffs


def prepare_out_dir(out: Path, cfg: RunConfig, resume: bool, force: bool) -> RunConfig:
    """Check the out dir against the requested mode (changing nothing); returns the config to run with."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a directory")
    if resume:
        saved_path = out / "config.yaml"
        if not saved_path.is_file():
            raise RunError(f"--resume: {out} holds no run (no config.yaml)")
        raw = config_lib.load_yaml(saved_path)
        saved = config_lib.from_dict(raw, saved=True)
        old = raw.get("defaults_version", 1) < config_lib.DEFAULTS_VERSION
        requested = config_lib.to_dict(cfg)
        if "schedule_rounding" not in raw:  # saved before the key existed: the run keeps its own rounding
            requested["schedule_rounding"] = saved.schedule_rounding
        diffs = _diff_keys(raw if old else config_lib.to_dict(saved), requested, saved_keys_only=old)
        if diffs:
            raise RunError(f"--resume: config differs from {saved_path} in {', '.join(diffs)}")
        for section, key in RESUMABLE_KEYS:
            setattr(getattr(saved, section), key, getattr(getattr(cfg, section), key))
        return saved
    if is_run_dir(out) and not force:
        raise RunError(f"{out} already holds a run; use --resume to continue it or --force to replace it")
    return cfg


def lock_out_dir(out: Path):
    """Hold an exclusive lock on `out` for the life of the process (the kernel releases it even on
    SIGKILL), so two runs never write one directory. The lock file's content is never written, so
    a refused command changes nothing. Returns the open lock file."""
    import fcntl

    path = out / ".antlm.lock"
    created = not path.exists()
    handle = open(path, "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunError(f"{out} is in use by another antlm process (its lock is held)") from None
    handle.created_here = created  # a refused start removes a lock file it created itself
    return handle


def release_out_dir(handle) -> None:
    """Close the lock. A lock file this process created goes too unless the run started (the loop
    then clears `created_here` through OutDirLock.started), so a refused command leaves the directory as it found it."""
    if getattr(handle, "created_here", False):
        Path(handle.name).unlink(missing_ok=True)
    handle.close()


class OutDirLock:
    """`with OutDirLock(out, is_main) as lock:` holds the out dir's lock for the whole command. An
    existing out dir is locked before it is inspected; a new one once the run creates it, in
    `started()`, which also keeps the lock file with the run. Ranks other than 0 take no lock."""

    def __init__(self, out: Path, enabled: bool = True):
        self.out, self.enabled, self.handle = out, enabled, None

    def __enter__(self) -> "OutDirLock":
        if self.enabled and self.out.is_dir():
            self.handle = lock_out_dir(self.out)
        return self

    def started(self) -> None:
        """The run has started (out/ exists and is claimed): its lock file now stays with it."""
        if not self.enabled:
            return
        if self.handle is None:
            self.handle = lock_out_dir(self.out)
        self.handle.created_here = False

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            release_out_dir(self.handle)


def claim_out_dir(out: Path, resume: bool) -> None:
    """Called only once the config and data are known good, so a failed start never deletes a run."""
    if not resume and is_run_dir(out):  # --force was given (checked in prepare_out_dir)
        for marker in RUN_MARKERS + ("tokenizer.json", "run_info.json"):
            path = out / marker
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _git_commit() -> Optional[str]:
    try:
        root = Path(__file__).resolve().parents[2]
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_info(device: torch.device) -> dict:
    import tokenizers

    return {
        "antlm_commit": _git_commit(), "python": sys.version.split()[0], "torch": torch.__version__,
        "tokenizers": tokenizers.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "device": str(device),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def resolve_corpus(cfg: RunConfig, log: Callable) -> Path:
    if cfg.data.corpus != "embedded":
        return Path(cfg.data.corpus)
    from antlm.data.synthetic import write_corpus

    cache = default_cache_dir(cfg.data.cache_dir)
    root = cache / f"embedded-s{cfg.data.embedded_seed}-n{cfg.data.embedded_sentences}"
    write_corpus(root, num_sentences=cfg.data.embedded_sentences, seed=cfg.data.embedded_seed)
    return root / "corpus"


def get_tokenizer(cfg: RunConfig, corpus: Corpus, out: Optional[Path], log: Callable) -> Tokenizer:
    """The run's own tokenizer on resume, a given one, or one trained (and cached) on the corpus."""
    if out is not None and (out / "tokenizer.json").is_file():
        return tok_lib.load_tokenizer(out / "tokenizer.json")
    if cfg.data.tokenizer:
        return tok_lib.load_tokenizer(cfg.data.tokenizer)
    if cfg.data.vocab_size < tok_lib.MIN_VOCAB:
        tok_lib.train_tokenizer([], cfg.data.vocab_size)  # raises the explanatory error
    cache = default_cache_dir(cfg.data.cache_dir) / "tokenizers"
    cached = cache / f"{corpus.fingerprint()[:20]}-v{cfg.data.vocab_size}.json"
    if cached.is_file():
        return tok_lib.load_tokenizer(cached)
    log(f"training a {cfg.data.vocab_size}-token BPE tokenizer on {corpus.root}")
    tokenizer = tok_lib.train_tokenizer(iter_documents(corpus.train_files), cfg.data.vocab_size)
    cache.mkdir(parents=True, exist_ok=True)
    replace_file(cached, lambda tmp: tokenizer.save(str(tmp)))
    return tokenizer


def prepare_data(cfg: RunConfig, out: Optional[Path], log: Callable = print) -> RunData:
    corpus = find_corpus(resolve_corpus(cfg, log))
    words = check_budget(corpus, cfg.data.word_budget)
    check_corpus(get_track(cfg.data.track), words, corpus.root)
    tokenizer = get_tokenizer(cfg, corpus, out, log)
    store = build_store(corpus, tokenizer, default_cache_dir(cfg.data.cache_dir), log)
    bos = tokenizer.token_to_id(tok_lib.BOS)
    seq_len = cfg.data.seq_len
    shift = cfg.data.block_offsets == "random"  # training blocks only: dev blocks stay where they are
    if store.dev is not None and store.dev.size >= seq_len:
        train = BlockDataset(store.train, seq_len, bos, random_offsets=shift)
        dev = BlockDataset(store.dev, seq_len, bos)
    else:
        train_ids, dev_ids = split_dev(store.train.size // seq_len, cfg.data.dev_fraction)
        train = BlockDataset(store.train, seq_len, bos, train_ids, random_offsets=shift)
        dev = BlockDataset(store.train, seq_len, bos, dev_ids)
    if len(train) == 0:
        raise RunError(f"corpus {corpus.root} has fewer tokens ({store.train.size}) than one sequence of {seq_len}")
    return RunData(corpus, words, tokenizer, store, train, dev)


def rewrite_metrics(path: Path, up_to_step: int) -> None:
    """On resume, drop rows logged after the checkpoint: they will be logged again."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= up_to_step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line torn by a crash mid-write: it is after the checkpoint anyway
    write_text(path, "".join(line + "\n" for line in keep))


def write_run_files(out: Path, cfg: RunConfig, tokenizer: Tokenizer, info: dict) -> None:
    write_text(out / "config.yaml", config_lib.dump_yaml(cfg))
    if not (out / "tokenizer.json").is_file():
        replace_file(out / "tokenizer.json", lambda tmp: tokenizer.save(str(tmp)))
    write_json(out / "run_info.json", info, durable=True)


def prepare_command(cfg: RunConfig, log: Callable = print) -> dict:
    """`antlm prepare`: corpus check, tokenizer and token store, without training."""
    data = prepare_data(cfg, None, log)
    summary = {
        "corpus": str(data.corpus.root), "train_files": len(data.corpus.train_files),
        "dev_files": len(data.corpus.dev_files), "words": data.words,
        "train_tokens": int(data.store.train.size), "vocab_size": data.tokenizer.get_vocab_size(),
        "train_blocks": len(data.train), "dev_blocks": len(data.dev), "store": data.store.meta["directory"],
        "tokenize_seconds": data.store.meta["seconds"],
    }
    log(json.dumps(summary, indent=1))
    return summary


__all__ = ["prepare_out_dir", "claim_out_dir", "OutDirLock", "lock_out_dir", "release_out_dir", "prepare_data", "write_run_files", "run_info", "prepare_command", "count_words"]
