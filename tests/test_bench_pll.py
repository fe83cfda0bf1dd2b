"""The PLL speed benchmark (benchmarks/pll_vs_minicons.py) runs end to end in --quick mode and its
antlm and minicons scores agree."""
import importlib.util
import os
import re

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers")
pytest.importorskip("minicons")

from conftest import REPO  # noqa: E402

TINY = ["--quick", "--hidden", "32", "--layers", "2", "--heads", "4", "--ffn", "64", "--max-seq-len", "64",
        "--vocab", "1500", "--tokenizer-chars", "200000"]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("pll_vs_minicons", REPO / "benchmarks" / "pll_vs_minicons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_prints_result_and_scores_agree(capsys):
    bench = _load_benchmark()
    status = bench.main(TINY)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert re.fullmatch(r"RESULT pll_vs_minicons antlm=[0-9.]+ baseline=[0-9.]+ ratio=[0-9.]+", lines[-1]), out
    diff = re.search(r"max \|antlm - minicons\| score difference: (\S+)", out)
    assert diff, out
    assert float(diff.group(1)) < 1e-4, out
    assert re.search(rf"antlm pll_scores\s+{bench.QUICK_SENTENCES}\s", out), out
    assert status == 0, out
