from pathlib import Path

import pytest

from antlm.config import PRESET_DIR, ConfigError, build_config, dump_yaml, from_dict, load_yaml
from antlm.schedule import ScheduleError

PRESETS = sorted(PRESET_DIR.glob("*.yaml"))
CORPUS = ["data.corpus=/corpora/babylm_10M", "distill.teachers=[/runs/a,/runs/b]"]  # presets name no corpus or teachers


def _needed(path) -> list[str]:
    """What a preset leaves to the user: the corpus, and the teachers of a distillation preset (the
    others may use z_loss or short rows, which distillation refuses)."""
    teachers = (load_yaml(path).get("distill") or {}).get("teachers", [])
    return CORPUS if teachers is None else CORPUS[:1]


def test_distillation_refuses_z_loss_and_short_rows_when_the_config_is_built():
    for key in ("train.z_loss=1e-4", "data.short_fraction=0.1"):
        with pytest.raises(ConfigError, match="not implemented with distillation"):
            build_config("tiny", ["distill.teachers=[/runs/a]", key])


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    for required in ("tiny", "babyllama-clm-24", "babyllama-antlm-4-16-4", "ltgbert-mlm-72", "ltgbert-antlm-6-60-6"):
        assert required in names
        assert f"{required}-cpu" in names or required == "tiny"


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_parses_and_roundtrips(path):
    cfg = build_config(path, _needed(path))
    assert from_dict(load_yaml(path)) is not None
    import yaml

    assert from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg


def test_paper_presets_match_the_paper():
    llama = build_config("babyllama-antlm-4-16-4", CORPUS)
    assert (llama.model.hidden_size, llama.model.num_layers, llama.model.num_heads, llama.model.ffn_size) == (512, 16, 8, 1024)
    assert (llama.data.vocab_size, llama.data.seq_len, llama.schedule) == (16000, 128, "4_clm+16_mlm+4_clm")
    assert build_config("babyllama-clm-24", CORPUS).schedule == "24_clm"
    bert = build_config("ltgbert-antlm-6-60-6", CORPUS)
    assert bert.model.backbone == "ltgbert" and bert.schedule == "6_clm+60_mlm+6_clm"
    assert build_config("ltgbert-mlm-72", CORPUS).schedule == "72_mlm"


def test_overrides_are_typed():
    cfg = build_config(None, ["optim.lr=1e-3", "model.num_layers=3", "train.compile=true", "data.word_budget=null"])
    assert cfg.optim.lr == 1e-3 and cfg.model.num_layers == 3 and cfg.train.compile is True
    assert cfg.data.word_budget is None
    assert build_config(None, ["schedule=24_clm", "data.corpus=2024"]).data.corpus == "2024"


@pytest.mark.parametrize("override, fragment", [
    ("model.hidden=3", "unknown config key 'model.hidden'"),
    ("nope=1", "unknown config key 'nope'"),
    ("model.num_layers=two", "expects int"),
    ("optim.lr=fast", "expects float"),
    ("optim.lr=-1", "optim.lr"),
    ("train.compile=3", "expects bool"),
    ("model.backbone=gpt", "model.backbone"),
    ("data.seq_len=4096", "longer than model.max_seq_len"),
    ("mlm.target_offset=2", "target_offset"),
    ("train.micro_batch_size=5", "must divide"),
])
def test_bad_values_are_named(override, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        build_config(None, [override])
    assert fragment in str(info.value)


def test_bad_schedule_names_the_part():
    with pytest.raises(ScheduleError, match="4_xlm"):
        build_config(None, ["schedule=4_clm+4_xlm"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        build_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        build_config(scalar)


def test_real_data_preset_without_corpus_says_how_to_pass_one(monkeypatch):
    monkeypatch.delenv("ANTLM_CORPUS", raising=False)
    with pytest.raises(ConfigError, match=r"pass --set data.corpus=DIR \(or set \$ANTLM_CORPUS\)"):
        build_config("babyllama-antlm-4-16-4")
    monkeypatch.setenv("ANTLM_CORPUS", "/corpora/from-env")
    assert build_config("babyllama-antlm-4-16-4").data.corpus == "/corpora/from-env"
    assert build_config("babyllama-antlm-4-16-4", ["data.corpus=/given"]).data.corpus == "/given"


def test_presets_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert build_config("tiny").data.corpus == "embedded"
    with pytest.raises(ConfigError, match="presets: .*tiny"):
        build_config("tinyy")


def test_presets_build_on_reference_recipes():
    """The AntLM presets inherit the reference recipes (`base:`), changing only what they name."""
    small, cpu = build_config("ltgbert-small", ["data.corpus=x"]), build_config("ltgbert-mlm-72-cpu", ["data.corpus=x"])
    assert (small.optim.lr, small.optim.grad_clip, small.optim.warmup_fraction, small.model.position_max) == (1e-2, 2.0, 0.016, 512)
    assert cpu.optim.grad_clip == 2.0 and cpu.model.hidden_size == 128 and cpu.model.norm_eps == 1e-7
    base = build_config("ltgbert-base", ["data.corpus=x"])
    assert (base.model.hidden_size, base.model.num_heads, base.model.ffn_size, base.data.vocab_size) == (768, 12, 2048, 16384)
    llama = build_config("babyllama-58m", ["data.corpus=x"])
    assert (llama.optim.lr, llama.optim.beta2, llama.optim.warmup_steps, llama.optim.min_lr_ratio) == (2.5e-4, 0.999, 200, 0.0)
    assert llama.model.norm_eps == 1e-6 and llama.model.residual_init == "reference"
    for name in ("ltgbert-small", "babyllama-58m"):
        head = (PRESET_DIR / f"{name}.yaml").read_text().split("\n\n")[0]
        assert "NOT IMPLEMENTED" in head and "differs" in head


def test_bad_base_is_a_config_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("base: [a, b]\n")
    with pytest.raises(ConfigError, match="'base' must name"):
        build_config(path)


@pytest.mark.parametrize("override, message", [
    ("model.gelu=erf", "model.gelu must be tanh or exact"),
    ("model.residual_init=gpt2", "model.residual_init must be reference or legacy"),
    ("mlm.span_masking=t5", "mlm.span_masking must be reference or legacy"),
    ("mlm.replace_unit=word", "mlm.replace_unit must be span or token"),
    ("optim.lamb_trust_ratio=none", "optim.lamb_trust_ratio must be decay_groups or all"),
    ("model.position_max=-1", "model.position_max must be >= 0"),
    ("model.norm_eps=0", "model.norm_eps must be positive"),
    ("defaults_version=1", "defaults_version must be 2"),
])
def test_recipe_keys_are_validated(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, [override])


def test_backbone_defaults_are_resolved_into_the_saved_config():
    assert build_config(None, ["model.backbone=ltgbert"]).model.norm_eps == 1e-7
    assert "norm_eps: 1.0e-06" in dump_yaml(build_config(None, ["model.backbone=babyllama"]))


def test_distill_preset_asks_for_teachers():
    with pytest.raises(ConfigError, match=r"pass --set distill.teachers=\[RUN_A,RUN_B\]"):
        build_config("babyllama-58m-distill", ["data.corpus=/c"])
    cfg = build_config("babyllama-58m-distill", ["data.corpus=/c", "distill.teachers=[/t/a,/t/b]"])
    assert cfg.distill.teachers == ["/t/a", "/t/b"] and (cfg.distill.alpha, cfg.distill.temperature) == (0.5, 2.0)
    assert cfg.distill.scale == "reference" and cfg.model.hidden_size == 512
