"""The distillation benchmark's quick form runs and prints its RESULT lines."""
import subprocess
import sys

from conftest import REPO


def test_distill_benchmark_quick():
    out = subprocess.run([sys.executable, "-m", "benchmarks.distill_throughput", "--quick", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT distill_")]
    assert [line.split()[1] for line in lines] == ["distill_clm", "distill_mlm"]
    assert all("t0=" in line and "overhead2=" in line for line in lines)
