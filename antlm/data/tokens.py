"""Token store: the corpus tokenized once into a memory-mapped `.npy` array (`uint16`, or
`uint32` when the vocabulary needs it), cached by a hash of corpus and tokenizer.

Documents are joined into one stream with `</s>` after each. Training examples are fixed,
non-overlapping blocks of `seq_len` stream tokens; a block is fed as `<s>` followed by its first
`seq_len - 1` tokens, so every stream token is a next-token target exactly once per epoch and
every example starts the way scored sentences do (after `<s>`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tokenizers import Tokenizer

from antlm.atomic import replace_file, write_json
from antlm.data.corpus import Corpus, iter_documents
from antlm.data.tokenizer import EOS

STORE_VERSION = 1
_ENCODE_CHUNK = 256


def default_cache_dir(configured: Optional[str]) -> Path:
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("ANTLM_CACHE", Path.home() / ".cache" / "antlm"))


def tokenizer_hash(tokenizer: Tokenizer) -> str:
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


def encode_files(paths: list[Path], tokenizer: Tokenizer) -> np.ndarray:
    """Tokenize documents in parallel batches (the Rust encoder uses every core)."""
    eos = tokenizer.token_to_id(EOS)
    dtype = np.uint16 if tokenizer.get_vocab_size() <= np.iinfo(np.uint16).max + 1 else np.uint32
    pieces: list[np.ndarray] = []
    batch: list[str] = []

    def flush() -> None:
        for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
            pieces.append(np.asarray(encoding.ids + [eos], dtype=dtype))
        batch.clear()

    for document in iter_documents(paths):
        batch.append(document)
        if len(batch) >= _ENCODE_CHUNK:
            flush()
    if batch:
        flush()
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    replace_file(path, save, durable=True)


@dataclass
class TokenStore:
    train: np.ndarray  # memory-mapped
    dev: Optional[np.ndarray]  # None when the corpus has no *.dev files
    meta: dict

    @property
    def directory(self) -> Path:
        return Path(self.meta["directory"])


def build_store(corpus: Corpus, tokenizer: Tokenizer, cache_dir: Path, log=print) -> TokenStore:
    key = hashlib.sha256(
        f"v{STORE_VERSION}:{corpus.fingerprint()}:{tokenizer_hash(tokenizer)}".encode()
    ).hexdigest()[:20]
    directory = cache_dir / "tokens" / key
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        train = encode_files(corpus.train_files, tokenizer)
        _atomic_save(directory / "train.npy", train)
        has_dev = bool(corpus.dev_files)
        if has_dev:
            _atomic_save(directory / "dev.npy", encode_files(corpus.dev_files, tokenizer))
        seconds = time.perf_counter() - start
        meta = {
            "version": STORE_VERSION, "corpus": str(corpus.root), "train_tokens": int(train.size),
            "has_dev": has_dev, "dtype": str(train.dtype), "seconds": round(seconds, 2),
            "vocab_size": tokenizer.get_vocab_size(),
        }
        # meta.json is written last: its presence marks a complete store.
        write_json(meta_path, meta)
        log(f"tokenized {corpus.root}: {train.size:,} tokens in {seconds:.1f}s -> {directory}")
    meta = json.loads(meta_path.read_text())
    meta["directory"] = str(directory)
    train = np.load(directory / "train.npy", mmap_mode="r")
    dev = np.load(directory / "dev.npy", mmap_mode="r") if meta["has_dev"] else None
    return TokenStore(train, dev, meta)


class BlockDataset:
    """Fixed blocks of a token stream; `order(epoch)` is a seeded permutation, so the batch of any
    step is a pure function of (seed, step): resuming needs no data-loader state.

    `random_offsets` (data.block_offsets: random, BabyLlama's `random_chunk=True`): in each epoch a
    block starts at a seeded random offset in [0, seq_len) past its fixed start, so it reads into
    the next block; a block whose next block is not in this dataset (a dev block, the stream's end)
    keeps offset 0, so train and dev never share a token. `order_key` separates the seeded orders
    of datasets over one stream (the length stages of data.length_schedule)."""

    def __init__(self, stream: np.ndarray, seq_len: int, bos_id: int, block_ids: Optional[np.ndarray] = None,
                 random_offsets: bool = False, order_key: tuple[int, ...] = ()):
        self.stream = stream
        self.seq_len = seq_len
        self.bos_id = bos_id
        total = int(stream.shape[0]) // seq_len
        self.block_ids = np.arange(total) if block_ids is None else np.asarray(block_ids, dtype=np.int64)
        self.random_offsets = random_offsets
        self.order_key = tuple(int(k) for k in order_key)
        self._can_shift = np.isin(self.block_ids + 1, self.block_ids) if random_offsets else None
        self._orders: dict[tuple[int, int], np.ndarray] = {}
        self._offsets: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.block_ids.size)

    def order(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if key not in self._orders:
            self._orders = {key: np.random.default_rng([seed, epoch, 7, *self.order_key]).permutation(len(self))}
        return self._orders[key]

    def offsets(self, seed: int, epoch: int) -> np.ndarray:
        """Each block's start offset in `epoch` (zeros unless random_offsets)."""
        if not self.random_offsets:
            return np.zeros(len(self), dtype=np.int64)
        key = (seed, epoch)
        if key not in self._offsets:
            draw = np.random.default_rng([seed, epoch, 11, *self.order_key]).integers(0, self.seq_len, len(self))
            self._offsets = {key: np.where(self._can_shift, draw, 0)}
        return self._offsets[key]

    def blocks(self, positions: np.ndarray, epochs: Optional[np.ndarray] = None, seed: int = 0):
        """(input_ids, targets) as int64 [n, seq_len] for dataset positions: numpy arrays, or tensors
        on the stream's device when the stream is a tensor (see train.device.place_token_store).
        `epochs` (one per position) and `seed` choose the random offsets; None: offset 0."""
        starts = self.block_ids[positions] * self.seq_len
        if self.random_offsets and epochs is not None:
            epochs = np.broadcast_to(np.asarray(epochs, dtype=np.int64), positions.shape)
            shift = np.zeros(positions.shape, dtype=np.int64)
            for epoch in np.unique(epochs):
                chosen = epochs == epoch
                shift[chosen] = self.offsets(seed, int(epoch))[positions[chosen]]
            starts = starts + shift
        if torch.is_tensor(self.stream):
            index = torch.from_numpy(starts).to(self.stream.device)[:, None] + torch.arange(
                self.seq_len, device=self.stream.device)
            targets = self.stream[index].long()
            inputs = torch.cat([targets.new_full((targets.size(0), 1), self.bos_id), targets[:, :-1]], dim=1)
            return inputs, targets
        index = starts[:, None] + np.arange(self.seq_len)[None, :]
        targets = self.stream[index].astype(np.int64)
        inputs = np.empty_like(targets)
        inputs[:, 0] = self.bos_id
        inputs[:, 1:] = targets[:, :-1]
        return inputs, targets


def grouped_blocks(block_ids: np.ndarray, factor: int) -> np.ndarray:
    """Ids of the blocks `factor` times longer whose every piece is among `block_ids` (blocks of
    the base length over the same stream): a long view that keeps a train/dev split."""
    if factor == 1:
        return np.asarray(block_ids, dtype=np.int64)
    if len(block_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    present = np.zeros(int(np.max(block_ids)) + 1, dtype=bool)
    present[block_ids] = True
    groups = present.size // factor
    return np.flatnonzero(present[:groups * factor].reshape(groups, factor).all(axis=1))


def split_dev(n_blocks: int, dev_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out every k-th block (spread over all sources) when the corpus has no dev files."""
    if dev_fraction <= 0 or n_blocks < 4:
        return np.arange(n_blocks), np.arange(0)
    stride = max(2, int(round(1 / dev_fraction)))
    all_ids = np.arange(n_blocks)
    is_dev = (all_ids % stride) == stride - 1
    return all_ids[~is_dev], all_ids[is_dev]
