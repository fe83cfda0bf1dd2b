"""BabyLM tracks: limits refused before training, the word-checkpoint series (exact across a stop
and resume), its git export with one loadable revision per milestone, and the 10-epoch presets."""
import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from antlm import tracks
from antlm.config import ConfigError, build_config
from antlm.schedule import Schedule
from antlm.train.loop import train
from conftest import tiny_overrides

QUIET = lambda message: None  # noqa: E731
# text_corpus: 9,846 words, 90 steps per epoch at batch 8 x 32 (109.4 words a step), 25 steps in all.
MARKS = "1k,2k,2.5k,2735,5k"


def _run(corpus, out, resume=False, log=QUIET, **extra):
    return train(build_config(None, tiny_overrides(corpus, **extra)), out, resume=resume, log=log)


def test_track_table_and_milestone_language():
    assert tracks.TRACKS["strict-small-2025"].words_seen == 100_000_000
    assert tracks.TRACKS["strict-2026"] == tracks.Track("strict-2026", 100_000_000, 1_000_000_000, True)
    assert tracks.TRACKS["strict-small-2024"].words_seen is None
    small = tracks.parse_milestones(None, tracks.TRACKS["strict-small-2025"])
    assert [tracks.milestone_name(m) for m in small][:3] == ["chck_1M", "chck_2M", "chck_3M"]
    assert len(small) == 19 and small[-1] == 100_000_000 and small[10] == 20_000_000
    strict = tracks.parse_milestones("babylm", tracks.TRACKS["strict-2025"])
    assert len(strict) == 28 and tracks.milestone_name(strict[-1]) == "chck_1000M"
    assert tracks.parse_milestones(None, None) == [] == tracks.parse_milestones(None, tracks.TRACKS["strict-small-2024"])
    assert tracks.parse_milestones("5M, 1M,1.5k,2B", None) == [1500, 1_000_000, 5_000_000, 2_000_000_000]
    with pytest.raises(ConfigError, match="bad milestone '5X'"):
        build_config(None, ["train.word_checkpoints=1M,5X"])
    with pytest.raises(ConfigError, match="unknown data.track 'strict-small-2023'"):
        build_config(None, ["data.track=strict-small-2023"])


def test_words_seen_over_the_track_is_refused_before_training(text_corpus, tmp_path):
    out = tmp_path / "run"
    # 90 steps an epoch: 1M steps would be ~11,000 epochs, 109M words; 100M is the cap.
    with pytest.raises(tracks.TrackError, match=r"would see 109,400,000 words .* over track strict-small-2025's "
                                               r"limit of 100,000,000 words seen"):
        _run(text_corpus, out, schedule="1000000st_clm", **{"data.track": "strict-small-2025"})
    assert not out.exists()
    # Under the cap (and under the 2024 rules, which have none) the same corpus trains.
    _run(text_corpus, tmp_path / "ok", **{"data.track": "strict-small-2024", "train.max_steps": 2})


def test_corpus_over_the_track_is_refused(text_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(tracks.TRACKS, "strict-small-2025", tracks.Track("strict-small-2025", 5_000, 50_000, True))
    with pytest.raises(tracks.TrackError, match="has 9,846 training words, over track strict-small-2025's limit of 5,000"):
        _run(text_corpus, tmp_path / "run", **{"data.track": "strict-small-2025"})
    assert not (tmp_path / "run").exists()


def _series(run):
    return {name: entry["step"] for name, entry in json.loads((run / "word_checkpoints" / "series.json").read_text())["written"]}


def test_custom_milestones_one_checkpoint_each_at_the_crossing_step(text_corpus, tmp_path):
    out, messages = tmp_path / "run", []
    _run(text_corpus, out, log=messages.append, **{"train.word_checkpoints": MARKS})
    # Step s has seen floor(s * 9846 / 90) words: 1k is first reached at step 10 (1,094), 2k at 19,
    # 2,500 at 23, 2,735 exactly at the last step 25; 5k is beyond the run.
    assert _series(out) == {"chck_1k": 10, "chck_2k": 19, "chck_2500": 23, "chck_2735": 25}
    assert sorted(p.name for p in (out / "word_checkpoints").iterdir()) == [
        "chck_1k", "chck_2500", "chck_2735", "chck_2k", "series.json"]
    assert any("chck_5k not written: beyond the run's 2,735 words seen" in m for m in messages)
    meta = json.loads((out / "word_checkpoints" / "chck_2735" / "config.json").read_text())
    assert (meta["step"], meta["words_seen"], meta["words"]) == (25, 2735, 2735)
    # The last milestone is the final model; final/config.json records the track and words seen.
    assert load_file(str(out / "word_checkpoints" / "chck_2735" / "model.safetensors")).keys() == \
        load_file(str(out / "final" / "model.safetensors")).keys()
    final = json.loads((out / "final" / "config.json").read_text())
    assert (final["track"], final["words_seen"]) == ("none", 2735)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["words_seen"] for r in rows if r["split"] == "train"] == [547, 1094, 1641, 2188, 2735]


def test_series_survives_a_stop_and_resume_bitwise(text_corpus, tmp_path):
    extra = {"train.word_checkpoints": MARKS, "model.dropout": 0.1}
    _run(text_corpus, tmp_path / "whole", **extra)
    # Stopped at step 21 (its last checkpoint is step 21, after chck_2k); a stale milestone written
    # after that checkpoint, as a kill would leave it, must be dropped and written again.
    _run(text_corpus, tmp_path / "split", **extra, **{"train.max_steps": 21, "train.checkpoint_every": 20})
    assert _series(tmp_path / "split") == {"chck_1k": 10, "chck_2k": 19}
    (tmp_path / "split" / "word_checkpoints" / "chck_2500").mkdir()
    _run(text_corpus, tmp_path / "split", resume=True, **extra, **{"train.checkpoint_every": 20})
    assert _series(tmp_path / "split") == _series(tmp_path / "whole")
    for name in _series(tmp_path / "whole"):
        a, b = (tmp_path / run / "word_checkpoints" / name / "model.safetensors" for run in ("whole", "split"))
        assert a.read_bytes() == b.read_bytes(), name


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert"])
def test_series_export_loads_every_revision(text_corpus, tmp_path, backbone):
    transformers = pytest.importorskip("transformers")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from antlm.export.series import export_series

    run = tmp_path / "run"
    _run(text_corpus, run, **{"model.backbone": backbone, "train.word_checkpoints": "1k,2k"})
    repo, branches = export_series(run, tmp_path / "hf")
    assert branches == ["main", "chck_1k", "chck_2k"]
    listed = subprocess.run(["git", "-C", str(repo), "branch", "--format=%(refname:short)"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listed) == sorted(branches)
    loader = (transformers.LlamaForCausalLM.from_pretrained if backbone == "babyllama" else
              lambda d: transformers.AutoModelForMaskedLM.from_pretrained(d, trust_remote_code=True))
    sources = {"main": run / "final", "chck_1k": run / "word_checkpoints" / "chck_1k",
               "chck_2k": run / "word_checkpoints" / "chck_2k"}
    embeddings = {}
    for branch in branches:
        subprocess.run(["git", "-C", str(repo), "checkout", "-q", branch], check=True)
        model = loader(str(repo))
        embedding = model.get_input_embeddings().weight.detach()
        antlm_weights = load_file(str(sources[branch] / "model.safetensors"))
        key = "embed_tokens.weight" if backbone == "babyllama" else "head.decoder.weight"  # tied
        assert torch.equal(embedding, antlm_weights[key]), branch
        embeddings[branch] = embedding
    assert not torch.equal(embeddings["chck_1k"], embeddings["main"])  # the revisions differ


def test_ten_epoch_presets_fit_the_track():
    corpus = ["data.corpus=/corpora/babylm_10M"]
    for name in ("babyllama-antlm-10ep", "babyllama-antlm-2-6-2", "babyllama-clm-10ep", "ltgbert-antlm-10ep",
                 "ltgbert-antlm-1-8-1", "ltgbert-mlm-10ep"):
        cfg = build_config(name, corpus)
        assert cfg.data.track == "strict-small-2025" and cfg.train.word_checkpoints == "babylm", name
        for steps_per_epoch in (1, 7, 97, 610, 1003, 2441):
            schedule = Schedule(cfg.schedule, steps_per_epoch, 1)
            lengths = [p.end - p.start for p in schedule.phases]
            # Phases follow each other; their rounded running total ends at exactly 10 epochs of steps,
            # so the run reaches chck_100M and stays within the 100M cap on a 10M-word corpus.
            assert sum(lengths) == schedule.total_steps and schedule.phases[0].start == 0
            assert all(a.end == b.start for a, b in zip(schedule.phases, schedule.phases[1:]))
            assert schedule.total_steps == 10 * steps_per_epoch, (name, steps_per_epoch)
