"""The 2025 zero-shot benchmark (benchmarks/zeroshot2025.py) runs end to end in --quick mode for each
backend, and antlm's `--compat babylm2025` scores equal the 2025 method's in plain transformers."""
import importlib.util
import os
import re
import sys

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers")

from conftest import REPO, SHARED_DATA  # noqa: E402

TINY = ["--quick", "--hidden", "32", "--layers", "2", "--heads", "4", "--ffn", "64", "--max-seq-len", "64",
        "--vocab", "1500", "--tokenizer-chars", "200000"]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("zeroshot2025", REPO / "benchmarks" / "zeroshot2025.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend,task", [("causal", "blimp"), ("mlm", "blimp"), ("mntp", "blimp"),
                                          ("mlm", "ewok"), ("causal", "entity_tracking")])
def test_quick_benchmark_prints_result_and_scores_agree(backend, task, capsys):
    """ewok and entity tracking score a completion after a context (and entity tracking's inputs run
    past the tiny model's 64-token window); without the shared data the benchmark uses synthetic pairs."""
    bench = _load_benchmark()
    status = bench.main(TINY + ["--backend", backend, "--task", task])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert re.fullmatch(r"RESULT zeroshot2025 antlm=[0-9.]+ baseline=[0-9.]+ ratio=[0-9.]+", lines[-1]), out
    diff = re.search(r"max \|antlm - 2025 method\| score difference: (\S+)", out)
    assert diff, out
    assert float(diff.group(1)) < 1e-4, out
    assert re.search(rf"antlm score_items \(babylm2025\)\s+{bench.QUICK_SENTENCES}\s", out), out
    assert status == 0, out


def test_wrong_backbone_is_one_line(tmp_path, capsys):
    """A model the backend is not benchmarked on is refused with one line, not a traceback."""
    bench = _load_benchmark()
    args = bench.parse_args(TINY)
    from antlm.data.tokenizer import train_tokenizer
    tokenizer = train_tokenizer(bench.synthetic_sentences(200) * 2, vocab_size=300)
    final = bench.build_random_model(tmp_path, tokenizer, "mlm", args)
    status = bench.main(TINY + ["--backend", "causal", "--model", str(final)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: --backend causal is benchmarked on a babyllama"), err


@pytest.mark.skipif(not (SHARED_DATA / "babylm_2025_eval" / "fast_eval").is_dir(),
                    reason=f"the 2025 fast sets are not under {SHARED_DATA}")
def test_suite_mode_covers_every_fast_task_with_identical_decisions(capsys):
    """--suite fast: every fast task, causal (with and without the KV cache) and mntp, one line each,
    a total per backend, and the RESULT line; exit 0 means scores within 1e-4 and the cached
    decisions identical to whole-input scoring."""
    bench = _load_benchmark()
    status = bench.main(TINY[1:] + ["--suite", "fast", "--suite-items", "1"])
    out = capsys.readouterr().out
    for task in bench.SUITE_TASKS:
        assert re.search(rf"^causal\s+{task}\s", out, re.M) and re.search(rf"^mntp\s+{task}\s", out, re.M), (task, out)
    assert re.fullmatch(r"RESULT zeroshot2025-suite causal=[0-9.]+ entity_tracking_causal=[0-9.]+ mntp=[0-9.]+",
                        out.strip().splitlines()[-1]), out
    assert status == 0, out
