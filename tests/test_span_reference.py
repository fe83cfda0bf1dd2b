"""Span masking against the statistics of LTG-BERT's own SpanMaskingStrategy.

../shared/fixtures/ltgbert_span_masking/stats.json (or $ANTLM_SHARED_FIXTURES) was measured on 2,000
blocks of 128 ordinary ids with the reference's parameters; see its README. antlm is run here on
the same block shape with its defaults, and each statistic must agree within sampling error.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import SHARED_FIXTURES

from antlm.config import MlmConfig
from antlm.data import masking
from antlm.objectives import mlm_batch

STATS = SHARED_FIXTURES / "ltgbert_span_masking" / "stats.json"
pytestmark = pytest.mark.skipif(not STATS.is_file(), reason=f"span-masking fixture not found at {STATS}")
BLOCKS, LENGTH, VOCAB, MASK_ID, NUM_SPECIAL = 2000, 128, 16384, 4, 6


@pytest.fixture(scope="module")
def stats():
    return json.loads(STATS.read_text())


@pytest.fixture(scope="module")
def masked_blocks():
    """antlm's defaults (MlmConfig(), span masking as for ltgbert), through the trainer's mlm_batch."""
    ids = torch.randint(NUM_SPECIAL, VOCAB, (BLOCKS, LENGTH), generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    inputs, masks = [], []
    for chunk in ids.split(250):  # bounds the [B, spans, T] work
        batch = mlm_batch(chunk, chunk, MlmConfig(), "ltgbert", 0, 0.15, MASK_ID, NUM_SPECIAL, VOCAB, generator)
        inputs.append(batch.input_ids)
        masks.append(batch.target_mask)
    return ids, torch.cat(inputs), torch.cat(masks)


def _runs(mask: torch.Tensor) -> list[tuple[int, int, int]]:
    """(row, start, length) of every maximal run of masked positions."""
    runs = []
    for row, line in enumerate(mask.tolist()):
        start = None
        for t, on in enumerate(line + [False]):
            if on and start is None:
                start = t
            elif not on and start is not None:
                runs.append((row, start, t - start))
                start = None
    return runs


def test_masked_fraction_mean_and_spread(stats, masked_blocks):
    _, _, mask = masked_blocks
    fraction = mask.float().mean(dim=1)
    ref = stats["masked_fraction"]
    standard_error = ref["std"] / math.sqrt(BLOCKS)
    # Two independent samples of 2,000: the difference of means has sd ~ sqrt(2) * standard_error.
    assert abs(fraction.mean().item() - ref["mean"]) < 4 * math.sqrt(2) * standard_error
    assert abs(fraction.std().item() - ref["std"]) < 0.15 * ref["std"]


def test_masked_evenly_along_the_block(stats, masked_blocks):
    _, _, mask = masked_blocks
    rate = mask.float().mean(dim=0)
    ref = stats["position_mask_rate"]
    sd = math.sqrt(0.16 * 0.84 / BLOCKS)
    assert abs(rate[0].item() - ref["first"]) < 4 * math.sqrt(2) * sd
    assert abs(rate[1].item() - ref["second"]) < 4 * math.sqrt(2) * sd
    assert abs(rate[32:96].mean().item() - ref["middle_mean_32_96"]) < 0.01
    # Unlike the reference (which clips at T-1 because its blocks end in [SEP]), the last position
    # of an antlm block is an ordinary token and is masked like the others.
    assert rate[-1].item() > 0.1


def test_sampled_span_length_law(stats):
    lengths = masking.wrapped_geometric(torch.rand(200_000, generator=torch.Generator().manual_seed(3)), 3.0, 10)
    observed = torch.bincount(lengths, minlength=10).double() / lengths.numel()
    theory = torch.tensor([stats["sampled_span_length_histogram"]["theory_fraction"][str(k)] for k in range(10)])
    assert lengths.max().item() == 9
    assert (observed - theory.double()).abs().max().item() < 0.005


def test_realised_run_length_histogram(stats, masked_blocks):
    _, _, mask = masked_blocks
    lengths = torch.tensor([length for _, _, length in _runs(mask)])
    ref = {int(k): v for k, v in stats["realised_run_length_histogram"]["counts"].items()}
    total = sum(ref.values())
    # Total variation distance between the two run-length distributions (cap at 12+).
    bins = range(1, 13)
    ours = [((lengths == k) if k < 12 else (lengths >= k)).float().mean().item() for k in bins]
    theirs = [(ref.get(k, 0) if k < 12 else sum(v for j, v in ref.items() if j >= k)) / total for k in bins]
    assert 0.5 * sum(abs(a - b) for a, b in zip(ours, theirs)) < 0.03
    assert abs(lengths.float().mean().item() - stats["realised_run_length_histogram"]["mean"]) < 0.1
    # The old capped law piled runs up at length 10 (273 of ~13k); the wrapped law has no length 10.
    assert (lengths == 10).sum().item() < 2 * ref[10]


def test_replacement_is_80_10_10_and_decided_per_span(stats, masked_blocks):
    ids, inputs, mask = masked_blocks
    n = mask.sum().item()
    as_mask = (mask & (inputs == MASK_ID)).sum().item() / n
    kept = (mask & (inputs == ids)).sum().item() / n
    ref = stats["replacement"]
    sd = math.sqrt(0.2 * 0.8 / (n / 3))  # spans, not tokens, are the independent units (~3 tokens each)
    assert abs(as_mask - ref["mask_token"]) < 4 * math.sqrt(2) * sd
    assert abs(kept - ref["kept"]) < 4 * math.sqrt(2) * sd
    assert abs(1 - as_mask - kept - ref["random_token"]) < 4 * math.sqrt(2) * sd
    outcome = torch.where(inputs == MASK_ID, 0, torch.where(inputs == ids, 2, 1))
    long_runs = [(r, s, k) for r, s, k in _runs(mask) if k >= 2]
    mixed = sum(outcome[r, s:s + k].unique().numel() > 1 for r, s, k in long_runs) / len(long_runs)
    assert abs(mixed - stats["per_span_or_per_token_from_data"]["mixed_fraction"]) < 0.03


def test_replace_unit_token_decides_per_token():
    ids = torch.randint(NUM_SPECIAL, VOCAB, (200, LENGTH), generator=torch.Generator().manual_seed(0))
    cfg = MlmConfig(replace_unit="token")
    batch = mlm_batch(ids, ids, cfg, "ltgbert", 0, 0.15, MASK_ID, NUM_SPECIAL, VOCAB, torch.Generator().manual_seed(1))
    outcome = torch.where(batch.input_ids == MASK_ID, 0, torch.where(batch.input_ids == ids, 2, 1))
    long_runs = [(r, s, k) for r, s, k in _runs(batch.target_mask) if k >= 2]
    mixed = sum(outcome[r, s:s + k].unique().numel() > 1 for r, s, k in long_runs) / len(long_runs)
    assert mixed > 0.4  # ~0.53 expected when every token is decided on its own


def test_special_tokens_are_never_masked_and_masks_are_seeded():
    ids = torch.randint(NUM_SPECIAL, 100, (64, 32), generator=torch.Generator().manual_seed(0))
    ids[:, ::5] = 1  # specials sprinkled through the block
    maskable = ids >= NUM_SPECIAL
    first, draw = masking.reference_span_mask(maskable, 0.15, 3.0, 10, torch.Generator().manual_seed(7))
    again, _ = masking.reference_span_mask(maskable, 0.15, 3.0, 10, torch.Generator().manual_seed(7))
    assert torch.equal(first, again) and not (first & ~maskable).any()
    assert first.any(dim=1).all()  # at least one masked token per row
    assert draw.shape == ids.shape
