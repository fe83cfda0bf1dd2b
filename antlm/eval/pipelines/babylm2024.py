"""The BabyLM 2024 pipeline (`babylm/evaluation-pipeline-2024` @ d680c28, lm-eval 0.4 underneath),
quirks included:
1. ties count as correct (lm-eval takes the argmax over [good, bad]; the first index wins a tie);
2. causal, empty context (BLiMP, supplement): the sentence is scored after `<s>` (`prefix_token_id`);
3. causal, with a context (EWoK): the context is encoded without `<s>` (lm-eval adds no BOS for
   causal models) and only the target's tokens are scored;
4. masked models: PLL with the `mean` reduction (minicons' `conditional_score` default);
5. masked models: the text is minicons' join of the context (the EOS string when empty) and
   " " + target with another space, `"</s>  " + sentence`; the lone space token this makes is
   scored and counted in the mean;
6. items longer than the window, causal: lm-eval's rule (the last max_len + 1 tokens of context +
   continuation, `huggingface.py` `_loglikelihood_tokens`); masked: the context is cut from the left.
Task score: the unweighted mean of its subtasks (`evaluator.py`, weight_by_size=False); macro: the
mean of BLiMP, supplement, EWoK and GLUE. See docs/evaluation.md for how each was checked.
"""
from __future__ import annotations

from antlm.data.tokenizer import EOS
from antlm.eval import scoring
from antlm.eval.pipelines.base import Pipeline, ScoringContext, mean
from antlm.eval.tasks import Item


def encode(item: Item, backend: str, ctx: ScoringContext) -> list:
    if backend == "causal":
        return [scoring.encode_causal(ctx.tokenizer, item.context, option, bos_before_context=False)
                for option in item.options]
    return [scoring.encode_masked(ctx.tokenizer, item.context or EOS, "  " + option) for option in item.options]


def submission_problems(predictions: dict, data_dir) -> list[str]:
    """What `verify_dict` (collect_results.py) would reject in the submission file."""
    from antlm.eval.outputs import build_submission
    from antlm.eval.submission2024 import expected_counts_2024, missing_2024

    return missing_2024(build_submission(predictions), expected_counts_2024(data_dir))


PIPELINE = Pipeline(
    name="babylm2024",
    summary="the official BabyLM 2024 pipeline's choices, quirks included",
    backends=("causal", "mlm", "mntp"),
    tasks=("blimp", "blimp_supplement", "ewok", "glue"),
    default_tasks=("blimp", "blimp_supplement", "ewok", "glue"),
    encode=encode,
    reduction=lambda backend: "sum" if backend == "causal" else "mean",
    overlong=lambda backend: "window" if backend == "causal" else "context",
    ties_correct=True,
    task_score=lambda task, subtasks: mean(subtasks.values()),
    macro_parts=("blimp", "blimp_supplement", "ewok", "glue"),
    glue_recipe="babylm2024",
    submission_problems=submission_problems,
)
