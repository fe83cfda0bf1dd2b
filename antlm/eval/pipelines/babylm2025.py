"""The BabyLM 2025 pipeline (`babylm/evaluation-pipeline-2025` @ bf55c11; BabyLM 2026's strict track
runs the same code), as its `sentence_zero_shot/` and `calculate_results_from_pred.py` score:
1. every option is the whole sentence, tokenized once by the model's exported tokenizer, with the
   special tokens that tokenizer adds (`dataset.py` calls `tokenizer(sentence)`): `<s> text` for the
   Llama export, `<s> text </s>` for the encoders; the scored tokens are those whose character span
   ends after the completion starts (`process_*_sentences`, `end > start_char_idx`);
2. backends: `causal` (sum of next-token log-probabilities), `mlm` (each scored token masked alone,
   read at the mask), `mntp` (the same, read one position to the left); all are **sums**;
3. `log_softmax(logits / temperature)`; with a sweep (`--min/max_temperature`, interval 0.05) the
   best temperature is the first with the highest task average (`run.py`);
4. the chosen option is the first maximum (`torch.max`); an item is right when the chosen option's
   text equals the correct one's, stripped (`calculate_results_from_pred.py`), so a tie, or a
   distractor with the same text, counts as right;
5. a task's score is the mean of its subtasks' accuracies (BLiMP: UID, EWoK: domain, entity
   tracking: file x number of operations, 18 subtasks); the wug tasks score the Spearman correlation
   (x 100) of the softmax over an item's sentence scores, first sentence, with the human ratio;
6. nothing is truncated: the Llama export reads past its window, and so does antlm's BabyLlama here
   (`--overlong extend`, rotary positions computed on); the LTG-BERT export raises, and antlm refuses
   such an item with an error naming it (`--overlong skip|context` go on, counted).
There is no macro-average in the 2025 code; every task is reported on its own.
"""
from __future__ import annotations

from typing import Optional

from antlm.data.tokenizer import BOS, EOS
from antlm.eval import scoring
from antlm.eval.pipelines.base import Pipeline, ScoringContext, mean
from antlm.eval.tasks import Item

# What `tokenizer(text)` adds in each backbone's export (antlm/export/hf.py): (`<s>` first, `</s>` last).
EXPORT_SPECIAL_TOKENS = {"babyllama": (True, False), "ltgbert": (True, True), "gptbert": (True, True)}


def special_tokens(backbone: str) -> tuple[bool, bool]:
    return EXPORT_SPECIAL_TOKENS.get(backbone, (True, True))


def special_ids(ctx: ScoringContext) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ids before, ids after) a text, as `tokenizer(text)` adds them: a Hugging Face directory's
    own tokenizer, or what antlm's export of the backbone adds."""
    if ctx.special is not None:
        return ctx.special.head, ctx.special.tail
    bos, eos = special_tokens(ctx.backbone)
    return (((ctx.tokenizer.token_to_id(BOS),) if bos else ()), ((ctx.tokenizer.token_to_id(EOS),) if eos else ()))


def encode(item: Item, backend: str, ctx: ScoringContext) -> list:
    head, tail = special_ids(ctx)
    requests = [scoring.encode_completion(ctx.tokenizer, s, c, head, tail) for s, c in zip(item.sentences, item.completions)]
    if backend == "mntp" and not head:
        # process_mntp_sentences: a first token has nothing to its left to be read from, and is not scored.
        requests = [scoring.Request(r.target[:1], r.target[1:], r.target_words[1:], r.suffix) if not r.prefix else r
                    for r in requests]
    return requests


def submission_problems(predictions: dict, data_dir) -> Optional[list[str]]:
    """collate_preds.py's size checks of the GLUE predictions (the zero-shot files have none)."""
    if not predictions.get("glue"):
        return None
    from antlm.eval.submission2025 import glue_size_problems_2025

    return glue_size_problems_2025(predictions["glue"])


PIPELINE = Pipeline(
    name="babylm2025",
    summary="the official BabyLM 2025 pipeline (also BabyLM 2026's strict track)",
    backends=("causal", "mlm", "mntp"),
    tasks=("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "comps", "reading", "aoa", "glue"),
    default_tasks=("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "reading"),
    encode=encode,
    reduction=lambda backend: "sum",
    overlong=lambda backend: "extend",
    ties_correct=True,
    task_score=lambda task, subtasks: mean(subtasks.values()),
    macro_parts=(),
    glue_recipe="babylm2025",
    temperature_sweep=True,
    report_by=("UID", "field", "linguistics_term", "context_type", "context_contrast", "target_contrast"),
    eval_sets=("full", "fast"),
    masked_read="backend",
    prediction_view="completions",
    submission_problems=submission_problems,
    takes_hf_models=True,
)
