"""What a scoring pipeline is: its choices as data and small functions, which the scorers, the
runner and the fine-tuner take as an argument. Adding a pipeline (BabyLM 2026's changes, say) is a
new module beside babylm2024.py and babylm2025.py, not new branches in the scorers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tokenizers import Tokenizer

from antlm.eval.scoring import Request
from antlm.eval.tasks import Item


@dataclass(frozen=True)
class SpecialTokens:
    """What a Hugging Face tokenizer adds around one text (`tokenizer(text)`), and its mask token."""
    head: tuple[int, ...]
    tail: tuple[int, ...]
    mask_id: Optional[int]


@dataclass(frozen=True)
class ScoringContext:
    """What an encoder may need to know about the model it encodes for."""
    tokenizer: Tokenizer
    backbone: str
    target_offset: int  # where the model reads a masked token's prediction: 0 at it, 1 one to its left
    special: Optional[SpecialTokens] = None  # a Hugging Face directory's own tokenizer; None: antlm's


@dataclass(frozen=True)
class Pipeline:
    name: str
    summary: str
    backends: tuple[str, ...]
    """Zero-shot backends it scores with (`hybrid` runs the causal one and the model's masked one)."""
    tasks: tuple[str, ...]
    """Every task it can run; `default_tasks` is what `antlm eval` runs when --tasks is not given."""
    default_tasks: tuple[str, ...]
    encode: Callable[[Item, str, ScoringContext], list[Request]]
    """One request per option of an item, for a backend."""
    reduction: Callable[[str], str]
    """Backend -> `sum` or `mean` over the scored tokens."""
    overlong: Callable[[str], str]
    """Backend -> what to do with items longer than the model's window (scoring.OVERLONG)."""
    ties_correct: bool
    """True: the first option wins a tie (an argmax that takes the first maximum)."""
    task_score: Callable[[str, dict[str, float]], float]
    """(task, {subtask: accuracy}) -> the task's score."""
    macro_parts: tuple[str, ...]
    """Tasks whose scores are averaged into the macro-average; () for none."""
    glue_recipe: str
    """Name of the GLUE fine-tuning recipe (antlm.eval.glue_recipes)."""
    temperature_sweep: bool = False
    """Whether --temperatures may ask for more than 1.0 (the 2025 pipeline's --min/max_temperature)."""
    report_by: tuple[str, ...] = ()
    """Item metadata keys whose values get their own accuracies in the results (2025: UID, field, ...)."""
    eval_sets: tuple[str, ...] = ("full",)
    masked_read: str = "model"
    """`model`: a masked backend reads wherever the model predicts (its mlm target offset), and
    `mntp` must match it; `backend`: `mlm` reads at the mask and `mntp` one position to its left,
    whatever the model (the 2025 backends), and a model that predicts elsewhere is refused."""
    prediction_view: str = "options"
    """What a prediction names: `options` (the 2024 option text) or `completions` (the 2025
    completion; COMPS the whole sentence)."""
    submission_problems: Optional[Callable[[dict, Path], Optional[list[str]]]] = None
    """(the predictions of one backend, data dir) -> what the pipeline's own checker would reject,
    or None when it has nothing to check."""
    takes_hf_models: bool = False
    """Whether a local Hugging Face directory may be scored (its own tokenizer decides the inputs)."""

    def read_offset(self, backend: str, model_offset: int) -> Optional[int]:
        """Where a masked backend reads the prediction for a masked token (None for causal)."""
        if backend == "causal":
            return None
        if backend == "mntp":
            return 1
        return 0 if self.masked_read == "backend" else model_offset

    def hybrid_backends(self, model_offset: int) -> list[str]:
        """`--backend hybrid`: the causal backend and the model's masked one."""
        if self.masked_read == "backend":
            return ["causal", "mntp" if model_offset == 1 else "mlm"]
        return ["causal", "mlm"]

    def masked_backend_problem(self, backend: str, model_offset: int) -> Optional[str]:
        return masked_backend_check(backend, model_offset, strict=self.masked_read == "backend")

    def prediction_text(self, item: Item, chosen: int, task: str) -> str:
        if self.prediction_view == "options":
            return item.options[chosen]
        return item.sentences[chosen] if task == "comps" else item.completions[chosen]

    @property
    def tie_rule(self) -> str:
        """How an item whose best score is shared by two options is counted (results.json says it)."""
        if self.ties_correct:
            return "first option wins (the pipeline's argmax), and the first option is the correct one"
        return "counted wrong (the correct option must score strictly higher)"


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def masked_backend_check(backend: str, target_offset: int, strict: bool) -> Optional[str]:
    """The error for a masked backend that reads where this model does not predict, or None.
    `strict` pipelines name the read (`mlm` at the masked position, `mntp` one to its left);
    otherwise `mlm` means "wherever the model predicts" and `mntp` must match."""
    if backend == "mntp" and target_offset != 1:
        return f"--backend mntp reads one position left of the mask, but this model predicts at offset {target_offset}: use --backend mlm"
    if backend == "mlm" and strict and target_offset != 0:
        return (f"this model predicts masked tokens at offset {target_offset} (MNTP): the 2025 pipeline's mlm backend "
                "would read the wrong position; use --backend mntp")
    return None
