"""Is the distillation target better than the student? CLM loss (nats per token) of each teacher,
of the teachers' ensemble as the student is taught it (the mean of their logits, here at T 1 so
that it is a prediction), and of students, on the same blocks:
- by default one student's own dev blocks: the `train.eval_batches` blocks spread over the dev set
  that its logged `dev_clm_loss` uses, so the student's value here equals its last logged one (a
  check that the blocks are the same). On a small sample these are only a few thousand tokens;
- with `heldout`, every block of a corpus none of the models trained on (`heldout_sample`).

    python experiments/distillation/ensemble_dev.py STUDENT_RUN TEACHER_RUN [TEACHER_RUN ...]
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]

from antlm.config import build_config  # noqa: E402
from antlm.data import tokenizer as tok_lib  # noqa: E402
from antlm.data.batches import BatchMaker  # noqa: E402
from antlm.model_io import load_model  # noqa: E402
from antlm.objectives import IGNORE  # noqa: E402
from antlm.train.dev_loss import DEV_MASK_SEED  # noqa: E402
from antlm.train.setup import prepare_data  # noqa: E402


SNIPPETS = REPO.parent / "shared" / "data" / "babylm_2024_100M_snippets"
ENSEMBLE = "ensemble (mean of teacher logits)"


def heldout_sample(out: Path, skip: int, count: int, max_words: int | None = None) -> Path:
    """Lines skip .. skip+count-1 (10,000-word windows) of each source file of the shared snippets
    corpus, each cut to its first `max_words` words if given: the study's sample is its first
    `--windows` lines, so with skip >= windows no model has seen this text."""
    sample = out / (f"heldout-{skip}-{count}w" + (f"-{max_words}" if max_words else ""))
    if not (sample / "DONE").is_file():
        sample.mkdir(parents=True, exist_ok=True)
        for source in sorted(SNIPPETS.glob("*.txt")):
            lines = source.read_text(encoding="utf-8").splitlines()[skip:skip + count]
            lines = [" ".join(line.split()[:max_words]) for line in lines] if max_words else lines
            (sample / f"{source.stem}.train").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (sample / "DONE").write_text("")
    return sample


@torch.no_grad()
def dev_clm_losses(student: Path, teachers: list[Path], others: list[Path] = (), heldout: Path | None = None,
                   cache: dict | None = None) -> dict:
    """`cache` keeps the teachers' and the ensemble's losses by the blocks they were computed on, so
    another student's call on the same blocks (another seed, one dev split) does not run them again."""
    corpus = [] if heldout is None else [f"data.corpus={heldout}", f"data.tokenizer={student / 'tokenizer.json'}"]
    cfg = build_config(str(student / "config.yaml"), corpus)
    if heldout is None:
        data = prepare_data(cfg, student, log=lambda m: None)
        blocks = data.dev
        batch_size = min(cfg.train.micro_batch_size or cfg.train.batch_size, len(blocks))
        n_batches = max(1, min(cfg.train.eval_batches, len(blocks) // batch_size))  # as train.dev_loss.dev_losses
        spread = np.linspace(0, len(blocks) - 1, n_batches * batch_size).round().astype(np.int64)
    else:
        data = prepare_data(cfg, None, log=lambda m: None)
        blocks, batch_size = data.train, cfg.train.batch_size  # the dev split of this corpus is not used
        spread = np.arange(len(blocks))
        n_batches = -(-len(blocks) // batch_size)
    maker = BatchMaker(cfg, blocks, tok_lib.special_ids(data.tokenizer), data.tokenizer.get_vocab_size(), 1)
    batches = [maker.make(spread[i * batch_size:(i + 1) * batch_size], "clm", DEV_MASK_SEED + i, step=0)
               for i in range(n_batches)]
    key = hashlib.sha256(b"".join(b.input_ids.numpy().tobytes() + b.targets.numpy().tobytes() for b in batches)).hexdigest()
    known = (cache or {}).get(key)
    models = {path.name: load_model(path)[0] for path in [*(teachers if known is None else []), student, *others]}

    def logits(model, batch):
        features, weight, bias = model.head_inputs(batch.input_ids, True)
        return F.linear(features.reshape(-1, features.size(-1)), weight, bias)

    totals = dict.fromkeys([*models, *([ENSEMBLE] if known is None else [])], 0.0)
    count = 0
    for batch in batches:
        targets = batch.targets.reshape(-1)
        per_model = {name: logits(model, batch) for name, model in models.items()}
        if known is None:
            per_model[ENSEMBLE] = torch.stack([per_model[t.name] for t in teachers]).mean(0)
        for name, value in per_model.items():
            totals[name] += F.cross_entropy(value, targets, ignore_index=IGNORE, reduction="sum").item()
        count += int((targets != IGNORE).sum())
    losses = {name: round(total / count, 5) for name, total in totals.items()}
    if known is None:
        known = {name: losses.pop(name) for name in [*(t.name for t in teachers), ENSEMBLE]}
        if cache is not None:
            cache[key] = known
    return {t.name: known[t.name] for t in teachers} | losses | {ENSEMBLE: known[ENSEMBLE], "dev_tokens": count}


def main(argv: list[str] | None = None) -> int:
    args = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if len(args) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(json.dumps(dev_clm_losses(args[0], args[1:]), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
