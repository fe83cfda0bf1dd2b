"""The CPU replication recipe runs end to end on tiny models (its --smoke mode)."""
import importlib.util
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
    sys.modules.pop("cpu_replication", None)
