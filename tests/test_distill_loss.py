"""The chunked distillation loss equals the formula computed directly on full logits (float64; the
fused path works in float32, as in training), in both scales
(per-token, and the BabyLlama reference's KLDivLoss(reduction="batchmean")), for values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from antlm.models.fused_head import IGNORE, linear_distill_loss

ALPHA, T = 0.5, 2.0


def _problem(seed=0, batch=3, time=7, hidden=16, vocab=50, ignore=True):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch * time, hidden, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, hidden, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(vocab, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, vocab, (batch * time,), generator=g)
    if ignore:
        targets[::4] = IGNORE
    # Two teachers of other widths, as an ensemble of larger models would be.
    teachers = [(torch.randn(batch * time, width, generator=g, dtype=torch.float64),
                 torch.randn(vocab, width, generator=g, dtype=torch.float64) * 0.7,
                 torch.randn(vocab, generator=g, dtype=torch.float64) if width == 24 else None) for width in (24, 8)]
    return features, weight, bias, targets, teachers


def _teacher_logits(teachers):
    return [f @ w.t() + (0 if b is None else b) for f, w, b in teachers]


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("weighting", ["logits", "probs"])
def test_per_token_scale_equals_the_direct_formula(weighting):
    features, weight, bias, targets, teachers = _problem()
    valid = targets != IGNORE
    logits = features @ weight.t() + bias
    t_logits = _teacher_logits(teachers)
    if weighting == "logits":
        p = torch.softmax(sum(t_logits) / len(t_logits) / T, -1)
    else:
        p = sum(torch.softmax(t / T, -1) for t in t_logits) / len(t_logits)
    ce = F.cross_entropy(logits, targets, ignore_index=IGNORE)
    kl = F.kl_div(torch.log_softmax(logits[valid] / T, -1), p[valid], reduction="sum") / valid.sum()
    direct = ALPHA * ce + (1 - ALPHA) * T ** 2 * kl
    loss, ce_sum, kl_sum = linear_distill_loss(features, weight, bias, targets, teachers, ALPHA, 1 - ALPHA, T,
                                               weighting=weighting, chunk_rows=5)
    fused = loss / valid.sum()
    assert fused.item() == pytest.approx(direct.item(), rel=1e-6)
    assert (ce_sum / valid.sum()).item() == pytest.approx(ce.item(), rel=1e-6)
    assert (kl_sum / valid.sum()).item() == pytest.approx(kl.item(), rel=1e-6)
    for got, want in zip(_grads(fused, features, weight, bias), _grads(direct, features, weight, bias)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_reference_scale_is_kldivloss_batchmean():
    # The reference (timinar/BabyLlama) on [batch, time, vocab]: CE a mean over tokens, the KL term
    # summed over positions and divided by the batch size only.
    batch, time = 3, 7
    features, weight, bias, targets, teachers = _problem(batch=batch, time=time, ignore=False)
    logits = (features @ weight.t() + bias).view(batch, time, -1)
    teacher_mean = (sum(_teacher_logits(teachers)) / 2).view(batch, time, -1)
    kl = torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(logits / T, -1), F.softmax(teacher_mean / T, -1))
    reference = ALPHA * F.cross_entropy(logits.view(batch * time, -1), targets) + (1 - ALPHA) * T ** 2 * kl
    tokens = batch * time
    loss, _, _ = linear_distill_loss(features, weight, bias, targets, teachers, ALPHA, (1 - ALPHA) * tokens / batch, T,
                                     chunk_rows=4)
    fused = loss / tokens
    assert fused.item() == pytest.approx(reference.item(), rel=1e-6)
    for got, want in zip(_grads(fused, features, weight, bias), _grads(reference, features, weight, bias)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_no_grad_path_and_float32_agree_with_the_training_path():
    features, weight, bias, targets, teachers = _problem(seed=1)
    train_loss = linear_distill_loss(features, weight, bias, targets, teachers, ALPHA, 1 - ALPHA, T, chunk_rows=3)[0]
    with torch.no_grad():
        eval_loss = linear_distill_loss(features, weight, bias, targets, teachers, ALPHA, 1 - ALPHA, T)[0]
    assert eval_loss.item() == pytest.approx(train_loss.item(), rel=1e-6)
    as32 = lambda t: None if t is None else t.detach().float()  # noqa: E731
    loss32 = linear_distill_loss(as32(features), as32(weight), as32(bias), targets,
                                 [(as32(f), as32(w), as32(b)) for f, w, b in teachers], ALPHA, 1 - ALPHA, T)[0]
    assert loss32.item() == pytest.approx(train_loss.item(), rel=1e-5)


def test_teacher_rows_and_vocabulary_must_match_the_student():
    features, weight, bias, targets, teachers = _problem()
    f, w, b = teachers[0]
    with pytest.raises(ValueError, match="vocab"):
        linear_distill_loss(features, weight, bias, targets, [(f, w[:-1], None)], ALPHA, 1 - ALPHA, T)
    with pytest.raises(ValueError, match="weighting"):
        linear_distill_loss(features, weight, bias, targets, teachers, ALPHA, 1 - ALPHA, T, weighting="max")
