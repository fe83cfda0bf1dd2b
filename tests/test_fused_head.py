"""The chunked head + cross-entropy equals the plain logits + F.cross_entropy, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from antlm.models.fused_head import IGNORE, linear_cross_entropy


def _inputs(bias: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(37, 16, generator=g, requires_grad=True)
    weight = (torch.randn(50, 16, generator=g) * 0.3).requires_grad_()
    b = (torch.randn(50, generator=g) * 0.1).requires_grad_() if bias else None
    targets = torch.randint(0, 50, (37,), generator=g)
    targets[::5] = IGNORE
    return features, weight, b, targets


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 8, 64])
def test_equals_reference_with_gradients(bias, chunk_rows):
    features, weight, b, targets = _inputs(bias)
    reference = F.cross_entropy(F.linear(features, weight, b), targets, reduction="sum", ignore_index=IGNORE)
    expected = torch.autograd.grad(reference, [t for t in (features, weight, b) if t is not None])
    loss = linear_cross_entropy(features, weight, b, targets, chunk_rows=chunk_rows)
    got = torch.autograd.grad(loss * 2.5, [t for t in (features, weight, b) if t is not None])
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, 2.5 * e, rtol=1e-5, atol=1e-6)


def test_no_grad_path_and_frozen_weight():
    features, weight, b, targets = _inputs(True, seed=1)
    reference = F.cross_entropy(F.linear(features, weight, b), targets, reduction="sum", ignore_index=IGNORE)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(features, weight, b, targets, chunk_rows=4), reference)
    weight.requires_grad_(False)
    loss = linear_cross_entropy(features, weight, b, targets, chunk_rows=4)
    loss.backward()
    assert weight.grad is None and features.grad is not None


def test_all_rows_ignored_gives_zero_loss_and_gradient():
    features, weight, b, targets = _inputs(False)
    loss = linear_cross_entropy(features, weight, b, torch.full_like(targets, IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and features.grad.abs().sum().item() == 0.0


def test_under_bf16_autocast_gradients_keep_their_dtypes():
    """The GPU path runs under bf16 autocast: features arrive in bf16, the weight is fp32."""
    features, weight, b, targets = _inputs(True, seed=2)
    reference = F.cross_entropy(F.linear(features, weight, b), targets, reduction="sum", ignore_index=IGNORE)
    expected = torch.autograd.grad(reference, [weight])[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = features.to(torch.bfloat16)
        loss = linear_cross_entropy(half, weight, b, targets, chunk_rows=8)
    grad_half, grad_weight = torch.autograd.grad(loss, [half, weight])
    assert loss.dtype == torch.float32 and grad_half.dtype == torch.bfloat16 and grad_weight.dtype == torch.float32
    torch.testing.assert_close(loss, reference, rtol=2e-2, atol=0.5)
    torch.testing.assert_close(grad_weight, expected, rtol=5e-2, atol=5e-2)
