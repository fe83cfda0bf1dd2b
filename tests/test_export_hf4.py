"""The exports under the BabyLM 2025 pipeline's pins (transformers 4.51.3, tokenizers 0.21.1;
evaluation-pipeline-2025 requirements.txt), which antlm's `transformers>=4.45` admits.

A separate venv with those pins and the CPU torch (scripts/setup_venv.sh) is made once and kept
in `$ANTLM_TEST_CACHE/tf451` (default ~/.cache/antlm-test/tf451); tests/hf_export_checker.py runs
in it on a spec that antlm computed here, fed through stdin so that EWoK text never touches disk.
Without a package registry the venv cannot be made and the test is skipped, saying why.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from conftest import REPO  # noqa: E402
from test_export import runs, spec  # noqa: E402,F401  (module fixtures: the exports and antlm's expectations)

PINS = ("transformers==4.51.3", "tokenizers==0.21.1")
CHECKER = Path(__file__).with_name("hf_export_checker.py")


def pinned_venv() -> Path:
    """The venv with PINS, made once per machine (a lock keeps parallel sessions from racing)."""
    cache = Path(os.environ.get("ANTLM_TEST_CACHE", Path.home() / ".cache" / "antlm-test"))
    venv, marker = cache / "tf451", cache / "tf451" / ".antlm-pins"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "tf451.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == " ".join(PINS):
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted run
        try:
            result = subprocess.run(["bash", str(REPO / "scripts" / "setup_venv.sh"), str(venv), *PINS],
                                    capture_output=True, text=True, timeout=900,
                                    env={**os.environ, "PYTHON": sys.executable})
        except subprocess.TimeoutExpired:
            result = None
        if result is None or result.returncode:
            shutil.rmtree(venv, ignore_errors=True)
            why = "timed out" if result is None else (result.stderr.strip().splitlines() or ["failed"])[-1]
            pytest.skip(f"cannot install {' '.join(PINS)} into {venv} (no package registry?): {why}")
        marker.write_text(" ".join(PINS))
    return venv


def run_checker(venv: Path, spec: dict, tmp_path: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error",
           "HF_MODULES_CACHE": str(tmp_path / "hf-modules"), "PYTHONPATH": ""}
    result = subprocess.run([str(venv / "bin" / "python"), str(CHECKER)], input=json.dumps(spec),
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_exports_work_under_the_2025_pipeline_pins(spec, runs, tmp_path):  # noqa: F811
    """Ids, offsets, completion tokens, padding, pairs, and AutoModelForMaskedLM/CausalLM/
    SequenceClassification/AutoModel, as in test_export.py but under transformers 4.51.3. An
    export whose tokenizer_config.json lacks add_prefix_space (as antlm's did before) is run too,
    so the test shows it would catch the bug it guards against."""
    old = tmp_path / "ltgbert-hf-old"
    shutil.copytree(runs["ltgbert"][1], old)
    config = json.loads((old / "tokenizer_config.json").read_text())
    del config["add_prefix_space"]
    (old / "tokenizer_config.json").write_text(json.dumps(config))
    masked = next(e for e in spec["exports"] if e["name"] == "ltgbert-hf")
    legacy = {**{k: v for k, v in masked.items() if k != "logits"}, "name": old.name, "dir": str(old)}

    report = run_checker(pinned_venv(), {"exports": spec["exports"] + [legacy]}, tmp_path)
    assert report["transformers"] == "4.51.3"
    failures = [f for f in report["failures"] if not f.startswith(old.name)]
    assert failures == [], "\n".join(failures)
    counts = report["counts"]
    for export in spec["exports"]:
        assert counts[f"{export['name']}/AutoProcessor/texts"] == len(export["texts"])
    assert counts["ltgbert-hf/AutoModelForMaskedLM/max_abs_logit_error"] <= masked["tolerance"]
    # Without the key, 4.x drops the prefix space: every text whose first word is not already
    # spaced comes out with other ids.
    spaced = sum(text[:1].isspace() for text in legacy["texts"])
    assert counts[f"{old.name}/AutoTokenizer/ids_differ"] == len(legacy["texts"]) - spaced
