"""Shared fixtures: 2 torch threads, a private cache dir, and a small real-looking corpus."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

# One thread: the suite's models are tiny, where threading costs more than it gains, and CLI tests
# start subprocesses that inherit OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ANTLM_SHARED_DATA", REPO.parent / "shared" / "data"))
# Read-only numerics fixtures produced from the reference implementations (never copied here).
SHARED_FIXTURES = Path(os.environ.get("ANTLM_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))

WORDS = ("the a dog dogs cat cats sees see runs run big small red house houses child children "
         "near with and but is are was were happy quickly slowly tree trees").split()


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ANTLM_CACHE", str(tmp_path_factory.getbasetemp() / "antlm-cache"))


@pytest.fixture
def text_corpus(tmp_path) -> Path:
    """A 3-file BabyLM-layout corpus of random word sequences (about 12k words)."""
    rng = random.Random(0)
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ("a.train", "b.txt", "c.dev"):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + " ." for _ in range(500)]
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def tiny_overrides(corpus: Path, **extra) -> list[str]:
    base = {
        "data.corpus": str(corpus), "data.vocab_size": 300, "data.seq_len": 32, "model.max_seq_len": 32,
        "model.hidden_size": 32, "model.num_layers": 2, "model.num_heads": 4, "model.ffn_size": 64,
        "train.batch_size": 8, "train.log_every": 5, "train.eval_every": 10, "train.eval_batches": 2,
        "train.checkpoint_every": 10, "train.progress": "false", "optim.lr": 0.003, "schedule": "10st_clm+10st_mlm+5st_clm",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def save_random_model(directory: Path, tokenizer, backbone: str, **overrides) -> Path:
    """A run dir with final/ holding a tiny random `backbone` model for `tokenizer`. Norms and biases
    are moved off their 1/0 init, so a mis-mapped one cannot go unnoticed in parity tests."""
    from antlm.config import build_config
    from antlm.model_io import save_final
    from antlm.models import build_model

    cfg = build_config(None, tiny_overrides(directory / "unused-corpus", **{"model.backbone": backbone}, **overrides))
    cfg.model.vocab_size = tokenizer.get_vocab_size()
    torch.manual_seed(0)
    model = build_model(cfg.model)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_final(directory / "final", model, cfg, tokenizer)
    return directory


def train_tiny_run(root: Path, seed: int, **overrides) -> Path:
    """Train the tiny preset on 800 random 8-word sentences under root/corpus; returns root/run."""
    from antlm.config import build_config
    from antlm.train.loop import train

    rng = random.Random(seed)
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.train").write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) + " ." for _ in range(800)))
    train(build_config(None, tiny_overrides(corpus, **overrides)), root / "run", log=lambda m: None)
    return root / "run"
