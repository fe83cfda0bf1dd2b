"""`antlm demo` (the README's first command) end to end, shrunk: both runs train, both scorings
print, the table holds every phenomenon."""
from antlm.cli import main
from antlm.data.synthetic import RIGHT_CONTEXT_PHENOMENA


def test_demo_runs_end_to_end_small(tmp_path, capsys):
    overrides = ["data.embedded_sentences=800", "data.vocab_size=300", "data.seq_len=32", "model.max_seq_len=96",
                 "model.hidden_size=32", "model.num_layers=2", "model.num_heads=4", "model.ffn_size=64",
                 "train.batch_size=16", "train.threads=1"]
    args = ["demo", "--out", str(tmp_path / "demo")] + [a for o in overrides for a in ("--set", o)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| **mean** |" in table and "antlm (PLL)" in table and "clm-baseline" in table
    assert all(name in table for name in RIGHT_CONTEXT_PHENOMENA)
    assert (tmp_path / "demo" / "demo_results.json").is_file()
