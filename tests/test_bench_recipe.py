"""benchmarks/recipe_defaults.py --quick runs end to end and prints a RESULT line per arm."""
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_recipe_benchmark(tmp_path):
    env = {"ANTLM_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    # `python -m` from the repository root: this checkout's antlm, whatever else is installed.
    done = subprocess.run([sys.executable, "-m", "benchmarks.recipe_defaults", "--quick", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^RESULT arm=(old|new) seed=0 dev_mlm_new_masking=([\d.]+) dev_mlm_old_masking=([\d.]+)",
                      done.stdout, re.M)
    assert [row[0] for row in rows] == ["old", "new"]
    assert all(0 < float(value) < 20 for row in rows for value in row[1:])
