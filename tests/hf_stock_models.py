"""Randomly initialised stock `transformers` models of two families, saved as local directories with
a tokenizer trained here (nothing is downloaded): a GPT-2 causal LM (no special tokens around a text)
and a BERT masked LM (`[CLS] text [SEP]`). Tests score them with `antlm eval` and with the 2025
method in plain transformers."""
from __future__ import annotations

from pathlib import Path

import torch

SENTENCES = [
    "The cat sleeps on the mat.", "The cats sleep on the mat.", "A dog chased the ball in the park.",
    "Box 1 contains the apple and the book.", "Who did the teacher say that the student met?",
    "She is happy because the rain stopped.", "These children were reading old books.",
    "The key to the cabinets is on the table.", "Many people have seen a wug.",
] * 20


def _train(model, trainer_cls, specials, vocab_size, **kwargs):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer(model)
    for key, value in kwargs.items():
        setattr(tokenizer, key, value)
    tokenizer.train_from_iterator(SENTENCES, trainer_cls(vocab_size=vocab_size, special_tokens=specials))
    return tokenizer


def gpt2_directory(directory: Path, seed: int = 0) -> Path:
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    backend = _train(models.BPE(), trainers.BpeTrainer, ["<|endoftext|>"], 300,
                     pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False), decoder=decoders.ByteLevel())
    tokenizer = GPT2TokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=backend.get_vocab_size(), n_positions=128, n_embd=64, n_layer=2, n_head=4,
                        bos_token_id=0, eos_token_id=0, initializer_range=0.2)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def bert_directory(directory: Path, seed: int = 0) -> Path:
    from tokenizers import models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = _train(models.WordPiece(unk_token="[UNK]"), trainers.WordPieceTrainer, specials, 300,
                     normalizer=normalizers.BertNormalizer(lowercase=True), pre_tokenizer=pre_tokenizers.BertPreTokenizer())
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]",
                                        pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=backend.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, initializer_range=0.2)
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
