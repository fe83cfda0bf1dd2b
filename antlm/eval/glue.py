"""(Super)GLUE fine-tuning under a recipe (antlm.eval.glue_recipes): a fresh copy of the pretrained
model per task, a classification head, and the best epoch's validation predictions.

The recipe says everything a pipeline decides: task inputs and special tokens, truncation, head
and pooling per backend, optimizer, schedule, clipping, batch handling, early stopping and which
metric picks the epoch and which is reported. This module only runs it. As in both official
pipelines, the validation split both picks the best epoch and gives its score: comparable with
BabyLM results, but optimistic as an estimate of held-out performance.

Data layouts (detected from `data_dir`):
  * shared:   <dir>/glue/<task>/train.jsonl, validation.jsonl, and for mnli
              validation_mismatched.jsonl
  * official: <dir>/glue_filtered/<task>.train.jsonl, <task>.valid.jsonl, and for mnli
              mnli-mm.valid.jsonl (also accepted: mnli_mismatched.valid.jsonl,
              mnli-mismatched.valid.jsonl); <dir> may be an evaluation_data/ folder of either
              year (2025: glue_filtered/ under full_eval/)
`data_dir` may also be the `glue/` or `glue_filtered/` folder itself.

Backends (how the one AntLM network reads an input): `causal` runs it under the causal mask,
`mlm` bidirectionally; the recipe's head for that backend says which position is pooled.
"""
from __future__ import annotations

import dataclasses
import json
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from antlm.errors import UserError
from antlm.eval.glue_metrics import EarlyStopping, metric_fractions
from antlm.eval.glue_recipes import (BACKENDS, DATA_TASKS, GLUE_CLEAN, NUM_LABELS, SCORES, TASK_FIELDS,
                                     GlueRecipe, HeadSpec, SpecialTemplate, TaskHyper)
from antlm.model_io import load_model

MISMATCHED_OFFICIAL = ("mnli-mm.valid.jsonl", "mnli_mismatched.valid.jsonl", "mnli-mismatched.valid.jsonl")


@dataclass
class GlueSettings:
    """Overrides of a recipe (None: the recipe's value) and execution settings. Any override makes a
    run that is no longer the recipe's; entries record them under `overrides`."""
    lr: Optional[float] = None
    batch_size: Optional[int] = None
    max_epochs: Optional[int] = None
    patience: Optional[int] = None
    max_length: Optional[int] = None
    seed: Optional[int] = None
    pooling: Optional[str] = None
    """`first` or `last` (the last real token): which position the head reads, for this backend.
    The 2025 pipeline pools the first token unless its `--take_final` flag is given, and a causal
    model's first token has seen only itself (every example looks the same to the head): `last` is
    what that flag is for. Its own rule differs on padded batches (without `--causal` it reads
    position -1, a pad for all but the longest row); antlm reads the last real token."""
    train_limit: Optional[int] = None
    """Use only the first N training examples (a cheaper, non-comparable run)."""
    eval_limit: Optional[int] = None
    """Score only the first N validation examples (likewise)."""
    micro_batch_size: Optional[int] = None
    """Rows per forward pass; batch_size/micro_batch_size is gradient accumulation (same result)."""
    eval_batch_size: int = 128




def settings_from(overrides: Union[None, dict, GlueSettings]) -> GlueSettings:
    if isinstance(overrides, GlueSettings):
        return overrides
    names = {f.name for f in dataclasses.fields(GlueSettings)}
    unknown = sorted(set(overrides or {}) - names)
    if unknown:
        raise UserError(f"unknown GLUE setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return GlueSettings(**(overrides or {}))


def _check_settings(s: GlueSettings) -> None:
    for name in ("batch_size", "max_epochs", "patience", "train_limit", "eval_limit", "micro_batch_size",
                 "eval_batch_size"):
        value = getattr(s, name)
        if value is not None and value < 1:
            raise UserError(f"glue setting {name} must be at least 1, got {value}")
    if s.max_length is not None and s.max_length < 8:
        raise UserError(f"glue setting max_length must be at least 8, got {s.max_length}")
    if s.pooling not in (None, "first", "last"):
        raise UserError(f"glue setting pooling must be first or last, got {s.pooling!r}")
    if s.lr is not None and s.lr < 0:
        raise UserError(f"glue setting lr must be >= 0, got {s.lr}")


def non_default_settings(s: GlueSettings) -> dict:
    defaults = dataclasses.asdict(GlueSettings())
    return {k: v for k, v in dataclasses.asdict(s).items() if v != defaults[k]}


def task_hyper(recipe: GlueRecipe, task: str, s: GlueSettings) -> TaskHyper:
    base = recipe.hyper_for(task)
    return TaskHyper(lr=base.lr if s.lr is None else s.lr,
                     batch_size=base.batch_size if s.batch_size is None else s.batch_size,
                     max_epochs=base.max_epochs if s.max_epochs is None else s.max_epochs,
                     patience=base.patience if s.patience is None else s.patience)


# ----------------------------------------------------------------------------------------- data
@dataclass
class Row:
    fields: dict
    label: int


@dataclass
class TaskData:
    task: str
    train: Optional[list]
    validation: Optional[list]
    validation_mismatched: Optional[list]
    train_path: Path
    validation_path: Path
    mismatched_path: Optional[Path]
    """Where mnli's mismatched split is (or was looked for); None for other tasks."""


def read_jsonl(path: Path, task: str) -> list[Row]:
    """Parse and validate one split; any bad line is a UserError naming `file:line`."""
    rows = []
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
            rows.append(Row({key: row[key] for key in TASK_FIELDS[task]}, label))
    return rows


def _task_paths(data_dir: Path, task: str) -> tuple[Path, Path, Optional[Path]]:
    """(train, validation, mnli-mismatched or None) paths in whichever layout `data_dir` holds."""
    official = [data_dir / sub / "glue_filtered" for sub in (".", "full_eval", "evaluation_data",
                                                            "evaluation_data/full_eval")]
    for root, layout in ((data_dir / "glue", "shared"), *((r, "official") for r in official),
                         (data_dir, "shared"), (data_dir, "official")):
        if layout == "shared" and any((root / t / "validation.jsonl").is_file() for t in DATA_TASKS):
            folder = root / task
            return folder / "train.jsonl", folder / "validation.jsonl", \
                (folder / "validation_mismatched.jsonl" if task == "mnli" else None)
        if layout == "official" and any((root / f"{t}.valid.jsonl").is_file() for t in DATA_TASKS):
            mismatched = None
            if task == "mnli":
                found = [root / n for n in MISMATCHED_OFFICIAL if (root / n).is_file()]
                mismatched = found[0] if found else root / MISMATCHED_OFFICIAL[0]
            return root / f"{task}.train.jsonl", root / f"{task}.valid.jsonl", mismatched
    raise UserError(f"no GLUE data in {data_dir}: expected glue/<task>/validation.jsonl (shared layout) "
                    "or [full_eval/]glue_filtered/<task>.valid.jsonl (BabyLM 2024 / 2025 layout)")


def load_task_data(data_dir, task: str, require_validation: bool = True) -> TaskData:
    """Read and validate all of a task's splits; a split whose file is absent is None (the
    validation split is an error then, unless `require_validation` is False)."""
    train_path, valid_path, mm_path = _task_paths(Path(data_dir), task)
    if require_validation and not valid_path.is_file():
        raise UserError(f"validation file for {task} not found: {valid_path}")
    read = lambda path: read_jsonl(path, task) if path is not None and path.is_file() else None  # noqa: E731
    return TaskData(task, read(train_path), read(valid_path), read(mm_path), train_path, valid_path, mm_path)


# ---------------------------------------------------------------------------------------- model
def encode(tokenizer, rows: list[Row], template: Callable, specials: SpecialTemplate, truncate: Callable,
           max_length: int) -> list[list[int]]:
    """Token ids of each row: the template's segments, truncated to fit `max_length` with the
    special tokens, joined as `specials` says."""
    texts = [template(r.fields) for r in rows]
    firsts = tokenizer.encode_batch([a for a, _ in texts], add_special_tokens=False)
    paired = [b is not None for _, b in texts]
    seconds = iter(tokenizer.encode_batch([b for _, b in texts if b is not None], add_special_tokens=False))
    out = []
    for first, is_pair in zip(firsts, paired):
        if is_pair:
            a, b = truncate(first.ids, next(seconds).ids, max_length - specials.added(True))
        else:
            a, b = first.ids[: max_length - specials.added(False)], []
        row = []
        for piece in (specials.pair if is_pair else specials.single):
            row.extend(a if piece == "$A" else b if piece == "$B" else [tokenizer.token_to_id(piece)])
        out.append(row)
    return out


def _build_head(spec: HeadSpec, cfg, num_labels: int) -> nn.Module:
    hidden = cfg.hidden_size
    eps = cfg.norm_eps if spec.norm_eps is None else spec.norm_eps
    dropout = cfg.dropout if spec.dropout is None else spec.dropout
    if spec.kind == "linear":
        head = nn.Sequential(nn.Linear(hidden, num_labels, bias=False))
    elif spec.kind == "mlp":
        head = nn.Sequential(nn.LayerNorm(hidden, eps, elementwise_affine=False), nn.Linear(hidden, hidden), nn.GELU(),
                             nn.LayerNorm(hidden, eps, elementwise_affine=False), nn.Dropout(dropout),
                             nn.Linear(hidden, num_labels))
    elif spec.kind == "norm_linear":
        # antlm's: LTG-BERT's residual stream is not normalised at the output (BabyLlama's is; a
        # second normalisation costs nothing), so one lr suits both backbones.
        head = nn.Sequential(nn.LayerNorm(hidden, eps, elementwise_affine=False), nn.Dropout(dropout),
                             nn.Linear(hidden, num_labels))
    else:
        raise UserError(f"unknown GLUE head kind '{spec.kind}' (linear, mlp or norm_linear)")
    linears = [m for m in head if isinstance(m, nn.Linear)]
    for layer in linears:
        if spec.init == "normal":
            nn.init.normal_(layer.weight, std=cfg.init_std)
        elif spec.init == "trunc_normal":
            std = math.sqrt(2.0 / (5.0 * hidden))
            nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
        elif spec.init != "torch":
            raise UserError(f"unknown GLUE head init '{spec.init}' (normal, trunc_normal or torch)")
        if layer.bias is not None and spec.init != "torch":
            nn.init.zeros_(layer.bias)
    return head


class GlueClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_labels: int, causal: bool, spec: HeadSpec):
        super().__init__()
        if spec.pooling not in ("first", "last"):
            raise UserError(f"unknown GLUE pooling '{spec.pooling}' (first or last)")
        self.backbone, self.causal, self.pooling = backbone, causal, spec.pooling
        self.head = _build_head(spec, backbone.cfg, num_labels)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone.hidden_states(ids, causal=self.causal, attention_mask=mask)
        if self.pooling == "last":
            last = mask.sum(dim=1) - 1  # right padding
            pooled = hidden[torch.arange(ids.size(0), device=ids.device), last]
        else:
            pooled = hidden[:, 0]
        return self.head(pooled.float())


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


def _optimizer(classifier: nn.Module, recipe: GlueRecipe, lr: float) -> torch.optim.Optimizer:
    params = [p for p in classifier.parameters() if p.requires_grad]
    if recipe.decay_vectors:
        groups = [{"params": params, "weight_decay": recipe.weight_decay}]
    else:
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": recipe.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=recipe.betas, eps=recipe.eps)


def lr_factor(recipe: GlueRecipe, step: int, total: int) -> float:
    """The multiplier of the peak lr before optimizer step `step` (0-based) of `total`."""
    warmup = int(recipe.warmup_fraction * total)
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if recipe.schedule == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    if recipe.schedule == "cosine":
        floor = recipe.min_lr_factor
        return max(floor, floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise UserError(f"unknown GLUE schedule '{recipe.schedule}' (linear or cosine)")


def _train_epoch(classifier, rows: list, labels: torch.Tensor, batches: list, micro: int, recipe: GlueRecipe,
                 optimizer, scheduler, pad: int, device, autocast, bar) -> float:
    """One pass over `batches` (lists of row indices); returns the mean training loss per row."""
    classifier.train()
    loss_sum, seen = 0.0, 0
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        for m in range(0, len(batch), micro):
            part = batch[m: m + micro]
            ids, mask = _collate([rows[i] for i in part], pad, device)
            with autocast():
                logits = classifier(ids, mask)
            # Sum over rows / batch rows: accumulated micro-batches give the batch-mean gradient.
            loss = F.cross_entropy(logits.float(), labels[part].to(device), reduction="sum") / len(batch)
            loss.backward()
            loss_sum += loss.item() * len(batch)
        seen += len(batch)
        if recipe.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), recipe.max_grad_norm)
        optimizer.step()
        scheduler.step()
        bar.update(1)
    return loss_sum / max(1, seen)


def _batches(order: list, batch_size: int, drop_last: bool) -> list:
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    return [b for b in batches if len(b) == batch_size] if drop_last else batches


def _percent(fractions: dict) -> dict:
    return {k: 100.0 * v for k, v in fractions.items()}


def finetune_task(model_path, data: TaskData, backend: str, recipe: GlueRecipe = GLUE_CLEAN,
                  settings: Optional[GlueSettings] = None, device="cpu", log: Callable = print,
                  progress: bool = False, mismatched: bool = False) -> dict:
    """Fine-tune one task; returns its entry, and under "mnli-mm" the mismatched one when asked."""
    s = settings or GlueSettings()
    task, device = data.task, torch.device(device)
    hyper = task_hyper(recipe, task, s)
    seed = recipe.seed if s.seed is None else s.seed
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    backbone, tokenizer = load_model(model_path, device)
    max_length = min(recipe.max_length if s.max_length is None else s.max_length, backbone.cfg.max_seq_len)
    pad = tokenizer.token_to_id("<pad>")
    spec = recipe.head[backend] if s.pooling is None else dataclasses.replace(recipe.head[backend], pooling=s.pooling)
    if backend == "causal" and spec.pooling == "first":
        log(f"warning: glue {task}: the {recipe.name} recipe pools the first token; under the causal mask it "
            "has seen only itself, so the classifier sees the same input for every example (pooling=last reads "
            "the last token)")
    torch.manual_seed(seed)  # head init and dropout, as both pipelines seed before building the model
    classifier = GlueClassifier(backbone, NUM_LABELS[task], backend == "causal", spec).to(device)

    train = data.train[: s.train_limit] if s.train_limit else data.train
    valid = data.validation[: s.eval_limit] if s.eval_limit else data.validation
    mm = data.validation_mismatched if mismatched else None
    if mm is not None and s.eval_limit:
        mm = mm[: s.eval_limit]
    prepare = lambda rows: encode(tokenizer, rows, recipe.templates[task], recipe.specials[backend],  # noqa: E731
                                  recipe.truncate, max_length)
    train_rows, valid_rows = prepare(train), prepare(valid)
    mm_rows = prepare(mm) if mm is not None else None
    labels = torch.tensor([r.label for r in train])
    valid_labels = [r.label for r in valid]

    steps_per_epoch = len(_batches(list(range(len(train))), hyper.batch_size, recipe.drop_last))
    total = steps_per_epoch * hyper.max_epochs
    optimizer = _optimizer(classifier, recipe, hyper.lr)
    # The schedule spans max_epochs even when early stopping ends the run sooner (as both pipelines).
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(recipe, step, total))
    shuffle = torch.Generator().manual_seed(seed)
    micro = min(s.micro_batch_size or hyper.batch_size, hyper.batch_size)
    selection = recipe.selection[task]
    stopper = EarlyStopping(hyper.patience, recipe.early_stopping_threshold)
    best, history, epoch = {}, [], 0
    for epoch in range(1, hyper.max_epochs + 1):
        batches = _batches(torch.randperm(len(train), generator=shuffle).tolist(), hyper.batch_size, recipe.drop_last)
        with tqdm(total=len(batches), desc=f"{task} epoch {epoch}", disable=not progress, leave=False) as bar:
            train_loss = _train_epoch(classifier, train_rows, labels, batches, micro, recipe, optimizer, scheduler,
                                      pad, device, autocast, bar)
        preds = predict(classifier, valid_rows, pad, s.eval_batch_size, device, autocast)
        fractions = metric_fractions(preds, valid_labels, NUM_LABELS[task])
        history.append({"epoch": epoch, "train_loss": train_loss, **_percent(fractions)})
        improved = stopper.update(fractions[selection], epoch)
        log(f"glue {task} epoch {epoch}: train loss {train_loss:.4f}, "
            f"{selection} {100 * fractions[selection]:.2f}{' (best)' if improved else ''}")
        if improved:
            best = {"fractions": fractions, "preds": preds}
            if mm_rows is not None:
                # Mismatched is only needed for the best epoch, so it is scored only when one is found.
                best["mm_preds"] = predict(classifier, mm_rows, pad, s.eval_batch_size, device, autocast)
        if stopper.should_stop:
            log(f"glue {task}: no improvement above the threshold for {hyper.patience} epochs, stopping")
            break

    used = {**dataclasses.asdict(hyper), "early_stopping_threshold": recipe.early_stopping_threshold,
            "seed": seed, "max_length": max_length}
    common = {"recipe": recipe.name, "backend": backend, "best_epoch": stopper.best_epoch, "epochs_run": epoch,
              "selection_metric": selection, "settings": used, "overrides": non_default_settings(s)}
    metric = recipe.reported[task]
    scores = _percent(best["fractions"])
    entry = {"status": "ok", "metric": metric, "score": scores[metric], **scores, "fractions": best["fractions"], **common,
             "train_examples": len(train), "eval_examples": len(valid), "max_length": max_length,
             "steps_per_epoch": steps_per_epoch, "history": history,
             "predictions": [{"id": f"{task}_{i}", "pred": p} for i, p in enumerate(best["preds"])],
             "pooling": spec.pooling}
    if len(set(best["preds"])) == 1:
        # A constant prediction scores the class's rate, whatever the model knows: flag it so that such
        # a score is not read as a result (a causal model pooled at its first token always gives one).
        entry["note"] = f"every validation prediction is class {best['preds'][0]}: the score is that class's rate"
        log(f"warning: glue {task}: {entry['note']}")
    if mm_rows is not None:
        mm_fractions = metric_fractions(best["mm_preds"], [r.label for r in mm], NUM_LABELS[task])
        mm_scores, mm_metric = _percent(mm_fractions), recipe.reported["mnli-mm"]
        entry["mnli-mm"] = {"status": "ok", "metric": mm_metric, "score": mm_scores[mm_metric], **mm_scores,
                            "fractions": mm_fractions,
                            **common, "trained_on": "mnli", "eval_examples": len(mm),
                            "predictions": [{"id": f"mnli-mm_{i}", "pred": p} for i, p in enumerate(best["mm_preds"])]}
    return entry


def _not_run(reason: str, log: Callable, task: str) -> dict:
    log(f"glue {task}: not run, {reason}")
    return {"status": "not_run", "reason": reason}


def run_glue(model_path, data_dir, tasks: Optional[Iterable[str]] = None, backend: str = "causal",
             recipe: GlueRecipe = GLUE_CLEAN, overrides: Union[None, dict, GlueSettings] = None, device="cpu",
             log: Callable = print, progress: bool = False) -> dict:
    """Fine-tune a fresh copy of the model per task under `recipe`; score it on validation.

    `tasks`: score names (SCORES: the data tasks and "mnli-mm", which is MNLI's model on the
    mismatched set); None: the recipe's tasks and extra scores, and then a task whose validation
    file is absent is reported not run (named explicitly, it is an error). `overrides`: a dict or
    GlueSettings (train_limit, eval_limit, max_epochs, ...).

    Returns {score name: entry}. A trained task's entry: status "ok", recipe, backend, metric (the
    recipe's reported metric), score (that metric, 0-100), accuracy [, f1, mcc], fractions (the same
    metrics in 0-1, unrounded), selection_metric,
    best_epoch, epochs_run, train_examples, eval_examples, max_length (after clipping to the model),
    steps_per_epoch, settings (the hyper-parameters used), overrides (those that differ from the
    recipe), pooling (the position the head read), note (only when every prediction is one class),
    history (per epoch, 0-100), and predictions [{"id": "<task>_<i>", "pred": label}] in
    validation-file order from the best epoch. "mnli-mm" has the same keys from MNLI's best epoch,
    ids "mnli-mm_<i>", and trained_on "mnli". A task that cannot run: {"status": "not_run", "reason"}.
    """
    settings = settings_from(overrides)
    explicit = tasks is not None
    wanted = [tasks] if isinstance(tasks, str) else list(tasks) if explicit else [*recipe.tasks, *recipe.extra_scores]
    unknown = [t for t in wanted if t not in SCORES]
    if unknown:
        raise UserError(f"unknown GLUE task(s) {', '.join(unknown)}; known: {', '.join(SCORES)}")
    if backend not in BACKENDS:
        raise UserError(f"unknown GLUE backend '{backend}'; expected one of {', '.join(BACKENDS)}")
    _check_settings(settings)
    data_tasks = list(dict.fromkeys("mnli" if t == "mnli-mm" else t for t in wanted))
    # Read and validate every file first: a bad line in the last task should not surface hours in.
    datasets = {task: load_task_data(data_dir, task, require_validation=explicit) for task in data_tasks}
    results = {}
    for task, data in datasets.items():
        scores = [t for t in wanted if t == task or (task == "mnli" and t == "mnli-mm")]
        if data.validation is None:
            for name in scores:
                results[name] = _not_run(f"no validation data ({data.validation_path} absent)", log, name)
            continue
        if not data.train:
            reason = f"no training data (train split {'absent' if data.train is None else 'empty'} in {data.train_path})"
            for name in scores:
                results[name] = _not_run(reason if name == task else f"{reason}; mnli-mm uses the mnli model",
                                         log, name)
            continue
        want_mm = "mnli-mm" in scores
        if want_mm and data.validation_mismatched is None:
            results["mnli-mm"] = _not_run(f"no mismatched validation data ({data.mismatched_path} absent)", log,
                                          "mnli-mm")
            want_mm = False
        entry = finetune_task(model_path, data, backend, recipe, settings, device, log, progress, mismatched=want_mm)
        mm_entry = entry.pop("mnli-mm", None)
        if task in scores:
            results[task] = entry
        if mm_entry is not None:
            results["mnli-mm"] = mm_entry
        log(f"glue {task}: {entry['metric']} {entry['score']:.2f} "
            f"(best epoch {entry['best_epoch']} of {entry['epochs_run']}, {recipe.name})")
    return {name: results[name] for name in wanted}
