"""The CPU replication recipe runs end to end on tiny models (its --smoke mode)."""
import importlib.util
import json
import shutil
import sys

import pytest

from conftest import REPO, SHARED_DATA


@pytest.mark.skipif(not (SHARED_DATA / "blimp_filtered").is_dir(), reason="shared data not found at ../shared/data")
def test_cpu_replication_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("cpu_replication", REPO / "experiments" / "cpu_replication" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--seeds", "0,1", "--out", str(tmp_path), "--set", "train.threads=1"]) == 0
    for backbone in ("babyllama", "ltgbert"):
        report = (tmp_path / "main" / f"report-{backbone}" / "report.md").read_text()
        assert "±" in report and "p" in report
    assert (tmp_path / "main" / "babyllama-antlm-s1" / "results.json").is_file()
    # The ablations reuse the main study's identical condition instead of training it again.
    assert module.main(["--smoke", "--study", "ablations", "--backbones", "babyllama", "--seeds", "0,1",
                        "--out", str(tmp_path), "--set", "train.threads=1"]) == 0
    assert not (tmp_path / "ablations" / "babyllama-antlm-1-4-1-s0").exists()
    results = (tmp_path / "RESULTS.md").read_text()
    assert "Data caveat" in results and "## Main comparison" in results and "## Ablations" in results
    assert results.count("paired t-test p =") == 2 + 2 + 4  # one line per non-baseline condition
    assert "(figures/main-babyllama-dev_loss.png)" in results and (tmp_path / "figures" / "main-babyllama-dev_loss.png").is_file()
    # A run stopped after its last checkpoint but before final/ resumes from it instead of retraining
    # (retraining would replace the checkpoint directory).
    stopped = tmp_path / "main" / "babyllama-clm-s0"
    checkpoint = next((stopped / "checkpoints").iterdir())
    before = checkpoint.stat().st_ino
    shutil.rmtree(stopped / "final")
    (stopped / "results.json").unlink()
    assert module.main(["--smoke", "--backbones", "babyllama", "--seeds", "0,1", "--out", str(tmp_path),
                        "--set", "train.threads=1"]) == 0
    assert checkpoint.stat().st_ino == before and (stopped / "results.json").is_file()
    sys.modules.pop("cpu_replication", None)


@pytest.mark.skipif(not (SHARED_DATA / "blimp_filtered").is_dir(), reason="shared data not found at ../shared/data")
def test_distillation_recipe_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("distillation_recipe", REPO / "experiments" / "distillation" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--out", str(tmp_path), "--set", "train.threads=1"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "student-clm-distill" in report and "student-antlm-distill" in report
    config = (tmp_path / "student-antlm-distill-s1" / "config.yaml").read_text()
    assert "teacher-192" in config and "teacher-256" in config
    # The 2025 fast sets: BLiMP & co. under both backends, entity tracking causally, all in one file.
    results = json.loads((tmp_path / "student-clm-s0" / "results.json").read_text())
    assert results["compat"] == "babylm2025" and results["eval_set"] == "fast"
    assert {"blimp", "wug_adj", "entity_tracking"} <= set(results["results"]["causal"]["tasks"])
    assert "blimp" in results["results"]["mntp"]["tasks"] and "entity_tracking" not in results["results"]["mntp"]["tasks"]
    assert "| ewok | entity_tracking | wug_adj | wug_past | glue |" in report
    assert (tmp_path / "teacher-256" / "results.json").is_file()
    # The ensemble diagnostic reads the very dev blocks the student's logged dev loss used.
    target = json.loads((tmp_path / "ensemble_dev.json").read_text())["dev blocks, seed 1"]
    logged = [json.loads(line) for line in (tmp_path / "student-clm-s1" / "metrics.jsonl").read_text().splitlines()]
    assert target["student-clm-s1"] == [row for row in logged if row["split"] == "dev"][-1]["dev_clm_loss"]
    assert {"teacher-192", "teacher-256", "ensemble (mean of teacher logits)", "student-antlm-distill-s1"} <= set(target)
    heldout = json.loads((tmp_path / "ensemble_dev.json").read_text())["held-out text, seed 1"]
    assert heldout["dev_tokens"] > target["dev_tokens"] and set(heldout) == set(target)
    sys.modules.pop("distillation_recipe", None)
    sys.modules.pop("run", None)
    sys.modules.pop("ensemble_dev", None)
