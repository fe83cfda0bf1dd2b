"""Runs saved before defaults version 2 keep their behaviour: keys their configs lack take the
values antlm used then (config.LEGACY_V1), not today's reference defaults."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from antlm.config import LEGACY_V1, ConfigError, build_config, dump_yaml, from_dict, to_dict, upgrade_saved
from antlm.data.tokenizer import train_tokenizer
from antlm.errors import RunError
from antlm.model_io import load_model, save_final
from antlm.models import build_model
from antlm.train.setup import prepare_out_dir
from conftest import WORDS, tiny_overrides

NEW_MODEL_KEYS = tuple(LEGACY_V1["model"])


def _as_version_1(data: dict) -> dict:
    """What antlm wrote before version 2: no defaults_version and none of the new keys."""
    data = json.loads(json.dumps(data))
    data.pop("defaults_version", None)
    for section, keys in LEGACY_V1.items():
        for key in keys:
            data[section].pop(key, None)
    return data


def test_upgrade_fills_old_values_and_keeps_explicit_ones():
    saved = _as_version_1(to_dict(build_config(None, ["model.backbone=ltgbert"])))
    saved["model"]["norm_eps"] = 1e-5  # version 1 always wrote it
    cfg = from_dict(saved, saved=True)
    assert (cfg.model.position_max, cfg.model.gelu, cfg.model.ffn_mid_dropout, cfg.model.residual_init) == (0, "exact", True, "legacy")
    assert (cfg.mlm.span_masking, cfg.mlm.replace_unit) == ("legacy", "token")
    assert (cfg.optim.no_decay, cfg.optim.lamb_trust_ratio) == ("ndim", "all")
    assert cfg.model.norm_eps == 1e-5 and cfg.defaults_version == 2
    # A version-2 config is taken as written; today's defaults apply to a fresh config.
    fresh = build_config(None, ["model.backbone=ltgbert"])
    assert from_dict(to_dict(fresh), saved=True) == fresh
    assert (fresh.model.position_max, fresh.model.gelu, fresh.model.norm_eps) == (512, "tanh", 1e-7)
    with pytest.raises(ConfigError, match="defaults_version"):
        upgrade_saved({"defaults_version": 9})


def test_a_saved_config_without_schedule_rounding_keeps_per_phase_rounding():
    saved = to_dict(build_config(None, ["schedule=1.67_clm+6.66_mlm+1.67_clm"]))
    assert saved["schedule_rounding"] == "cumulative"  # today's default, written out
    assert from_dict(saved, saved=True).schedule_rounding == "cumulative"
    del saved["schedule_rounding"]  # what antlm wrote before the key existed
    assert from_dict(saved, saved=True).schedule_rounding == "per_phase"
    with pytest.raises(ConfigError, match="schedule_rounding"):
        build_config(None, ["schedule_rounding=nearest"])


def test_final_dir_without_new_keys_loads_with_old_numerics(tmp_path):
    tokenizer = train_tokenizer([" ".join(WORDS)] * 50, vocab_size=300)
    cfg = build_config(None, tiny_overrides(tmp_path, **{"model.backbone": "ltgbert", "model.position_buckets": 8}))
    cfg.model.vocab_size = tokenizer.get_vocab_size()
    # The weights of an old run, built under the old rules.
    legacy = dict(LEGACY_V1["model"], norm_eps=1e-5)
    for key, value in legacy.items():
        setattr(cfg.model, key, value)
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    save_final(tmp_path / "final", model, cfg, tokenizer)
    meta_path = tmp_path / "final" / "config.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("defaults_version")
    for key in NEW_MODEL_KEYS:
        meta["model"].pop(key)
    meta_path.write_text(json.dumps(meta))

    loaded, _ = load_model(tmp_path)
    for key, value in legacy.items():
        assert getattr(loaded.cfg, key) == value, key
    ids = torch.randint(5, tokenizer.get_vocab_size(), (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(ids, causal=False), model(ids, causal=False))
        # With today's defaults the same weights compute something else (buckets reach 511, tanh GELU).
        today = build_model(type(cfg.model)(**{**to_dict(cfg)["model"], "position_max": 512, "gelu": "tanh"})).eval()
        today.load_state_dict(model.state_dict())
        assert not torch.allclose(today(ids, causal=False), model(ids, causal=False), atol=1e-4)


def test_resuming_an_old_run_keeps_its_old_values(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    cfg = build_config(None, tiny_overrides(tmp_path, **{"model.backbone": "ltgbert"}))
    old = _as_version_1(to_dict(cfg))
    old["model"]["norm_eps"] = 1e-5
    (out / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    # Resumed with its own config.yaml: the keys it lacks are not compared, and come back old.
    requested = build_config(out / "config.yaml", [])
    resumed = prepare_out_dir(out, requested, resume=True, force=False)
    assert (resumed.model.gelu, resumed.mlm.span_masking, resumed.optim.lamb_trust_ratio) == ("exact", "legacy", "all")
    assert "defaults_version: 2" in dump_yaml(resumed)


def test_resuming_a_run_saved_before_schedule_rounding_keeps_per_phase(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    cfg = build_config(None, tiny_overrides(tmp_path, schedule="1.67_clm+6.66_mlm+1.67_clm"))
    saved = to_dict(cfg)
    del saved["schedule_rounding"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    # The study's runner resumes with a config built afresh (today's default): not a difference.
    assert prepare_out_dir(out, cfg, resume=True, force=False).schedule_rounding == "per_phase"
    # A run that saved the key is held to it.
    (out / "config.yaml").write_text(dump_yaml(cfg))
    with pytest.raises(RunError, match="schedule_rounding"):
        prepare_out_dir(out, build_config(None, tiny_overrides(tmp_path, schedule_rounding="per_phase",
                                                                schedule="1.67_clm+6.66_mlm+1.67_clm")),
                        resume=True, force=False)
