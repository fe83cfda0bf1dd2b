#!/usr/bin/env python
"""OpenMP wait behaviour of CPU training, on a quiet machine and beside other CPU-bound processes.

Each setting trains the `tiny` preset and the same at 256 wide (`--models`) with 2 threads in a
fresh process, so that the OpenMP runtime reads the setting when torch loads. Settings are
interleaved across repeats (a slow minute of the machine hits every setting alike); each run's
figure is the median tokens/s of its train rows after the first (warm-up) window. `--busy N` runs N
one-core busy loops beside the measurements, as another user's job would.

    python benchmarks/wait_policy.py --repeats 3                 # quiet machine
    python benchmarks/wait_policy.py --repeats 3 --busy 1        # one core taken by another process

Settings: `antlm` (nothing set: antlm chooses), `passive` (OMP_WAIT_POLICY=PASSIVE: sleep at
once), `spin-N` (GOMP_SPINCOUNT=N, libgomp's spin iterations before sleeping; about 100,000 a
millisecond), `runtime` (libgomp's own default, 300,000), `active` (spin for minutes). Prints the median over repeats and the ratio to `passive`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from antlm.threads import USER_VARIABLES

SETTINGS = {
    "antlm": {},  # neither variable set: antlm's own choice from the machine (antlm/threads.py)
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin-2k": {"GOMP_SPINCOUNT": "2000"},
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
    "spin-50k": {"GOMP_SPINCOUNT": "50000"},
    "runtime": {"GOMP_SPINCOUNT": "300000"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}
MODELS = {"tiny": ([], 60, 10), "wide": (["model.hidden_size=256", "model.ffn_size=768", "model.num_heads=8"], 24, 4)}
BUSY_LOOP = "while True: pass"


def base_env() -> dict:
    # Nothing the measurement sets may leak in from the caller's environment.
    return {k: v for k, v in os.environ.items() if k not in (*USER_VARIABLES, "OMP_NUM_THREADS")}


def train_once(model: str, setting: str, work: Path) -> float:
    extra, steps, every = MODELS[model]
    out = work / f"{model}-{setting}"
    sets = ["train.threads=2", f"train.max_steps={steps}", f"train.log_every={every}", "train.progress=false",
            "train.eval_every=1000000", "train.checkpoint_every=1000000", "schedule=1_clm", *extra]
    cmd = [sys.executable, "-m", "antlm", "train", "--config", "tiny", "--out", str(out), "--force"]
    for s in sets:
        cmd += ["--set", s]
    env = {**base_env(), **SETTINGS[setting]}
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=work)
    if setting == "antlm":
        chosen = json.loads((out / "run_info.json").read_text())
        print(f"  antlm chose OMP_WAIT_POLICY={chosen.get('omp_wait_policy')} GOMP_SPINCOUNT={chosen.get('gomp_spincount')}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in rows if r.get("split") == "train" and r.get("tokens_per_s")][1:]
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="one-core busy loops running beside the measurement")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated, from: " + ", ".join(SETTINGS))
    parser.add_argument("--models", default="tiny,wide", help="tiny, wide (256 wide)")
    args = parser.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [s for s in settings if s not in SETTINGS] + [m for m in models if m not in MODELS]
    if unknown:
        print(f"error: unknown setting or model: {', '.join(unknown)}", file=sys.stderr)
        return 2
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)]
    figures: dict = {m: {s: [] for s in settings} for m in models}
    try:
        with tempfile.TemporaryDirectory(prefix="antlm-wait-") as tmp:
            work = Path(tmp)
            for repeat in range(args.repeats):
                for model in models:
                    for setting in settings:
                        figures[model][setting].append(train_once(model, setting, work))
                        print(f"repeat {repeat + 1} {model} {setting}: {figures[model][setting][-1]:,.0f} tok/s",
                              flush=True)
    finally:
        for proc in busy:
            proc.kill()
    print(f"\n{args.busy} busy core(s), {os.cpu_count()} CPUs, 2 threads, median tokens/s over {args.repeats} repeats")
    for model in models:
        base = statistics.median(figures[model]["passive"]) if "passive" in figures[model] else None
        for setting in settings:
            runs = figures[model][setting]
            med = statistics.median(runs)
            ratio = f"  x{med / base:.3f} vs passive" if base else ""
            print(f"RESULT {model:5s} {setting:9s} {med:9,.0f}  (runs {', '.join(f'{r:,.0f}' for r in runs)}){ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
