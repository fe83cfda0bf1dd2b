"""Knowledge distillation from a teacher ensemble, in every phase of a schedule.

The loss (BabyLlama, timinar/BabyLlama `distill-ensemble-pretraining-baby-llama.py`):
    alpha * CE(student) + (1 - alpha) * T^2 * KL(softmax(mean_k teacher_k / T) || softmax(student / T))
computed chunk by chunk by `fused_head.linear_distill_loss` (no [tokens x vocab] buffer for the
student or any teacher). `distill.scale`:
- `per_token`: both terms are means over the targets (CE's own scale);
- `reference`: the reference's `KLDivLoss(reduction="batchmean")` on [batch, time, vocab], which
  divides the KL sum by the number of sequences only, so its KL term is `targets / sequences` times
  larger than the per-token one.

Teachers see exactly the student's input: in CLM phases the causal input, in MLM phases the same
corrupted input under the bidirectional mask, read at the same target positions (so the same
target offset). They run without gradients, in eval mode, in bf16 on CUDA.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from antlm.errors import UserError
from antlm.models.fused_head import select_positions


@dataclass
class DistillInputs:
    """What a model's forward needs to add the KL term: per teacher (features, head weight, bias)
    at the student's target rows, and the term's weights."""
    teachers: list[tuple[Tensor, Tensor, Optional[Tensor]]]
    alpha: float
    kl_weight: float
    temperature: float
    weighting: str


class Teacher:
    """An antlm model (run dir or final/) or a Hugging Face causal LM directory, as head inputs."""

    def __init__(self, path: str, device: torch.device):
        self.path = path
        directory = Path(path)
        if not directory.exists():
            raise UserError(f"distill.teachers: {path} does not exist")
        if (directory / "final" / "config.json").is_file() or _is_antlm_model(directory):
            from antlm.model_io import load_model

            self.model, tokenizer = load_model(directory, device)
            self.kind = "antlm"
            self.vocab = tokenizer.get_vocab()
        else:
            self.model, self.vocab = _load_hf_causal(directory, device)
            self.kind = "hf-causal"
        self.model.eval().requires_grad_(False)
        self.device = device

    def serves(self, objective: str) -> bool:
        return self.kind == "antlm" or objective == "clm"

    @torch.no_grad()
    def head_inputs(self, input_ids: Tensor, causal: bool, target_mask: Optional[Tensor],
                    target_index: Optional[Tensor]) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
        with autocast:
            if self.kind == "antlm":
                return self.model.head_inputs(input_ids, causal, target_mask=target_mask, target_index=target_index)
            hidden = self.model(input_ids=input_ids, output_hidden_states=True).hidden_states[-1]
        head = self.model.get_output_embeddings()
        return select_positions(hidden, target_mask, target_index), head.weight, head.bias


def _is_antlm_model(directory: Path) -> bool:
    import json

    try:
        return "backbone" in json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return False


def _load_hf_causal(directory: Path, device: torch.device):
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise UserError("a Hugging Face teacher needs transformers: pip install 'antlm[hf]'") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True).to(device)
        vocab = AutoTokenizer.from_pretrained(str(directory), local_files_only=True).get_vocab()
    except (OSError, ValueError) as err:
        raise UserError(f"distill.teachers: cannot load {directory} as a Hugging Face causal LM: "
                        f"{str(err).splitlines()[0]}") from None
    return model, vocab


class TeacherEnsemble:
    """The configured teachers and the loss settings; `inputs(batch, ...)` builds DistillInputs."""

    def __init__(self, cfg, student_vocab: dict[str, int], phases: list[str], device: torch.device,
                 student_offset: Optional[int] = None):
        self.cfg = cfg
        self.teachers = [Teacher(path, device) for path in cfg.teachers]
        for teacher in self.teachers:
            # In MLM phases a teacher is read at the student's target rows: those rows mean "the
            # masked token here" (offset 0) or "the next one" (offset 1), and must mean it for both.
            offset = teacher.model.antlm_meta.mlm_target_offset if teacher.kind == "antlm" else None
            if "mlm" in phases and student_offset is not None and offset is not None and offset != student_offset:
                raise UserError(f"distill.teachers: {teacher.path} predicts masked tokens at offset {offset}, the student "
                                f"at offset {student_offset} (mlm.target_offset): its MLM predictions would be read at "
                                "the wrong rows")
        for teacher in self.teachers:
            if teacher.vocab != student_vocab:
                raise UserError(f"distill.teachers: {teacher.path} has a vocabulary of {len(teacher.vocab)} tokens that "
                                f"differs from the student's {len(student_vocab)}: train the student with its tokenizer "
                                f"(--set data.tokenizer=.../tokenizer.json)")
        for objective in sorted(set(phases)):
            unable = [t.path for t in self.teachers if not t.serves(objective)]
            if unable and not cfg.skip_unsupported_phases:
                raise UserError(f"distill.teachers: {', '.join(unable)} cannot serve the {objective} phases (a causal-only "
                                f"model); set distill.skip_unsupported_phases=true to train those phases without distillation")

    def inputs(self, batch, num_targets: int, num_sequences: int) -> Optional[DistillInputs]:
        """DistillInputs for one (micro-)batch; `num_targets` and `num_sequences` are the whole step's,
        so every micro-batch and rank weighs the KL term alike. None: no teacher serves this objective."""
        teachers = [t for t in self.teachers if t.serves(batch.objective)]
        if not teachers:
            return None
        kl_weight = 1.0 - self.cfg.alpha
        if self.cfg.scale == "reference":
            kl_weight *= num_targets / max(1, num_sequences)
        heads = [t.head_inputs(batch.input_ids, batch.causal, batch.target_mask, batch.target_index) for t in teachers]
        return DistillInputs(heads, self.cfg.alpha, kl_weight, self.cfg.temperature, self.cfg.weighting)
