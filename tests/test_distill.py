"""Distillation in the trainer: the loss equals the formula on a real batch in both objectives, MLM
teachers are read at the student's target positions, resume is exact, bad teachers are refused."""
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from antlm import load_model
from antlm.config import DistillConfig, build_config
from antlm.distill import TeacherEnsemble
from antlm.errors import UserError
from antlm.objectives import clm_batch, loss_sum, mlm_batch
from antlm.train.loop import train
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, request):
    """Two small teachers of different widths and backbones, trained briefly on one corpus."""
    from conftest import WORDS
    import random

    root = tmp_path_factory.mktemp("teachers")
    rng = random.Random(0)
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.train").write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(9)) + " ." for _ in range(600)))
    first = root / "llama"
    train(build_config(None, tiny_overrides(corpus, schedule="6st_clm+6st_mlm")), first, log=QUIET)
    second = root / "bert"
    train(build_config(None, tiny_overrides(corpus, schedule="6st_mlm", **{
        "model.backbone": "ltgbert", "model.hidden_size": 48, "data.tokenizer": first / "tokenizer.json"})), second, log=QUIET)
    wide = root / "llama-wide"
    train(build_config(None, tiny_overrides(corpus, schedule="6st_clm+6st_mlm", **{
        "model.hidden_size": 64, "data.tokenizer": first / "tokenizer.json"})), wide, log=QUIET)
    return corpus, first, second, wide


def _batch(tokenizer, objective, backbone, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, tokenizer.get_vocab_size(), (4, 17), generator=g)
    inputs, targets = ids[:, :-1].clone(), ids[:, 1:].clone()
    inputs[:, 0] = tokenizer.token_to_id("<s>")
    if objective == "clm":
        return clm_batch(inputs, targets)
    from antlm.config import MlmConfig

    offset = 1 if backbone == "babyllama" else 0
    return mlm_batch(inputs, targets, MlmConfig(mask_rate=0.3), backbone, offset, 0.3, tokenizer.token_to_id("<mask>"),
                     5, tokenizer.get_vocab_size(), g)


def _direct(student, teacher_models, batch, alpha, temperature, kl_weight):
    logits = student(batch.input_ids, causal=batch.causal, target_mask=batch.target_mask).reshape(-1, student.cfg.vocab_size)
    with torch.no_grad():
        mean = sum(t(batch.input_ids, causal=batch.causal, target_mask=batch.target_mask).reshape(logits.shape)
                   for t in teacher_models) / len(teacher_models)
    ce = F.cross_entropy(logits, batch.targets.reshape(-1), reduction="sum")
    kl = F.kl_div(F.log_softmax(logits / temperature, -1), F.softmax(mean / temperature, -1), reduction="sum")
    return alpha * ce + kl_weight * temperature ** 2 * kl


@pytest.mark.parametrize("objective", ["clm", "mlm"])
@pytest.mark.parametrize("scale", ["per_token", "reference"])
def test_trainer_loss_equals_the_formula(teachers, objective, scale):
    _, first, second, _ = teachers
    student, tokenizer = load_model(first)
    student.train()
    ensemble = TeacherEnsemble(DistillConfig(teachers=[str(first), str(second)], scale=scale), tokenizer.get_vocab(),
                               [objective], torch.device("cpu"))
    batch = _batch(tokenizer, objective, "babyllama")
    inputs = ensemble.inputs(batch, batch.num_targets, batch.input_ids.size(0))
    fused = loss_sum(student, batch, inputs)
    kl_weight = 0.5 * (batch.num_targets / batch.input_ids.size(0) if scale == "reference" else 1.0)
    direct = _direct(student, [t.model for t in ensemble.teachers], batch, 0.5, 2.0, kl_weight)
    assert fused.item() == pytest.approx(direct.item(), rel=1e-5)
    (grad_fused,) = torch.autograd.grad(fused, student.lm_head.weight)
    (grad_direct,) = torch.autograd.grad(direct, student.lm_head.weight)
    torch.testing.assert_close(grad_fused, grad_direct, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
def test_mlm_teachers_are_read_at_the_student_target_positions(teachers, backbone):
    """A teacher identical to the student gives a KL of exactly zero only if it is read at the
    student's own target rows, on the same corrupted input, under the same mask."""
    _, first, second, _ = teachers
    run = first if backbone == "babyllama" else second
    student, tokenizer = load_model(run)
    ensemble = TeacherEnsemble(DistillConfig(teachers=[str(run)], temperature=1.0), tokenizer.get_vocab(), ["mlm"],
                               torch.device("cpu"))
    batch = _batch(tokenizer, "mlm", backbone, seed=3)
    assert 0 < batch.num_targets < batch.input_ids.numel()
    from antlm.models.fused_head import linear_distill_loss

    features, weight, bias = student.head_inputs(batch.input_ids, False, batch.target_mask)
    _, _, kl = linear_distill_loss(features, weight, bias, batch.targets, ensemble.inputs(batch, 1, 1).teachers, 0.5, 0.5, 1.0)
    assert abs(kl.item()) < 1e-4
    shifted = batch.target_mask.roll(1, dims=1)
    wrong = student.head_inputs(batch.input_ids, False, shifted)
    _, _, kl_wrong = linear_distill_loss(wrong[0], weight, bias, batch.targets[: wrong[0].size(0)],
                                         ensemble.inputs(batch, 1, 1).teachers, 0.5, 0.5, 1.0)
    assert kl_wrong.item() > 100 * max(abs(kl.item()), 1e-6)


def test_distilled_training_resumes_exactly(teachers, tmp_path):
    corpus, first, _, wide = teachers
    extra = {"data.tokenizer": first / "tokenizer.json", "distill.teachers": f"[{first},{wide}]"}
    messages = []
    train(build_config(None, tiny_overrides(corpus, **extra)), tmp_path / "full", log=messages.append)
    assert any("distilling from 2 teacher(s)" in m for m in messages)
    train(build_config(None, tiny_overrides(corpus, **extra, **{"train.max_steps": 12})), tmp_path / "cut", log=QUIET)
    train(build_config(None, tiny_overrides(corpus, **extra)), tmp_path / "cut", resume=True, log=QUIET)
    full, cut = (load_file(str(tmp_path / r / "final" / "model.safetensors")) for r in ("full", "cut"))
    assert all(torch.equal(full[k], cut[k]) for k in full)
    plain = tmp_path / "plain"
    train(build_config(None, tiny_overrides(corpus, **{"data.tokenizer": first / "tokenizer.json"})), plain, log=QUIET)
    other = load_file(str(plain / "final" / "model.safetensors"))
    assert not all(torch.equal(full[k], other[k]) for k in full)  # the teachers changed the updates


def test_teachers_with_another_vocabulary_are_refused_before_the_run_starts(teachers, tmp_path):
    corpus, first, _, _ = teachers
    out = tmp_path / "student"
    with pytest.raises(UserError, match="vocabulary of .* differs from the student's"):
        train(build_config(None, tiny_overrides(corpus, **{"data.vocab_size": 280, "distill.teachers": f"[{first}]"})),
              out, log=QUIET)
    assert not (out / "config.yaml").exists()


def test_causal_only_hf_teacher_cannot_serve_mlm_phases(teachers, tmp_path):
    pytest.importorskip("transformers", reason="the hf extra is not installed")
    from antlm.export.hf import export_hf

    corpus, first, _, _ = teachers
    hf_dir = export_hf(first, tmp_path / "hf")
    extra = {"data.tokenizer": first / "tokenizer.json", "distill.teachers": f"[{hf_dir}]"}
    with pytest.raises(UserError, match="cannot serve the mlm phases"):
        train(build_config(None, tiny_overrides(corpus, **extra)), tmp_path / "refused", log=QUIET)
    result = train(build_config(None, tiny_overrides(corpus, **extra, **{"distill.skip_unsupported_phases": "true"})),
                   tmp_path / "skipped", log=QUIET)
    assert result["finished"]
    # In a CLM phase the exported teacher gives the antlm teacher's own inputs (same model, same rows).
    student, tokenizer = load_model(first)
    batch = _batch(tokenizer, "clm", "babyllama")
    from antlm.distill import Teacher

    hf_features, hf_weight, _ = Teacher(str(hf_dir), torch.device("cpu")).head_inputs(batch.input_ids, True, None, None)
    own_features, own_weight, _ = student.head_inputs(batch.input_ids, True)
    torch.testing.assert_close(hf_features.reshape(own_features.shape), own_features, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hf_weight, own_weight)


def test_mlm_teacher_with_another_target_offset_is_refused(teachers, tmp_path):
    corpus, first, second, _ = teachers  # second: an LTG-BERT run, offset 0; a BabyLlama student: offset 1
    extra = {"data.tokenizer": first / "tokenizer.json", "distill.teachers": f"[{second}]"}
    with pytest.raises(UserError, match="offset 0, the student at offset 1"):
        train(build_config(None, tiny_overrides(corpus, **extra)), tmp_path / "refused", log=QUIET)
    # CLM phases read next-token predictions, the same for every backbone.
    assert train(build_config(None, tiny_overrides(corpus, schedule="6st_clm", **extra)), tmp_path / "clm", log=QUIET)["finished"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CI machine has none)")
def test_distilled_training_on_gpu_with_bf16_teachers(teachers, tmp_path):
    corpus, first, _, wide = teachers
    messages = []
    out = tmp_path / "gpu"
    train(build_config(None, tiny_overrides(corpus, **{
        "data.tokenizer": first / "tokenizer.json", "distill.teachers": f"[{first},{wide}]", "train.device": "cuda"})),
        out, log=messages.append)
    assert any("distilling from 2 teacher(s)" in m for m in messages)
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]
    assert all(l == l for l in losses) and losses[-1] < losses[0]
