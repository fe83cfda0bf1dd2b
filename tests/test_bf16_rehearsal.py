"""GPU numerics rehearsed on CPU: the paths a GPU runs in bf16 autocast, run here under CPU bf16
autocast against their fp32 selves (issue 23). What could go wrong on the first GPU and is checked:
a loss or gradient kept in bf16 where it needs fp32 (the chunked head's logsumexp, its in-place
softmax gradient, the distillation KL), and a training run that drifts from fp32 over steps.

Tolerances (bf16 keeps 8 bits of mantissa, ~3e-3 relative per rounding):
* head loss: 3e-3 relative to fp32; gradients: 2e-2 relative (Frobenius norm of the difference);
  measured on CPU: at most 3e-4 and 6e-3;
* training: every logged train loss and the final dev loss of both objectives within 5e-3
  relative of the fp32 run's, over a 25-step CLM -> MLM -> CLM run (measured on CPU: at most 4e-4,
  each backbone);
* `train.compile=true` against eager, both fp32: 1e-3 relative on every logged loss.

`ANTLM_TEST_DEVICE=cuda` runs the same tests on a GPU, where they are the real thing
(scripts/gpu_check.sh does).
"""
import json
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from antlm.config import build_config
from antlm.models.fused_head import IGNORE, linear_cross_entropy, linear_distill_loss
from antlm.train.loop import train
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731
HEAD_LOSS_TOL, HEAD_GRAD_TOL, TRAIN_TOL, COMPILE_TOL = 3e-3, 2e-2, 5e-3, 1e-3
ROWS, HIDDEN, VOCAB, CHUNK = 96, 64, 500, 23  # several chunks, the last one short
DEVICE = os.environ.get("ANTLM_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip(f"ANTLM_TEST_DEVICE={DEVICE} but no CUDA device", allow_module_level=True)
AUTOCAST = torch.device(DEVICE).type


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12)).item()


def _head_inputs(bias: bool, ignored: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(ROWS, HIDDEN, generator=g) * 2
    weight = torch.randn(VOCAB, HIDDEN, generator=g) * 0.2
    b = torch.randn(VOCAB, generator=g) * 0.5 if bias else None
    targets = torch.randint(0, VOCAB, (ROWS,), generator=g)
    if ignored:  # MLM rows without a target (the fixed-shape head pads with them)
        targets[::3] = IGNORE
    return [None if t is None else t.to(DEVICE) for t in (features, weight, b, targets)]


def _grads(loss_fn, features, weight, bias, features_dtype):
    leaves = [t.clone().requires_grad_(True) if t is not None else None for t in (features, weight, bias)]
    loss = loss_fn(leaves[0].to(features_dtype), leaves[1], leaves[2])
    loss.backward()
    return loss.detach().float(), [t.grad for t in leaves if t is not None]


@pytest.mark.parametrize("objective", ["clm", "mlm"])
@pytest.mark.parametrize("features_dtype", [torch.float32, torch.bfloat16])
def test_chunked_head_under_bf16_autocast_matches_fp32(objective, features_dtype):
    # CLM: BabyLlama's head (no bias, every row a target); MLM: LTG-BERT's (bias, rows without targets).
    features, weight, bias, targets = _head_inputs(bias=objective == "mlm", ignored=objective == "mlm")

    def reference(f, w, b):
        return F.cross_entropy(F.linear(f.float(), w, b), targets, reduction="sum", ignore_index=IGNORE)

    def fused(f, w, b):
        with torch.autocast(AUTOCAST, dtype=torch.bfloat16):
            return linear_cross_entropy(f, w, b, targets, chunk_rows=CHUNK)

    ref_loss, ref_grads = _grads(reference, features, weight, bias, torch.float32)
    loss, grads = _grads(fused, features, weight, bias, features_dtype)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(loss - ref_loss) / ref_loss < HEAD_LOSS_TOL, (loss, ref_loss)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype and _rel(got, want) < HEAD_GRAD_TOL


@pytest.mark.parametrize("weighting", ["logits", "probs"])
def test_chunked_distillation_under_bf16_autocast_matches_fp32(weighting):
    features, weight, bias, targets = _head_inputs(bias=False, ignored=True, seed=1)
    g = torch.Generator().manual_seed(2)
    # Teachers run in bf16 on CUDA: their features arrive in bf16.
    teachers = [((torch.randn(ROWS, 48, generator=g) * 2).to(DEVICE), (torch.randn(VOCAB, 48, generator=g) * 0.2).to(DEVICE),
                 None) for _ in range(2)]
    alpha, kl_weight, temperature = 0.5, 0.5, 2.0

    def reference(f, w, b):
        s = F.linear(f.float(), w).double()
        t = [F.linear(tf.double(), tw.double()) for tf, tw, _ in teachers]
        p = (torch.softmax(sum(t) / len(t) / temperature, -1) if weighting == "logits"
             else sum(torch.softmax(x / temperature, -1) for x in t) / len(t))
        valid = targets != IGNORE
        ce = F.cross_entropy(s[valid], targets[valid], reduction="sum")
        kl = (torch.xlogy(p, p) - p * torch.log_softmax(s / temperature, -1)).sum(-1)[valid].sum()
        return (alpha * ce + kl_weight * temperature ** 2 * kl).float()

    def fused(f, w, b):
        bf16_teachers = [(tf.bfloat16(), tw, tb) for tf, tw, tb in teachers]
        with torch.autocast(AUTOCAST, dtype=torch.bfloat16):
            return linear_distill_loss(f, w, b, targets, bf16_teachers, alpha, kl_weight, temperature, weighting,
                                       chunk_rows=CHUNK)[0]

    ref_loss, ref_grads = _grads(reference, features, weight, None, torch.float32)
    loss, grads = _grads(fused, features, weight, None, torch.bfloat16)
    assert abs(loss - ref_loss) / ref_loss < HEAD_LOSS_TOL, (loss, ref_loss)
    for got, want in zip(grads, ref_grads):
        assert _rel(got, want) < HEAD_GRAD_TOL


def _rows(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train"], [r for r in rows if r["split"] == "dev"][-1]


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert", "gptbert"])
def test_bf16_autocast_training_stays_near_fp32(text_corpus, tmp_path, backbone):
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = build_config(None, tiny_overrides(text_corpus, **{"model.backbone": backbone, "train.precision": precision,
                                                           "train.device": DEVICE}))
        train(cfg, tmp_path / precision, log=QUIET)
        results[precision] = _rows(tmp_path / precision)
    (train32, dev32), (train16, dev16) = results["fp32"], results["bf16"]
    assert [r["step"] for r in train16] == [r["step"] for r in train32]
    assert [r["objective"] for r in train16] == [r["objective"] for r in train32] and len(
        {r["objective"] for r in train32}) == 2  # the run crossed CLM -> MLM -> CLM
    for a, b in zip(train16, train32):
        assert abs(a["loss"] - b["loss"]) / b["loss"] < TRAIN_TOL, (a, b)
    for key in ("dev_clm_loss", "dev_mlm_loss"):
        assert abs(dev16[key] - dev32[key]) / dev32[key] < TRAIN_TOL, (key, dev16, dev32)
    assert train32[-1]["loss"] < train32[0]["loss"]  # the fp32 reference itself learned


@pytest.mark.slow
def test_compile_on_cpu_equals_eager(text_corpus, tmp_path):
    if AUTOCAST == "cpu" and shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler (inductor's C++ backend)")
    losses = {}
    for compiled in ("false", "true"):
        cfg = build_config(None, tiny_overrides(text_corpus, **{"train.compile": compiled, "train.device": DEVICE,
                                                               "train.precision": "fp32"}))
        train(cfg, tmp_path / compiled, log=QUIET)
        losses[compiled] = _rows(tmp_path / compiled)
    (eager, eager_dev), (comp, comp_dev) = losses["false"], losses["true"]
    assert [r["step"] for r in comp] == [r["step"] for r in eager]
    for a, b in zip(comp, eager):
        assert abs(a["loss"] - b["loss"]) / b["loss"] < COMPILE_TOL, (a, b)
    for key in ("dev_clm_loss", "dev_mlm_loss"):
        assert abs(comp_dev[key] - eager_dev[key]) / eager_dev[key] < COMPILE_TOL
