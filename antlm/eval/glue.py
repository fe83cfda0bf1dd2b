"""(Super)GLUE fine-tuning in the BabyLM 2024 recipe: a fresh copy of the pretrained model per task,
a classification head, AdamW, up to 10 epochs, batch 64, lr 5e-5, max length 128, seed 12, and
early stopping with patience 3 on the validation metric (accuracy; F1 for MRPC and QQP).

As in the official BabyLM 2024 pipeline, the validation split is used BOTH to pick the best epoch
and to report its score: the numbers are comparable with BabyLM results, but optimistic as
estimates of held-out performance.

Data layouts (detected from `data_dir`):
  * shared:   <dir>/glue/<task>/train.jsonl, validation.jsonl, and for mnli
              validation_mismatched.jsonl
  * official: <dir>/glue_filtered/<task>.train.jsonl, <task>.valid.jsonl, and for mnli
              mnli-mm.valid.jsonl (also accepted: mnli_mismatched.valid.jsonl,
              mnli-mismatched.valid.jsonl)
`data_dir` may also be the `glue/` or `glue_filtered/` folder itself.

Backends (how the one AntLM network reads a pair):
  * causal: causal mask, pool the LAST real token (the final `</s>`), the only position that has
    seen the whole input under a causal mask.
  * mlm: bidirectional attention, pool the first token `<s>`, like BERT's [CLS].
Input: `<s> A </s> B </s>`, truncated longest-segment-first to max_length, right-padded. A/B are
the task's two fields; multirc uses (paragraph, "question answer") and wsc uses
(text, "<span2> refers to <span1>").
Head: parameter-free LayerNorm -> Dropout -> Linear(hidden, labels). The LayerNorm is there
because LTG-BERT's residual stream is not normalised at the output (BabyLlama's is; a second
normalisation costs nothing), so the same lr suits both backbones.
"""
from __future__ import annotations

import dataclasses
import json
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from antlm.data.tokenizer import BOS, EOS, PAD
from antlm.errors import UserError
from antlm.model_io import load_model

GLUE_TASKS = ("boolq", "mnli", "mrpc", "multirc", "qqp", "rte", "wsc")
BACKENDS = ("causal", "mlm")
# Fields each task's rows must have (besides "label"), and how many labels it has.
TASK_FIELDS = {
    "boolq": ("question", "passage"), "mnli": ("premise", "hypothesis"), "mrpc": ("sentence1", "sentence2"),
    "multirc": ("paragraph", "question", "answer"), "qqp": ("question1", "question2"),
    "rte": ("sentence1", "sentence2"), "wsc": ("text", "span1_text", "span2_text"),
}
NUM_LABELS = {task: 3 if task == "mnli" else 2 for task in GLUE_TASKS}
F1_TASKS = ("mrpc", "qqp")
MISMATCHED_OFFICIAL = ("mnli-mm.valid.jsonl", "mnli_mismatched.valid.jsonl", "mnli-mismatched.valid.jsonl")


@dataclass
class GlueSettings:
    # The first six are the BabyLM 2024 recipe.
    lr: float = 5e-5
    batch_size: int = 64
    max_epochs: int = 10
    patience: int = 3
    max_length: int = 128
    """Clipped to the model's max_seq_len when that is shorter (the entry records the length used)."""
    seed: int = 12
    train_limit: Optional[int] = None
    """Use only the first N training examples (a cheaper, non-comparable run)."""
    eval_limit: Optional[int] = None
    """Score only the first N validation examples (likewise)."""
    # Our choices (the 2024 recipe leaves these at HF defaults or does not say):
    weight_decay: float = 0.01
    """On matrices only; biases and norm gains are not decayed (the usual BERT convention)."""
    warmup_fraction: float = 0.06
    """Linear warmup over this share of all steps, then linear decay to 0 (RoBERTa's GLUE recipe)."""
    classifier_dropout: float = 0.1
    max_grad_norm: float = 1.0
    micro_batch_size: Optional[int] = None
    """Rows per forward pass; batch_size/micro_batch_size is gradient accumulation (same result)."""
    eval_batch_size: int = 128


def _check_settings(s: GlueSettings) -> None:
    positive = {"batch_size": s.batch_size, "max_epochs": s.max_epochs, "patience": s.patience,
                "eval_batch_size": s.eval_batch_size, "micro_batch_size": s.micro_batch_size or 1,
                "train_limit": 1 if s.train_limit is None else s.train_limit,
                "eval_limit": 1 if s.eval_limit is None else s.eval_limit}
    for name, value in positive.items():
        if value < 1:
            raise UserError(f"glue setting {name} must be at least 1, got {value}")
    if s.max_length < 8:
        raise UserError(f"glue setting max_length must be at least 8, got {s.max_length}")
    if s.lr < 0 or s.weight_decay < 0 or not 0 <= s.warmup_fraction < 1 or not 0 <= s.classifier_dropout < 1:
        raise UserError("glue settings need lr >= 0, weight_decay >= 0, 0 <= warmup_fraction < 1, "
                        "0 <= classifier_dropout < 1")


def non_default_settings(s: GlueSettings) -> dict:
    defaults = dataclasses.asdict(GlueSettings())
    return {k: v for k, v in dataclasses.asdict(s).items() if v != defaults[k]}


# ----------------------------------------------------------------------------------------- data
@dataclass
class Example:
    first: str
    second: str
    label: int


@dataclass
class TaskData:
    task: str
    train: Optional[list]
    validation: list
    validation_mismatched: Optional[list]
    train_path: Path
    validation_path: Path
    mismatched_path: Optional[Path]
    """Where mnli's mismatched split is (or was looked for); None for other tasks."""


def _pair(task: str, row: dict) -> tuple[str, str]:
    if task == "multirc":
        return row["paragraph"], f"{row['question']} {row['answer']}"
    if task == "wsc":
        # WSC asks whether the pronoun (span2) refers to the noun phrase (span1); we state it.
        return row["text"], f"{row['span2_text']} refers to {row['span1_text']}"
    first, second = TASK_FIELDS[task]
    return row[first], row[second]


def read_jsonl(path: Path, task: str) -> list[Example]:
    """Parse and validate one split; any bad line is a UserError naming `file:line`."""
    examples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{where}: malformed JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in (*TASK_FIELDS[task], "label"):
                if key not in row:
                    raise UserError(f"{where}: missing field '{key}' for task {task}")
            for key in TASK_FIELDS[task]:
                if not isinstance(row[key], str):
                    raise UserError(f"{where}: field '{key}' must be a string")
            label = row["label"]
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < NUM_LABELS[task]:
                raise UserError(f"{where}: label {label!r} is not one of {list(range(NUM_LABELS[task]))} for {task}")
            examples.append(Example(*_pair(task, row), label))
    return examples


def _task_paths(data_dir: Path, task: str) -> tuple[Path, Path, Optional[Path]]:
    """(train, validation, mnli-mismatched or None) paths in whichever layout `data_dir` holds."""
    for root, layout in ((data_dir / "glue", "shared"), (data_dir / "glue_filtered", "official"),
                         (data_dir, "shared"), (data_dir, "official")):
        if layout == "shared" and any((root / t / "validation.jsonl").is_file() for t in GLUE_TASKS):
            folder = root / task
            return folder / "train.jsonl", folder / "validation.jsonl", \
                (folder / "validation_mismatched.jsonl" if task == "mnli" else None)
        if layout == "official" and any((root / f"{t}.valid.jsonl").is_file() for t in GLUE_TASKS):
            mismatched = None
            if task == "mnli":
                found = [root / n for n in MISMATCHED_OFFICIAL if (root / n).is_file()]
                mismatched = found[0] if found else root / MISMATCHED_OFFICIAL[0]
            return root / f"{task}.train.jsonl", root / f"{task}.valid.jsonl", mismatched
    raise UserError(f"no GLUE data in {data_dir}: expected glue/<task>/validation.jsonl (shared layout) "
                    "or glue_filtered/<task>.valid.jsonl (BabyLM 2024 layout)")


def load_task_data(data_dir, task: str) -> TaskData:
    """Read and validate all of a task's splits; `train` is None when the file is absent."""
    train_path, valid_path, mm_path = _task_paths(Path(data_dir), task)
    if not valid_path.is_file():
        raise UserError(f"validation file for {task} not found: {valid_path}")
    train = read_jsonl(train_path, task) if train_path.is_file() else None
    mismatched = read_jsonl(mm_path, task) if mm_path is not None and mm_path.is_file() else None
    return TaskData(task, train, read_jsonl(valid_path, task), mismatched, train_path, valid_path, mm_path)


# -------------------------------------------------------------------------------------- metrics
def accuracy(preds: Iterable[int], labels: Iterable[int]) -> float:
    pairs = list(zip(preds, labels))
    return 100.0 * sum(p == y for p, y in pairs) / max(1, len(pairs))


def binary_f1(preds: Iterable[int], labels: Iterable[int], positive: int = 1) -> float:
    """F1 of the positive class, 0-100; 0 when there are no positives predicted or gold (as sklearn)."""
    tp = fp = fn = 0
    for p, y in zip(preds, labels):
        tp += p == positive and y == positive
        fp += p == positive and y != positive
        fn += p != positive and y == positive
    return 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0


class EarlyStopping:
    """Keep the best epoch (strictly higher score wins, so ties keep the earlier one) and stop after
    `patience` epochs in a row without improvement (as HF's EarlyStoppingCallback)."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_epoch, self.bad_epochs = patience, -math.inf, 0, 0

    def update(self, score: float, epoch: int) -> bool:
        if score > self.best:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


# ---------------------------------------------------------------------------------------- model
def truncate_pair(a: list, b: list, budget: int) -> tuple[list, list]:
    """Drop tokens from the end of the currently longer segment until both fit; ties trim the second
    segment (as HF's 'longest_first')."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def encode(tokenizer, examples: list[Example], max_length: int) -> list[list[int]]:
    bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
    firsts = tokenizer.encode_batch([e.first for e in examples], add_special_tokens=False)
    seconds = tokenizer.encode_batch([e.second for e in examples], add_special_tokens=False)
    rows = []
    for x, y in zip(firsts, seconds):
        a, b = truncate_pair(x.ids, y.ids, max_length - 3)
        rows.append([bos, *a, eos, *b, eos])
    return rows


class GlueClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, hidden: int, num_labels: int, causal: bool, dropout: float):
        super().__init__()
        self.backbone, self.causal = backbone, causal
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)
        nn.init.normal_(self.head.weight, std=0.02)  # BERT's classifier init: small, unbiased logits
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone.hidden_states(ids, causal=self.causal, attention_mask=mask)
        if self.causal:
            last = mask.sum(dim=1) - 1  # right padding: the last real token is the final </s>
            pooled = hidden[torch.arange(ids.size(0), device=ids.device), last]
        else:
            pooled = hidden[:, 0]
        return self.head(self.dropout(self.norm(pooled.float())))


def _collate(rows: list, pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    return ids.to(device), mask.to(device)


@torch.no_grad()
def predict(classifier, rows: list, pad: int, batch_size: int, device, autocast) -> list[int]:
    # Sorting by length keeps padding (wasted compute) small; results go back in file order.
    classifier.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    preds = [0] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start: start + batch_size]
        ids, mask = _collate([rows[i] for i in chunk], pad, device)
        with autocast():
            logits = classifier(ids, mask)
        for i, p in zip(chunk, logits.argmax(dim=-1).tolist()):
            preds[i] = p
    return preds


def _optimizer(classifier: nn.Module, s: GlueSettings) -> torch.optim.Optimizer:
    decay = [p for p in classifier.parameters() if p.ndim >= 2]
    no_decay = [p for p in classifier.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=s.lr)


def _linear_schedule(optimizer, total: int, warmup_fraction: float):
    warmup = int(warmup_fraction * total)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _scores(task: str, preds: list, examples: list) -> dict:
    labels = [e.label for e in examples]
    out = {"accuracy": accuracy(preds, labels)}
    if task in F1_TASKS:
        out["f1"] = binary_f1(preds, labels)
    return out


def _train_epoch(classifier, rows: list, labels: torch.Tensor, order: list, s: GlueSettings, optimizer,
                 scheduler, pad: int, device, autocast, bar) -> float:
    """One pass over `rows` in `order`; returns the mean training loss."""
    classifier.train()
    micro = min(s.micro_batch_size or s.batch_size, s.batch_size)
    loss_sum = 0.0
    for start in range(0, len(order), s.batch_size):
        batch = order[start: start + s.batch_size]
        optimizer.zero_grad(set_to_none=True)
        for m in range(0, len(batch), micro):
            part = batch[m: m + micro]
            ids, mask = _collate([rows[i] for i in part], pad, device)
            with autocast():
                logits = classifier(ids, mask)
            # Sum over rows / batch rows: accumulated micro-batches give the full-batch gradient.
            loss = F.cross_entropy(logits.float(), labels[part].to(device), reduction="sum") / len(batch)
            loss.backward()
            loss_sum += loss.item() * len(batch)
        if s.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), s.max_grad_norm)
        optimizer.step()
        scheduler.step()
        bar.update(1)
    return loss_sum / max(1, len(order))


def finetune_task(model_path, data: TaskData, backend: str, s: GlueSettings, device="cpu",
                  log: Callable = print, progress: bool = False) -> dict:
    task, device = data.task, torch.device(device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    backbone, tokenizer = load_model(model_path, device)
    model_cfg = backbone.antlm_config["model"]
    max_length = min(s.max_length, model_cfg["max_seq_len"])
    pad = tokenizer.token_to_id(PAD)
    torch.manual_seed(s.seed)  # head init and dropout
    classifier = GlueClassifier(backbone, model_cfg["hidden_size"], NUM_LABELS[task], backend == "causal",
                                s.classifier_dropout).to(device)

    train = data.train[: s.train_limit] if s.train_limit else data.train
    valid = data.validation[: s.eval_limit] if s.eval_limit else data.validation
    mismatched = data.validation_mismatched
    if mismatched is not None and s.eval_limit:
        mismatched = mismatched[: s.eval_limit]
    train_rows, valid_rows = encode(tokenizer, train, max_length), encode(tokenizer, valid, max_length)
    mm_rows = encode(tokenizer, mismatched, max_length) if mismatched is not None else None
    labels = torch.tensor([e.label for e in train])

    steps_per_epoch = math.ceil(len(train) / s.batch_size)
    optimizer = _optimizer(classifier, s)
    # The schedule spans max_epochs even when early stopping ends the run sooner (as HF does).
    scheduler = _linear_schedule(optimizer, steps_per_epoch * s.max_epochs, s.warmup_fraction)
    shuffle = torch.Generator().manual_seed(s.seed)
    stopper, best, history, metric = EarlyStopping(s.patience), {}, [], "f1" if task in F1_TASKS else "accuracy"
    epoch = 0
    for epoch in range(1, s.max_epochs + 1):
        order = torch.randperm(len(train), generator=shuffle).tolist()
        with tqdm(total=steps_per_epoch, desc=f"{task} epoch {epoch}", disable=not progress, leave=False) as bar:
            train_loss = _train_epoch(classifier, train_rows, labels, order, s, optimizer, scheduler, pad, device,
                                      autocast, bar)
        preds = predict(classifier, valid_rows, pad, s.eval_batch_size, device, autocast)
        scores = _scores(task, preds, valid)
        history.append({"epoch": epoch, "train_loss": train_loss, **scores})
        improved = stopper.update(scores[metric], epoch)
        log(f"glue {task} epoch {epoch}: train loss {train_loss:.4f}, "
            f"{metric} {scores[metric]:.2f}{' (best)' if improved else ''}")
        if improved:
            best = {"scores": scores, "preds": preds}
            if mm_rows is not None:
                # Mismatched is only needed for the best epoch, so it is scored only when one is found.
                best["mm_preds"] = predict(classifier, mm_rows, pad, s.eval_batch_size, device, autocast)
        if stopper.should_stop:
            log(f"glue {task}: no improvement for {s.patience} epochs, stopping")
            break

    entry = {"status": "ok", "metric": metric, "score": best["scores"][metric], **best["scores"],
             "best_epoch": stopper.best_epoch, "epochs_run": epoch, "train_examples": len(train),
             "eval_examples": len(valid), "backend": backend, "max_length": max_length,
             "settings": non_default_settings(s), "history": history,
             "predictions": [{"id": f"{task}_{i}", "pred": p} for i, p in enumerate(best["preds"])]}
    if mm_rows is not None:
        entry["score_mismatched"] = entry["accuracy_mismatched"] = accuracy(best["mm_preds"],
                                                                            [e.label for e in mismatched])
        entry["eval_examples_mismatched"] = len(mismatched)
        entry["predictions_mismatched"] = [{"id": f"mnli-mm_{i}", "pred": p} for i, p in enumerate(best["mm_preds"])]
    elif task == "mnli":
        log(f"glue mnli: no mismatched validation file at {data.mismatched_path}, matched only")
    return entry


def run_glue(model_path, data_dir, tasks: Iterable[str], backend: str, settings: Optional[GlueSettings] = None,
             device="cpu", log: Callable = print, progress: bool = False) -> dict:
    """Fine-tune a fresh copy of the model per task and score it on validation.

    Returns {task: entry}. A trained task's entry: status "ok", metric ("accuracy", or "f1" for
    mrpc/qqp), score (that metric, 0-100), accuracy [, f1], best_epoch, epochs_run, train_examples,
    eval_examples, backend, max_length (after clipping to the model), settings (the non-default
    GlueSettings: a cheaper run is never mistaken for a full one), history (per epoch), and
    predictions [{"id": "<task>_<i>", "pred": label}] in validation-file order from the best epoch.
    mnli adds score_mismatched (= accuracy_mismatched), eval_examples_mismatched and
    predictions_mismatched (ids "mnli-mm_<i>"), all from the epoch that was best on matched.
    A task without a train file: {"status": "not_run", "reason": "no training data (...)"}.
    """
    settings = settings or GlueSettings()
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in GLUE_TASKS]
    if unknown:
        raise UserError(f"unknown GLUE task(s) {', '.join(unknown)}; known: {', '.join(GLUE_TASKS)}")
    if backend not in BACKENDS:
        raise UserError(f"unknown GLUE backend '{backend}'; expected one of {', '.join(BACKENDS)}")
    _check_settings(settings)
    # Read and validate every file first: a bad line in the last task should not surface hours in.
    datasets = {task: load_task_data(data_dir, task) for task in tasks}
    results = {}
    for task, data in datasets.items():
        if not data.train:
            state = "absent" if data.train is None else "empty"
            reason = f"no training data (train split {state} in {data.train_path})"
            log(f"glue {task}: not run, {reason}")
            results[task] = {"status": "not_run", "reason": reason}
            continue
        results[task] = finetune_task(model_path, data, backend, settings, device, log, progress)
        log(f"glue {task}: {results[task]['metric']} {results[task]['score']:.2f} "
            f"(best epoch {results[task]['best_epoch']} of {results[task]['epochs_run']})")
    return results
