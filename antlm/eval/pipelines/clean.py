"""antlm's own scoring, without any pipeline's quirks: a tie counts as wrong, `<s>` comes before
every context, PLL sums (no mean), the masked input is `<s> context text </s>` with no EOS-string
context, and only the option's own tokens are scored. Items whose options do not share a context
(COMPS) are scored the 2025 way: the whole sentence tokenized once, its completion's tokens scored.
It runs the zero-shot tasks of both pipelines; GLUE uses antlm's own recipe."""
from __future__ import annotations

from antlm.data.tokenizer import BOS, EOS
from antlm.eval import scoring
from antlm.eval.pipelines.base import Pipeline, ScoringContext, mean
from antlm.eval.tasks import Item


def encode(item: Item, backend: str, ctx: ScoringContext) -> list:
    tok = ctx.tokenizer
    if item.context or item.sentences == item.options:
        # The option's leading space comes from the tokenizer's prefix space, so a context's trailing
        # whitespace (entity tracking's "Box 1 contains ") would only add a lone space token.
        context = item.context.rstrip()
        if backend == "causal":
            return [scoring.encode_causal(tok, context, option, bos_before_context=True) for option in item.options]
        return [scoring.encode_masked(tok, context, option) for option in item.options]
    head, tail = (tok.token_to_id(BOS),), ((tok.token_to_id(EOS),) if backend != "causal" else ())
    return [scoring.encode_completion(tok, s, c, head, tail) for s, c in zip(item.sentences, item.completions)]


PIPELINE = Pipeline(
    name="clean",
    summary="antlm's own scoring without any pipeline's quirks",
    backends=("causal", "mlm", "mntp"),
    tasks=("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "comps", "glue"),
    default_tasks=("blimp", "blimp_supplement", "ewok", "glue"),
    encode=encode,
    reduction=lambda backend: "sum",
    overlong=lambda backend: "context",
    ties_correct=False,
    task_score=lambda task, subtasks: mean(subtasks.values()),
    macro_parts=("blimp", "blimp_supplement", "ewok", "glue"),
    glue_recipe="clean",
    temperature_sweep=True,
    eval_sets=("full", "fast"),
)
