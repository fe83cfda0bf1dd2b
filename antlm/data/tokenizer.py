"""Byte-level BPE tokenizer trained with the `tokenizers` library, saved as `tokenizer.json`.

Byte-level pre-tokenization means no input is ever out of vocabulary (`<unk>` exists for
interoperability only). Special tokens get fixed ids so that models and scorers can rely on them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from antlm.errors import UserError

PAD, BOS, EOS, MASK, UNK = "<pad>", "<s>", "</s>", "<mask>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, MASK, UNK)
BYTE_ALPHABET = 256
MIN_VOCAB = len(SPECIAL_TOKENS) + BYTE_ALPHABET


class TokenizerError(UserError):
    pass


def train_tokenizer(documents: Iterable[str], vocab_size: int, length: int | None = None) -> Tokenizer:
    if vocab_size < MIN_VOCAB:
        raise TokenizerError(
            f"data.vocab_size={vocab_size} is too small: a byte-level BPE needs at least {MIN_VOCAB} "
            f"({len(SPECIAL_TOKENS)} special tokens + {BYTE_ALPHABET} byte symbols)"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer, length=length)
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"tokenizer file not found: {path}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust library raises plain Exception subclasses
        raise TokenizerError(f"{path} is not a valid tokenizer.json: {str(err).splitlines()[0]}") from None
    check_special_tokens(tokenizer, path)
    return tokenizer


def check_special_tokens(tokenizer: Tokenizer, origin: object) -> None:
    """Masking and scoring rely on the special tokens being ids 0-4 (ids below 5 are never masked)."""
    missing = [tok for tok in SPECIAL_TOKENS if tokenizer.token_to_id(tok) is None]
    if missing:
        raise TokenizerError(f"tokenizer {origin} lacks the special tokens {', '.join(missing)}")
    misplaced = [f"{tok}={tokenizer.token_to_id(tok)}" for i, tok in enumerate(SPECIAL_TOKENS) if tokenizer.token_to_id(tok) != i]
    if misplaced:
        raise TokenizerError(f"tokenizer {origin} must have the special tokens {' '.join(SPECIAL_TOKENS)} as ids 0-4, has {', '.join(misplaced)}")


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    return {name: tokenizer.token_to_id(tok) for name, tok in zip(("pad", "bos", "eos", "mask", "unk"), SPECIAL_TOKENS)}
