"""scripts/gpu_check.sh --cpu-dry-run: the GPU check's every part, on CPU with tiny shapes, so that a
renamed flag or a moved module breaks here and not on a GPU loan (issue 23)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # HF Trainer, the throughput baseline


@pytest.mark.slow
def test_cpu_dry_run_passes_every_part(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, ANTLM_SHARED_DATA=str(tmp_path / "none"))
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out"), "--cpu-dry-run",
                             "--work", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    parts = {p["name"]: p for p in json.loads((tmp_path / "out" / "results.json").read_text())["parts"]}
    ran = ["env", "tests_cuda", "throughput_babyllama", "antlm_run", "zeroshot_causal", "zeroshot_mntp", "ddp",
           "throughput_ltg_shape", "throughput_ltgbert", "threads"]
    assert {name: parts[name]["status"] for name in ran} == {name: "ok" for name in ran}
    # What the dry run leaves out, it says why.
    for name in ("throughput_babyllama_compile", "tests_gpu", "tests_quick"):
        assert parts[name]["status"] == "skipped" and parts[name]["reason"]
    assert "skipped" in parts["tests_cuda"]["figures"]["summary"]  # the cuda marker selects tests
    run = parts["antlm_run"]["figures"]
    assert run["objective_order"] == ["clm", "mlm", "clm"] and run["resume_ok"] and run["max_weight_difference"] == 0
    for name in ("throughput_babyllama", "throughput_ltg_shape"):
        objectives = parts[name]["figures"]["objectives"]
        assert set(objectives) == {"clm", "mlm"} and all(o["ratio"] > 0 and o["sides"]["hf"]["mfu"] > 0
                                                         for o in objectives.values())
    assert parts["throughput_ltgbert"]["figures"]["backbone"] == "ltgbert"
    for backend in ("causal", "mntp"):
        assert parts[f"zeroshot_{backend}"]["figures"]["ok"]
    assert parts["ddp"]["figures"]["probe"] and parts["ddp"]["figures"]["antlm_world_size"] == 1
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| antlm_run | ok |" in table and "MFU against the measured" in table


@pytest.mark.parametrize("args", [[], ["OUT", "--data", "no-such-folder"], ["OUT", "--no-such-flag"]])
def test_bad_arguments_are_one_line(tmp_path, args):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("gpu_check: error:") and not (tmp_path / "OUT").exists()
