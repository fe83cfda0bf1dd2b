"""A text corpus in the BabyLM layout: `*.train` and `*.txt` are training text, `*.dev` is dev
text, `*.test` is held out and never read for training. Files are found recursively, so both a
flat folder and the official `train_10M/ dev/ test/` tree work. One line is one document
(utterance, paragraph or snippet); blank lines are skipped; a UTF-8 BOM and CRLF line ends are
accepted.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from antlm.errors import UserError

TRAIN_SUFFIXES = (".train", ".txt")
DEV_SUFFIXES = (".dev",)
TEST_SUFFIXES = (".test",)


class CorpusError(UserError):
    """A corpus that cannot be used; the message names the file."""


@dataclass
class Corpus:
    root: Path
    train_files: list[Path]
    dev_files: list[Path]
    test_files: list[Path] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Content hash of the training and dev files (names, sizes and bytes)."""
        digest = hashlib.sha256()
        for kind, files in (("train", self.train_files), ("dev", self.dev_files)):
            for path in files:
                digest.update(f"{kind}:{path.relative_to(self.root)}:{path.stat().st_size}\n".encode())
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(block)
        return digest.hexdigest()


def find_corpus(root: str | Path) -> Corpus:
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"corpus directory not found: {root}")
    if not root.is_dir():
        raise CorpusError(f"corpus must be a directory (BabyLM layout), got a file: {root}")

    def collect(suffixes: tuple[str, ...]) -> list[Path]:
        return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes)

    corpus = Corpus(root, collect(TRAIN_SUFFIXES), collect(DEV_SUFFIXES), collect(TEST_SUFFIXES))
    if not corpus.train_files:
        raise CorpusError(f"no training files (*.train or *.txt) in {root}")
    if all(p.stat().st_size == 0 for p in corpus.train_files):
        raise CorpusError(f"training files in {root} are all empty")
    return corpus


def read_text(path: Path) -> str:
    """Decode a whole file as UTF-8; an undecodable byte is an error naming file and offset."""
    data = path.read_bytes()
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise CorpusError(f"{path} looks binary (NUL byte at offset {nul}); expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: invalid UTF-8 at byte offset {err.start}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def iter_documents(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        for line in read_text(path).splitlines():
            line = line.strip()
            if line:
                yield line


def count_words(paths: list[Path]) -> int:
    return sum(len(read_text(p).split()) for p in paths)


def check_budget(corpus: Corpus, word_budget: Optional[int]) -> int:
    words = count_words(corpus.train_files)
    if words == 0:
        raise CorpusError(f"training files in {corpus.root} hold no words")
    if word_budget is not None and words > word_budget:
        raise CorpusError(
            f"corpus {corpus.root} has {words:,} training words, over data.word_budget={word_budget:,}"
        )
    return words
