"""GPT-BERT's training features, each usable by every backbone: the learning-rate cooldown and the
trapezoid, the batch-size warm-up, the weight EMA and the GPT-BERT span masking."""
import numpy as np
import pytest
import torch

from antlm.config import ConfigError, OptimConfig, build_config
from antlm.data.masking import gptbert_span_mask
from antlm.train.ema import WeightEma
from antlm.data.batches import batch_sizes
from antlm.train.optim import lr_at

torch.set_num_threads(1)


def test_cosine_with_cooldown_is_the_reference_shape():
    cfg = OptimConfig(lr=1.0, warmup_fraction=0.016, min_lr_ratio=0.1, cooldown_fraction=0.016)
    total = 1000
    lrs = [lr_at(s, total, cfg) for s in range(total)]
    assert lrs[15] == 1.0 and lrs[0] == pytest.approx(1 / 16)  # warmup of round(16) steps
    cooldown = int(0.016 * total)  # 16, truncated as the reference
    # GPT-BERT's utils.py: in the last 16 steps, min_factor * (total - step) / cooldown.
    assert lrs[total - cooldown:] == pytest.approx([0.1 * (total - s) / cooldown for s in range(total - cooldown, total)])
    assert lrs[total - cooldown - 1] == pytest.approx(0.1, abs=2e-3)  # the cosine has reached its floor
    assert all(a >= b for a, b in zip(lrs[16:], lrs[17:]))  # non-increasing after warmup
    assert [lr_at(s, total, OptimConfig(lr=1.0, warmup_fraction=0.016)) for s in range(total)][-1] == pytest.approx(0.1)


def test_trapezoid():
    cfg = OptimConfig(lr=2.0, warmup_steps=10, lr_schedule="trapezoid", cooldown_fraction=0.2)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[:10] == pytest.approx([2.0 * (s + 1) / 10 for s in range(10)])
    assert set(lrs[10:80]) == {2.0}
    assert lrs[80:] == pytest.approx([2.0 * (100 - s) / 20 for s in range(80, 100)])
    with pytest.raises(ConfigError, match="optim.lr_schedule must be"):
        build_config(None, ["optim.lr_schedule=linear"])


def test_batch_warmup_ramp():
    sizes = batch_sizes(32768, 4, 7812, 1)
    assert sizes[0] == 8192 and sizes[-1] == int(32768 / 4 * (1 / 7812) + 32768 * (7811 / 7812) + 0.5)
    # The reference's formula at t = step / max_steps, every step.
    t = 3906 / 7812
    assert sizes[3906] == int(32768 / 4 * (1 - t) + 32768 * t + 0.5)
    assert np.all(np.diff(sizes) >= 0)
    coarse = batch_sizes(64, 4, 50, 8)  # multiples of ranks x micro-batch, never 0
    assert coarse[0] == 16 and np.all(coarse % 8 == 0) and coarse.max() <= 64
    with pytest.raises(ConfigError, match="train.batch_warmup >= 1"):
        build_config(None, ["train.batch_warmup=0.5"])


def test_ema_update_and_swap():
    model = torch.nn.Linear(3, 2)
    ema = WeightEma(model, decay=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update()
    for shadow, p0, p in zip(ema.shadow, start, model.parameters()):
        torch.testing.assert_close(shadow, 0.9 * p0 + 0.1 * p.detach())
    raw = [p.detach().clone() for p in model.parameters()]
    with ema.applied():
        assert all(torch.equal(p, s) for p, s in zip(model.parameters(), ema.shadow))
    assert all(torch.equal(p, r) for p, r in zip(model.parameters(), raw))  # restored bitwise
    ema.update(skipped=torch.tensor(True))  # a skipped step leaves the average as it was
    torch.testing.assert_close(ema.shadow[0], 0.9 * start[0] + 0.1 * raw[0])
    restored = WeightEma(model, decay=0.9)
    restored.load_state_tensors(ema.state_tensors())
    assert all(torch.equal(a, b) for a, b in zip(restored.shadow, ema.shadow))


def test_gptbert_span_mask_statistics():
    generator = torch.Generator().manual_seed(0)
    maskable = torch.ones(4000, 128, dtype=torch.bool)
    maskable[:, 0] = False
    masked, draw = gptbert_span_mask(maskable, 0.15, 3, generator)
    assert not masked[:, 0].any()
    per_row = masked.sum(1).float()
    # At least floor(127 * 0.15 + U) per row; the span at the threshold is taken whole (<= 2 more).
    assert per_row.min() >= 19 and per_row.max() <= 20 + 2
    assert 0.15 <= per_row.mean().item() / 127 <= 0.16
    # One 80/10/10 draw per span: equal draws come in runs of 1-3 positions.
    changes = (draw[:, 1:] != draw[:, :-1]).float()
    assert 1.7 < 127 / (changes.sum(1).mean().item() + 1) < 2.1  # mean span length 2
    runs, run = [], 0
    for value in masked[:200].flatten().tolist() + [False]:
        run = run + 1 if value else (runs.append(run) or 0) if run else 0
    assert max(runs) <= 3 * 4  # adjacent masked spans can join, but never long
