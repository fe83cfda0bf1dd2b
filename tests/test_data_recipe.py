"""The reference recipes' data choices: length stages (data.length_schedule), short rows
(data.short_fraction) and random block offsets (data.block_offsets)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from antlm.config import ConfigError, build_config, from_dict, to_dict
from antlm.data import tokenizer as tok_lib
from antlm.data.batches import BatchMaker, batch_sizes, build_stages, shorten
from antlm.data.lengths import parse_length_schedule
from antlm.data.tokens import BlockDataset, grouped_blocks
from antlm.models import build_model
from antlm.objectives import IGNORE, loss_sum
from antlm.train.loop import train
from antlm.train.setup import prepare_data
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731
SPECIAL = dict(zip(("pad", "bos", "eos", "mask", "unk"), range(len(tok_lib.SPECIAL_TOKENS))))  # antlm's fixed ids


def _cfg(corpus, **extra):
    base = {"data.seq_len": 16, "model.max_seq_len": 64, "schedule": "10st_clm+10st_mlm"}
    return build_config(None, tiny_overrides(corpus, **{**base, **extra}))


# --- length stages -------------------------------------------------------------------------------

def test_length_schedule_parses_and_starts_where_ltgbert_switches():
    stages = parse_length_schedule("256@0.7,512@0.9", 128)
    assert [(s.seq_len, s.fraction) for s in stages] == [(128, 0.0), (256, 0.7), (512, 0.9)]
    # LTG-BERT: global_step == int(max_steps * long_after) ends the 128-token part.
    assert parse_length_schedule("512@0.9", 128)[1].start(15625) == 14062


@pytest.mark.parametrize("override, message", [
    ("data.length_schedule=512", "not LEN@FRACTION"),
    ("data.length_schedule=40@0.9", "multiple of data.seq_len"),
    ("data.length_schedule=64@0.9,32@0.95", "must be longer"),
    ("data.length_schedule=32@0.9,64@0.5", "fractions must increase"),
    ("data.length_schedule=128@0.9", "longer than model.max_seq_len"),
    ("train.batch_size=6", "multiples of 4"),
    ("data.short_fraction=1.5", "data.short_fraction must be in"),
    ("data.block_offsets=shifted", "data.block_offsets must be fixed or random"),
])
def test_recipe_data_keys_are_validated(tmp_path, override, message):
    extra = {"data.length_schedule": "64@0.9"}
    key, value = override.split("=", 1)
    extra[key] = value
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, **extra)


def test_switch_step_batch_shape_and_order(text_corpus):
    cfg = _cfg(text_corpus, **{"data.length_schedule": "64@0.7"})
    data = prepare_data(cfg, None, QUIET)
    total = 20
    maker = BatchMaker(cfg, data.train, SPECIAL, 300, total, stages=build_stages(cfg, data.train, total, 1, 8),
                       training=True)
    assert maker.starts == [0, 14]
    shapes = [tuple(maker.make(maker.select(step), "clm", step, step).input_ids.shape) for step in range(total)]
    assert shapes == [(8, 16)] * 14 + [(2, 64)] * 6  # tokens per step kept: batch / 4 at 4x the length
    # The long stage reads its own seeded order from its first step.
    long = maker.stages[1].dataset
    assert np.array_equal(maker.select(14).positions, long.order(cfg.train.seed, 0)[:2])
    assert not np.array_equal(long.order(0, 0)[:8], data.train.order(0, 0)[:8])
    assert maker.tokens_before(total) == total * 8 * 16 and maker.tokens_before(15) == 15 * 128
    # A long block is four consecutive base blocks of the same stream.
    inputs, targets = long.blocks(np.array([0]))
    pieces = data.train.block_ids[:4]
    assert np.array_equal(pieces, long.block_ids[0] * 4 + np.arange(4))
    assert np.array_equal(targets[0], np.asarray(data.train.stream[pieces[0] * 16:pieces[0] * 16 + 64]))


def test_long_view_keeps_the_dev_split():
    train_ids = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 13])  # blocks 4 and 12 are dev
    assert grouped_blocks(train_ids, 4).tolist() == [0, 2]  # [4..7] and [12..15] hold a dev block
    assert grouped_blocks(train_ids, 1).tolist() == train_ids.tolist()


def test_length_stages_under_batch_warmup():
    """GPT-BERT: 256 tokens from 70% (batch /2), 512 from 90% (batch /4), each ramped in the step."""
    cfg = build_config(None, ["data.seq_len=128", "model.max_seq_len=512", "train.batch_size=64",
                              "train.batch_warmup=4", "data.length_schedule=256@0.7,512@0.9"])
    stream = np.arange(128 * 400, dtype=np.int64) % 250 + 5
    stages = build_stages(cfg, BlockDataset(stream, 128, 1), 100, 1, 64)
    assert [(s.start, s.batch_size, s.dataset.seq_len) for s in stages] == [(0, 64, 128), (70, 32, 256), (90, 16, 512)]
    assert np.array_equal(stages[1].sizes, batch_sizes(32, 4, 100, 1)[70:])
    maker = BatchMaker(cfg, stages[0].dataset, SPECIAL, 300, 100, stages=stages, training=True)
    assert [len(maker.select(step)) for step in (69, 70, 89, 90)] == [
        batch_sizes(64, 4, 100, 1)[69], stages[1].sizes[0], stages[1].sizes[19], stages[2].sizes[0]]


# --- short rows ----------------------------------------------------------------------------------

def test_short_rows_follow_the_reference_law():
    rows, length = 40_000, 32
    inputs = np.full((rows, length), 7)
    inputs[:, 0] = 1
    targets = np.full((rows, length), 8)
    out, out_targets, real, count = shorten(inputs, targets, 0.1, np.random.default_rng(0), pad_id=0)
    kept = real.sum(axis=1)
    short = kept < length
    # 10% of rows within sampling error (sd 0.0015 at 40k rows).
    assert abs(short.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / rows)
    # A short row keeps <s> and 1..T-3 tokens, each length about equally often.
    tokens = kept[short] - 1
    assert tokens.min() == 1 and tokens.max() == length - 3
    counts = np.bincount(tokens, minlength=length - 2)[1:]
    assert counts.min() > 0.6 * counts.mean()
    assert (out[~real] == 0).all() and (out[real] == inputs[real]).all()
    assert (out_targets[~real] == IGNORE).all() and count == int(real.sum())


def _tiny_ltgbert(tmp_path):
    cfg = build_config(None, tiny_overrides(tmp_path, **{"model.backbone": "ltgbert"}))
    cfg.model.vocab_size = 300
    torch.manual_seed(0)
    return cfg, build_model(cfg.model).eval()


def test_padding_is_out_of_attention_masking_and_loss(tmp_path):
    cfg, model = _tiny_ltgbert(tmp_path)
    cfg.data.short_fraction = 0.5
    stream = np.random.default_rng(0).integers(5, 300, 32 * 64)
    dataset = BlockDataset(stream, 32, 1)
    maker = BatchMaker(cfg, dataset, SPECIAL, 300, 10, training=True)
    positions = np.arange(16)
    clm, mlm = maker.make(positions, "clm", 5, 3), maker.make(positions, "mlm", 5, 3)
    real = clm.attention_mask
    assert real is not None and not real.all() and torch.equal(real, mlm.attention_mask)
    assert not (mlm.target_mask & ~real).any()  # padding is never a masked target
    assert clm.num_targets == int((clm.targets != IGNORE).sum()) == int(real.sum())
    with torch.no_grad():
        for batch in (clm, mlm):
            loss = loss_sum(model, batch)
            # The padding's tokens change nothing: attention skips them, no target is there.
            scrambled = batch.input_ids.masked_fill(~real, 77)
            batch_b = type(batch)(**{**batch.__dict__, "input_ids": scrambled})
            assert torch.allclose(loss, loss_sum(model, batch_b), atol=1e-5, rtol=0)
        # A short row scores as the same row cut to its length.
        row = int((~real.all(dim=1)).nonzero()[0])
        n = int(real[row].sum())
        alone = model(clm.input_ids[row:row + 1, :n], causal=True, targets=clm.targets[row:row + 1, :n])
        padded = model(clm.input_ids[row:row + 1], causal=True, attention_mask=real[row:row + 1],
                       targets=clm.targets[row:row + 1])
        assert torch.allclose(alone, padded, atol=1e-4, rtol=1e-6)


def test_dev_batches_are_never_shortened(tmp_path):
    cfg, _ = _tiny_ltgbert(tmp_path)
    cfg.data.short_fraction = 1.0
    dataset = BlockDataset(np.arange(5, 5 + 32 * 8), 32, 1)
    assert BatchMaker(cfg, dataset, SPECIAL, 300, 10).make(np.arange(4), "mlm", 0, 0).attention_mask is None


# --- random offsets ------------------------------------------------------------------------------

def test_random_offsets_per_epoch_and_seed():
    stream = np.arange(16 * 50)
    ids = np.array([i for i in range(50) if i % 10 != 9])  # blocks 9, 19, ... are dev
    dataset = BlockDataset(stream, 16, bos_id=1, block_ids=ids, random_offsets=True)
    a, b, c = dataset.offsets(0, 0), dataset.offsets(0, 1), dataset.offsets(1, 0)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(a, BlockDataset(stream, 16, 1, ids, random_offsets=True).offsets(0, 0))  # reproducible
    assert a.min() >= 0 and a.max() < 16 and len(np.unique(np.concatenate([a, b, c]))) > 10
    # A block followed by a dev block (or the stream's end) stays put: no dev token is read.
    last_before_dev = np.isin(ids + 1, ids) == False  # noqa: E712
    assert (a[last_before_dev] == 0).all() and (a[~last_before_dev] > 0).any()
    positions = np.arange(len(ids))
    _, targets = dataset.blocks(positions, np.zeros(len(ids), dtype=int), seed=0)
    assert np.array_equal(targets[:, 0], ids * 16 + a) and (np.diff(targets, axis=1) == 1).all()
    dev_tokens = set(np.concatenate([np.arange(i * 16, i * 16 + 16) for i in range(50) if i not in set(ids)]))
    assert not dev_tokens & set(targets.ravel().tolist())
    # Fixed offsets: the old blocks, whatever the epoch.
    fixed = BlockDataset(stream, 16, 1, ids)
    assert np.array_equal(fixed.blocks(positions, np.ones(len(ids), dtype=int))[1][:, 0], ids * 16)


def test_random_offsets_in_a_run_differ_across_epochs(text_corpus):
    cfg = _cfg(text_corpus, **{"data.block_offsets": "random"})
    data = prepare_data(cfg, None, QUIET)
    assert data.train.random_offsets and not data.dev.random_offsets
    maker = BatchMaker(cfg, data.train, SPECIAL, 300, 100, training=True)
    spe = maker.stages[0].steps_per_epoch
    first, again = maker.make(maker.select(0), "clm", 0, 0), maker.make(maker.select(0), "clm", 0, 0)
    assert torch.equal(first.input_ids, again.input_ids)
    # The same block in the next epoch starts elsewhere.
    block = int(maker.select(0).positions[0])
    epoch1 = data.train.order(cfg.train.seed, 1)
    step = int(np.flatnonzero(epoch1 == block)[0]) // 8
    later = maker.make(maker.select(spe + step), "clm", 0, spe + step)
    row = int(np.flatnonzero(maker.select(spe + step).positions == block)[0])
    assert not torch.equal(first.targets[0], later.targets[row])


# --- runs ----------------------------------------------------------------------------------------

RECIPE = {"data.length_schedule": "64@0.7", "data.short_fraction": 0.2, "data.block_offsets": "random",
          "model.dropout": 0.1, "model.backbone": "ltgbert", "train.checkpoint_every": 50}


def _train(corpus, out, resume=False, **extra):
    return train(_cfg(corpus, **{**RECIPE, **extra}), out, resume=resume, log=QUIET)


def test_resume_across_the_length_switch_is_bitwise_equal(text_corpus, tmp_path):
    whole = _train(text_corpus, tmp_path / "whole")
    assert whole["finished"] and whole["steps"] == 20
    # Stopped before the switch (step 14), at it (the next step is the first long one), after it.
    _train(text_corpus, tmp_path / "split", **{"train.max_steps": 12})
    for stop in (14, 17, None):
        _train(text_corpus, tmp_path / "split", resume=True, **({"train.max_steps": stop} if stop else {}))
    a, b = (load_file(str(tmp_path / run / "final" / "model.safetensors")) for run in ("whole", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    tokens = {r["step"]: r["tokens"] for r in rows if r["split"] == "train"}
    assert tokens[20] == 20 * 8 * 16  # every step, before and after the switch, reads 128 block tokens


def test_saved_config_without_the_keys_keeps_fixed_blocks(tmp_path):
    saved = to_dict(build_config(None, tiny_overrides(tmp_path)))
    for key in ("length_schedule", "short_fraction", "block_offsets"):
        saved["data"].pop(key)
    cfg = from_dict(saved, saved=True)
    assert (cfg.data.length_schedule, cfg.data.short_fraction, cfg.data.block_offsets) == (None, 0.0, "fixed")


def test_reference_presets_switch_the_data_recipe_on():
    ltg = build_config("ltgbert-small", ["data.corpus=x"])
    assert (ltg.data.length_schedule, ltg.data.short_fraction, ltg.model.max_seq_len) == ("512@0.9", 0.1, 512)
    assert build_config("ltgbert-base", ["data.corpus=x"]).data.length_schedule == "512@0.9"
    assert build_config("babyllama-58m", ["data.corpus=x"]).data.block_offsets == "random"
    gpt = build_config("gptbert-small", ["data.corpus=x"])
    assert (gpt.data.length_schedule, gpt.model.max_seq_len) == ("256@0.7,512@0.9", 512)
    # The AntLM presets keep the blocks their earlier results were trained on.
    for name in ("ltgbert-mlm-72", "ltgbert-antlm-6-60-6-cpu", "babyllama-clm-24", "babyllama-antlm-4-16-4-cpu"):
        data = build_config(name, ["data.corpus=x"]).data
        assert (data.length_schedule, data.short_fraction, data.block_offsets) == (None, 0.0, "fixed"), name


def test_stream_on_device_gives_the_same_batches(text_corpus):
    """data.store_on_device: the stream as a tensor (on CPU here) builds the same batches."""
    cfg = _cfg(text_corpus, **{"data.length_schedule": "64@0.5", "data.short_fraction": 0.3,
                               "data.block_offsets": "random", "model.backbone": "ltgbert"})
    data = prepare_data(cfg, None, QUIET)
    special = tok_lib.special_ids(data.tokenizer)
    host = BatchMaker(cfg, data.train, special, 300, 20, stages=build_stages(cfg, data.train, 20, 1, 8), training=True)
    data.train.stream = torch.from_numpy(np.asarray(data.train.stream, dtype=np.int32))
    device = BatchMaker(cfg, data.train, special, 300, 20, stages=build_stages(cfg, data.train, 20, 1, 8), training=True)
    for step in (3, 12):
        for objective in ("clm", "mlm"):
            a = host.make(host.select(step), objective, step, step)
            b = device.make(device.select(step), objective, step, step)
            assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.targets, b.targets)
            assert a.num_targets == b.num_targets and (a.attention_mask is None) == (b.attention_mask is None)
            assert a.attention_mask is None or torch.equal(a.attention_mask, b.attention_mask)


def test_a_stage_that_does_not_split_is_one_clear_error():
    from antlm.errors import UserError

    cfg = build_config(None, ["data.seq_len=16", "model.max_seq_len=64", "train.batch_size=8",
                              "data.length_schedule=64@0.5"])
    with pytest.raises(UserError, match="becomes 2, which must split evenly over 3 rank"):
        build_stages(cfg, BlockDataset(np.arange(16 * 40), 16, 1), 10, 3, 8)
    with pytest.raises(UserError, match="fewer than one batch"):
        build_stages(cfg, BlockDataset(np.arange(16 * 6), 16, 1), 10, 1, 8)
