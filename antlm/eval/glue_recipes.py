"""(Super)GLUE fine-tuning recipes as data: which tasks make up a pipeline's GLUE score, with what
inputs, head, optimizer, schedule, selection rule and metric. `antlm.eval.glue` runs any of them.

- `GLUE_2024`: the BabyLM 2024 pipeline (babylm/evaluation-pipeline-2024 @ d680c28): its
  `finetune_model.sh` runs `finetune_classification.py`, a Hugging Face `Trainer` with defaults.
- `GLUE_2025`: the BabyLM 2025 pipeline (babylm/evaluation-pipeline-2025 @ bf55c11): `eval_finetuning.sh`
  runs `evaluation_pipeline/finetune/run.py`, its own trainer and classifier head.
- `GLUE_CLEAN`: antlm's own recipe (the one antlm used before the recipes existed): the 2024
  hyper-parameters with RoBERTa-style warmup and decay, antlm's head and input joins.

Citations are `file:line` at those commits. Scores are 0-100 in antlm's output; selection and
early stopping compare fractions (0-1), the units the pipelines use, so HF's threshold of 0.001
means 0.1 points.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

from antlm.errors import UserError

# Every task either pipeline can fine-tune, and the scores they report. mnli-mm is a score, not a
# task: the MNLI model scored on the mismatched validation set (finetune_model.sh:15-26).
DATA_TASKS = ("boolq", "cola", "mnli", "mrpc", "multirc", "qnli", "qqp", "rte", "sst2", "wsc")
SCORES = ("boolq", "cola", "mnli", "mnli-mm", "mrpc", "multirc", "qnli", "qqp", "rte", "sst2", "wsc")
NUM_LABELS = {task: 3 if task == "mnli" else 2 for task in DATA_TASKS}
# Fields each task's rows must have (besides "label").
TASK_FIELDS = {
    "boolq": ("question", "passage"), "cola": ("sentence",), "mnli": ("premise", "hypothesis"),
    "mrpc": ("sentence1", "sentence2"), "multirc": ("paragraph", "question", "answer"),
    "qnli": ("question", "sentence"), "qqp": ("question1", "question2"), "rte": ("sentence1", "sentence2"),
    "sst2": ("sentence",), "wsc": ("text", "span1_text", "span2_text"),
}
BACKENDS = ("causal", "mlm")

Template = Callable[[dict], tuple[str, Optional[str]]]
"""A row's fields -> (first segment, second segment or None for single-sentence tasks)."""


# ------------------------------------------------------------------------------------ templates
def _keys(first: str, second: Optional[str] = None) -> Template:
    return lambda row: (row[first], None if second is None else row[second])


def multirc_2024(row: dict) -> tuple[str, str]:
    """finetune_classification.py:452-457 (and 2025 dataset.py:37): the question and answer in a
    template, the paragraph second."""
    return f"Question: {row['question']} Answer: {row['answer']}", row["paragraph"]


def wsc_2024(row: dict) -> tuple[str, str]:
    """finetune_classification.py:458-462 (and 2025 dataset.py:47): span2 is the pronoun, span1 the
    noun phrase; the passage second."""
    return f'Does "{row["span2_text"]}" refer to "{row["span1_text"]}" in this passage?', row["text"]


def multirc_clean(row: dict) -> tuple[str, str]:
    return row["paragraph"], f"{row['question']} {row['answer']}"


def wsc_clean(row: dict) -> tuple[str, str]:
    # WSC asks whether the pronoun (span2) refers to the noun phrase (span1); antlm states it.
    return row["text"], f"{row['span2_text']} refers to {row['span1_text']}"


# The 2024 script has no task name, so it picks columns by name (finetune_classification.py:440-469):
# cola/sst2 have one non-label column (`sentence`), hence single-sentence inputs. The 2025
# dataset.py:27-49 lists the same keys per task.
TEMPLATES_2024: dict[str, Template] = {
    "boolq": _keys("question", "passage"), "cola": _keys("sentence"), "mnli": _keys("premise", "hypothesis"),
    "mrpc": _keys("sentence1", "sentence2"), "multirc": multirc_2024, "qnli": _keys("question", "sentence"),
    "qqp": _keys("question1", "question2"), "rte": _keys("sentence1", "sentence2"), "sst2": _keys("sentence"),
    "wsc": wsc_2024,
}
TEMPLATES_CLEAN: dict[str, Template] = {**TEMPLATES_2024, "multirc": multirc_clean, "wsc": wsc_clean}


# --------------------------------------------------------------------------- special tokens, cuts
@dataclass(frozen=True)
class SpecialTemplate:
    """Where the special tokens go, in `tokenizers` TemplateProcessing notation ($A, $B: segments)."""
    single: tuple[str, ...]
    pair: tuple[str, ...]

    def added(self, paired: bool) -> int:
        return sum(not t.startswith("$") for t in (self.pair if paired else self.single))


# What `tokenizer(a, b)` gives on antlm's Hugging Face exports (antlm/export/hf.py, _write_llama and
# _write_ltgbert), i.e. what the official scripts feed a Llama export and an LTG-BERT export.
LLAMA_EXPORT = SpecialTemplate(("<s>", "$A"), ("<s>", "$A", "<s>", "$B"))
LTGBERT_EXPORT = SpecialTemplate(("<s>", "$A", "</s>"), ("<s>", "$A", "</s>", "$B", "</s>"))
ANTLM_JOIN = SpecialTemplate(("<s>", "$A", "</s>"), ("<s>", "$A", "</s>", "$B", "</s>"))


def truncate_longest_first_hf(a: list, b: list, budget: int) -> tuple[list, list]:
    """`truncation=True` of a fast (Rust) tokenizer on a pair: the shorter segment is kept whole when
    it fits in half the budget, else both get half (the first segment gets the odd token when it is
    the longer one). Tokens are cut from the right."""
    n1, n2 = len(a), len(b)
    if n1 + n2 <= budget:
        return list(a), list(b)
    swap = n1 > n2
    short, long_ = (n2, n1) if swap else (n1, n2)
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short = budget // 2
        long_ = short + budget % 2
    first, second = (long_, short) if swap else (short, long_)
    return list(a[:first]), list(b[:second])


def truncate_longest_first_pop(a: list, b: list, budget: int) -> tuple[list, list]:
    """Drop tokens from the end of the currently longer segment until both fit; ties trim the second
    segment (the slow-tokenizer rule; antlm's own choice)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


# --------------------------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class TaskHyper:
    lr: float
    batch_size: int
    max_epochs: int
    patience: Optional[int]
    """Epochs without enough improvement before stopping; None: run every epoch."""


@dataclass(frozen=True)
class HeadSpec:
    kind: str
    """`linear`: Linear(h, labels, no bias) (LlamaForSequenceClassification's `score`);
    `mlp`: LayerNorm -> Linear(h, h) -> GELU -> LayerNorm -> Dropout -> Linear (LTG-BERT's Classifier,
    and the 2025 ClassifierHead); `norm_linear`: LayerNorm -> Dropout -> Linear (antlm's)."""
    pooling: str
    """`first` (position 0) or `last` (the last real token, right padding)."""
    dropout: Optional[float] = None
    """None: the backbone's own dropout (what a HF config's hidden_dropout_prob would give)."""
    norm_eps: Optional[float] = None
    """None: the backbone's norm_eps (LTG-BERT's Classifier uses config.layer_norm_eps)."""
    init: str = "normal"
    """`normal`: N(0, backbone init_std), zero bias; `trunc_normal`: LTG-BERT's Classifier init
    (std sqrt(2/(5h)), cut at 2 std, zero bias); `torch`: PyTorch's nn.Linear default."""


@dataclass(frozen=True)
class GlueRecipe:
    name: str
    tasks: tuple[str, ...]
    """The scores that make up this recipe's GLUE (their mean is its GLUE score)."""
    extra_scores: tuple[str, ...]
    """Scores also computed by default but not counted."""
    hyper: dict[str, TaskHyper]
    """Per data task (mnli-mm uses mnli's model)."""
    selection: dict[str, str]
    """Metric that picks the best epoch, per data task: accuracy, f1 or mcc."""
    reported: dict[str, str]
    """Metric reported (and averaged) per score."""
    templates: dict[str, Template]
    specials: dict[str, SpecialTemplate]
    """Per backend: where <s> and </s> go."""
    truncate: Callable[[list, list, int], tuple[list, list]]
    head: dict[str, HeadSpec]
    """Per backend."""
    max_length: int
    """Clipped to the model's max_seq_len when that is shorter (as the 2024 script clips to the
    tokenizer's model_max_length)."""
    seed: int
    early_stopping_threshold: float
    """Fraction units: an epoch resets patience only if it beats the best by more than this."""
    weight_decay: float
    decay_vectors: bool
    """Whether biases and norm gains are decayed too."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "linear"
    """`linear` (to 0) or `cosine` (to min_lr_factor), after a linear warmup."""
    warmup_fraction: float = 0.0
    min_lr_factor: float = 0.0
    max_grad_norm: float = 0.0
    """0: no clipping."""
    drop_last: bool = False
    """Drop the last partial training batch of every epoch."""
    partial_mean: bool = False
    """True: the GLUE score is the mean over the tasks that ran (with a note). False: no GLUE score
    unless every task in `tasks` ran."""
    notes: tuple[str, ...] = field(default=())

    def hyper_for(self, task: str) -> TaskHyper:
        return self.hyper[task]

    def replace(self, **changes) -> "GlueRecipe":
        return dataclasses.replace(self, **changes)


def _same(value, tasks=DATA_TASKS) -> dict:
    return {task: value for task in tasks}


# finetune_model.sh:4-8,38 (lr 5e-5, patience 3, batch 64, 10 epochs, seed 12, max length 128);
# finetune_classification.py:254-255 (EarlyStoppingCallback, threshold 0.001), :614-621 (best model by
# F1 when the train file has two labels, accuracy otherwise: MNLI); HF TrainingArguments defaults
# (weight decay 0, no warmup, linear decay to 0, AdamW betas (0.9, 0.999), eps 1e-8, gradient
# clipping at norm 1, last partial batch kept); the model's own AutoModelForSequenceClassification
# head; score_predictions.py:50-57 (CoLA MCC, MRPC and QQP F1, the rest accuracy).
GLUE_2024 = GlueRecipe(
    name="babylm2024",
    tasks=SCORES,
    extra_scores=(),
    hyper=_same(TaskHyper(lr=5e-5, batch_size=64, max_epochs=10, patience=3)),
    selection={**_same("f1"), "mnli": "accuracy"},
    reported={**_same("accuracy", SCORES), "cola": "mcc", "mrpc": "f1", "qqp": "f1"},
    templates=TEMPLATES_2024,
    specials={"causal": LLAMA_EXPORT, "mlm": LTGBERT_EXPORT},
    truncate=truncate_longest_first_hf,
    head={"causal": HeadSpec("linear", "last"),
          "mlm": HeadSpec("mlp", "first", dropout=None, norm_eps=None, init="trunc_normal")},
    max_length=128, seed=12, early_stopping_threshold=0.001,
    weight_decay=0.0, decay_vectors=False, schedule="linear", warmup_fraction=0.0, max_grad_norm=1.0,
    notes=("the validation split both picks the epoch and gives the score, as in the pipeline",),
)

# eval_finetuning.sh:3-9 (lr 3e-5, batch 32, 16 for BoolQ and MultiRC, 10 epochs, 30 for WSC, seed 42),
# :25 (sequence length 512), :30,50,69,90,110 (selection: accuracy; F1 for MRPC and QQP);
# run.py:48-57 defaults (classifier dropout 0.1, layer-norm eps 1e-5, weight decay 0.01, warmup 0.06,
# cosine to 0.1); trainer.py:93 (shuffled, drop_last), :105 (AdamW on every parameter), :111 (schedule; its
# floor is a literal 0.1), utils.py:14-39 (cosine with linear warmup),
# no gradient clipping, no early stopping, :262 (strictly better replaces the best);
# classifier_model.py:31-38 (head), :133 (the first token: eval_finetuning.sh passes no --take_final);
# calculate_results_from_pred.py:247-265 (GLUE = mean accuracy of the seven, MRPC and QQP included).
GLUE_2025 = GlueRecipe(
    name="babylm2025",
    tasks=("boolq", "mnli", "mrpc", "multirc", "qqp", "rte", "wsc"),
    extra_scores=(),
    hyper={**_same(TaskHyper(lr=3e-5, batch_size=32, max_epochs=10, patience=None)),
           "boolq": TaskHyper(3e-5, 16, 10, None), "multirc": TaskHyper(3e-5, 16, 10, None),
           "wsc": TaskHyper(3e-5, 32, 30, None)},
    selection={**_same("accuracy"), "mrpc": "f1", "qqp": "f1"},
    reported=_same("accuracy", SCORES),
    templates=TEMPLATES_2024,
    specials={"causal": LLAMA_EXPORT, "mlm": LTGBERT_EXPORT},
    truncate=truncate_longest_first_hf,
    head={b: HeadSpec("mlp", "first", dropout=0.1, norm_eps=1e-5, init="torch") for b in BACKENDS},
    max_length=512, seed=42, early_stopping_threshold=0.0,
    weight_decay=0.01, decay_vectors=True, schedule="cosine", warmup_fraction=0.06, min_lr_factor=0.1,
    max_grad_norm=0.0, drop_last=True,
    notes=("the first token is pooled for every backend (classifier_model.py:133): under a causal mask "
           "it has seen only itself, so a causal model's classifier sees a constant",),
)

# antlm's own recipe, unchanged from before the recipes: the 2024 hyper-parameters, selection and
# reporting by accuracy (F1 for MRPC and QQP), RoBERTa's GLUE warmup/decay and weight decay on
# matrices, antlm's pooling (last token causal, <s> bidirectional), `<s> A </s> B </s>` joins.
GLUE_CLEAN = GlueRecipe(
    name="clean",
    tasks=("boolq", "mnli", "mrpc", "multirc", "qqp", "rte", "wsc"),
    extra_scores=("mnli-mm",),
    hyper=_same(TaskHyper(lr=5e-5, batch_size=64, max_epochs=10, patience=3)),
    selection={**_same("accuracy"), "mrpc": "f1", "qqp": "f1"},
    reported={**_same("accuracy", SCORES), "mrpc": "f1", "qqp": "f1"},
    templates=TEMPLATES_CLEAN,
    specials={"causal": ANTLM_JOIN, "mlm": ANTLM_JOIN},
    truncate=truncate_longest_first_pop,
    head={"causal": HeadSpec("norm_linear", "last", dropout=0.1),
          "mlm": HeadSpec("norm_linear", "first", dropout=0.1)},
    max_length=128, seed=12, early_stopping_threshold=0.0,
    weight_decay=0.01, decay_vectors=False, schedule="linear", warmup_fraction=0.06, max_grad_norm=1.0,
    partial_mean=True,
)

RECIPES = {r.name: r for r in (GLUE_2024, GLUE_2025, GLUE_CLEAN)}


def recipe_named(name: str) -> GlueRecipe:
    if name not in RECIPES:
        raise UserError(f"unknown GLUE recipe '{name}'; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def glue_summary(recipe: GlueRecipe, entries: dict) -> dict:
    """The recipe's GLUE from run_glue's entries: `score` is the mean of the reported scores of
    `recipe.tasks`, or None when any of them did not run (unless the recipe allows a partial mean,
    then with a `note`). `missing` names the tasks without a score and why."""
    ran = {t: e for t, e in entries.items() if e.get("status") == "ok"}
    counted = [t for t in recipe.tasks if t in ran]
    missing = {t: (entries[t].get("reason", entries[t].get("status")) if t in entries else "not requested")
               for t in recipe.tasks if t not in ran}
    mean = sum(ran[t]["score"] for t in counted) / len(counted) if counted else None
    summary = {
        "recipe": recipe.name, "score": mean if not missing or recipe.partial_mean else None,
        "complete": not missing, "tasks_counted": counted, "tasks_not_run": list(missing), "missing": missing,
        "scores": {t: ran[t]["score"] for t in counted}, "metrics": {t: recipe.reported[t] for t in recipe.tasks},
        "tasks": {t: {k: v for k, v in e.items() if k != "predictions"} for t, e in entries.items()},
    }
    if missing:
        what = f"{len(counted)} of the {len(recipe.tasks)} {recipe.name} GLUE tasks ran; missing: {', '.join(missing)}"
        if recipe.partial_mean and counted:
            summary["note"] = f"GLUE averaged over the tasks that ran ({what})"
        else:
            summary["partial_score"] = mean
            summary["note"] = f"no {recipe.name} GLUE score: {what}"
    return summary
