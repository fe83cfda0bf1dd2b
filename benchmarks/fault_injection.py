#!/usr/bin/env python
"""Fault injection: SIGKILL a training run at random moments, resume it each time, and check that
it ends bitwise equal to the same run left alone.

What it does:
1. writes a tiny BabyLM-layout corpus and trains a tiny BabyLlama (hidden 32, 2 layers, dropout 0.1
   so the restored RNG state matters) on a schedule that mixes CLM and MLM phases
   (`<a>st_clm+<b>st_mlm+<c>st_clm`), once, uninterrupted, in a subprocess: the reference;
2. starts the same run in another out dir (with its own token cache, so the first start also
   trains the tokenizer and builds the token store) and SIGKILLs it; then resumes it with
   `--resume`, kills it again, and so on until `--kills` kills have been delivered or the run
   finishes on its own (noted: with the default sizes it should not); then lets a last resume run
   to the end. Each kill's moment is drawn from a seeded RNG, in one of three modes:
   * `startup`: a delay from process start, up to the time the latest start took to begin its first
     checkpoint (at first the reference's): imports, the out-dir lock, config and tokenizer files,
     data preparation, model build; or at that first checkpoint write, if it comes sooner;
   * `mid_write`: right after the k-th new `checkpoints/.tmp-*` (or `.final.tmp-*`) directory
     appears (k in 1..2), i.e. while a checkpoint is being written, plus 0-20 ms;
   * `after_ckpt`: a delay of 0-4 reference steps after the first new checkpoint appears.
   The file system is polled every 5 ms. A start killed before `config.yaml` exists holds no run
   yet, so the next start is a plain one (`--resume` there is refused, by design);
3. checks that `final/model.safetensors` equals the reference's tensor for tensor (torch.equal),
   that every checkpoint left verifies (`antlm.train.checkpoint.verify`), that metrics.jsonl has no
   duplicate train (or dev) steps, and that the dev losses logged at each step equal the
   reference's (they are functions of the weights).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fault_injection.py
      [--kills 30] [--seed 0] [--steps 120] [--checkpoint-every 2] [--out DIR] [--quick]
`--quick` means 6 kills over 40 steps. The last lines are `kills survived: K` and
`RESULT fault_injection kills=<K> equal=<true|false>`; the exit code is 0 only when the weights are
equal and the other checks pass. Without --out the work dir is a temporary one, removed on success.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

POLL = 0.005  # seconds between file-system polls
WORDS = ("the a dog dogs cat cats sees see runs run big small red house houses child children "
         "near with and but is are was were happy quickly slowly tree trees").split()
MODES = ("startup", "mid_write", "after_ckpt")
MODE_WEIGHTS = (0.3, 0.35, 0.35)


def make_corpus(root: Path, seed: int = 0) -> Path:
    """A 3-file BabyLM-layout corpus of random word sequences (about 12k words), as tests/conftest.py."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("a.train", "b.txt", "c.dev"):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + " ." for _ in range(500)]
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def schedule_for(steps: int) -> str:
    a = max(1, steps // 3)
    b = max(1, steps // 3)
    c = max(1, steps - a - b)
    return f"{a}st_clm+{b}st_mlm+{c}st_clm"


def train_args(corpus: Path, out: Path, steps: int, checkpoint_every: int) -> list[str]:
    settings = {
        "data.corpus": str(corpus), "data.vocab_size": 300, "data.seq_len": 32, "model.max_seq_len": 32,
        "model.backbone": "babyllama", "model.hidden_size": 32, "model.num_layers": 2, "model.num_heads": 4,
        "model.ffn_size": 64, "model.dropout": 0.1, "train.batch_size": 8, "train.log_every": 5,
        "train.eval_every": 10, "train.eval_batches": 2, "train.checkpoint_every": checkpoint_every,
        "train.progress": "false", "train.threads": 1, "optim.lr": 0.003, "schedule": schedule_for(steps),
    }
    args = [sys.executable, "-m", "antlm", "train", "--out", str(out)]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    return args


def spawn(args: list[str], cache: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ANTLM_CACHE": str(cache)}
    env.pop("ANTLM_FAULT_NAN_STEPS", None)
    log = open(log_path, "a")
    try:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()  # the child holds its own copy of the descriptor


def step_dirs(out: Path) -> set[str]:
    root = out / "checkpoints"
    try:
        return {p.name for p in root.iterdir() if p.name.startswith("step_")}
    except FileNotFoundError:
        return set()


def tmp_dirs(out: Path) -> set[str]:
    found = set()
    try:
        found |= {f"checkpoints/{p.name}" for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp-")}
    except FileNotFoundError:
        pass
    try:
        found |= {p.name for p in out.iterdir() if p.name.startswith(".final.tmp-")}
    except FileNotFoundError:
        pass
    return found


def run_reference(args: list[str], out: Path, cache: Path, log_path: Path, timeout: float) -> dict:
    """Run to the end, noting when each checkpoint first appears (for the kill timing)."""
    start = time.monotonic()
    proc = spawn(args, cache, log_path)
    seen: dict[str, float] = {}
    while proc.poll() is None:
        for name in step_dirs(out) - set(seen):
            seen[name] = time.monotonic() - start
        if time.monotonic() - start > timeout:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the reference run took more than {timeout:.0f}s (log: {log_path})")
        time.sleep(POLL)
    total = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the reference run failed with exit code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
    times = sorted(seen.values())
    first = times[0] if times else total
    steps = sorted(int(name.split("_")[1]) for name in seen)
    if len(times) >= 2 and steps[-1] > steps[0]:
        step_time = (times[-1] - times[0]) / (steps[-1] - steps[0])
    else:
        step_time = 0.05
    return {"seconds": total, "first_checkpoint": first, "step_time": step_time}


def written_steps(tmps: set[str], steps: set[str]) -> set[str]:
    """Checkpoints seen being written (`.tmp-step_N-PID`) or written (`step_N`), as `step_N` names."""
    names = set(steps)
    for tmp in tmps:
        if tmp.startswith("checkpoints/.tmp-"):
            names.add(tmp[len("checkpoints/.tmp-"):].rsplit("-", 1)[0])
    return names


def one_cycle(args: list[str], out: Path, cache: Path, log_path: Path, rng: random.Random, ref: dict,
              state: dict, timeout: float) -> dict:
    """Start (or resume) the run and kill it at a moment drawn by `rng`; returns what happened.

    `state["startup"]` is the latest seen time from spawn to the first checkpoint write (at first the
    reference's); startup delays are drawn as a fraction of it, and a startup kill fires at the first
    checkpoint write if that comes sooner, so a slow estimate never lets a start run far."""
    resume = (out / "config.yaml").is_file()
    mode = rng.choices(MODES, weights=MODE_WEIGHTS)[0]
    # Draw every random number up front, so the sequence of draws does not depend on timing.
    startup_delay = rng.uniform(0.05, 1.0) * state["startup"]
    nth_write = rng.randint(1, 2)
    write_delay = rng.uniform(0.0, 0.02)
    after_delay = rng.uniform(0.0, 4.0) * ref["step_time"]
    steps_before, tmps_before = step_dirs(out), tmp_dirs(out)
    with open(log_path, "a") as log:
        log.write(f"\n=== {'resume' if resume else 'start'}, kill mode {mode} ===\n")
    start = time.monotonic()
    proc = spawn(args + (["--resume"] if resume else []), cache, log_path)
    new_tmps: set[str] = set()
    first_write_at = first_checkpoint_at = kth_write_at = None
    while proc.poll() is None:
        now = time.monotonic() - start
        new_tmps |= tmp_dirs(out) - tmps_before
        new_steps = step_dirs(out) - steps_before
        writes = written_steps(new_tmps, new_steps)
        if first_write_at is None and (writes or new_tmps):
            first_write_at = now
        if first_checkpoint_at is None and new_steps:
            first_checkpoint_at = now
        if kth_write_at is None and (len(writes) >= nth_write or any(".final.tmp-" in t for t in new_tmps)):
            kth_write_at = now
        if mode == "startup":
            fire = now >= startup_delay or first_write_at is not None
        elif mode == "mid_write":
            fire = kth_write_at is not None and now >= kth_write_at + write_delay
        else:
            fire = first_checkpoint_at is not None and now >= first_checkpoint_at + after_delay
        if fire or now > timeout:
            break
        time.sleep(POLL)
    at = time.monotonic() - start
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"a {'resumed' if resume else 'fresh'} start failed with exit code {proc.returncode}:\n"
                           f"{log_path.read_text()[-3000:]}")
    if resume and first_write_at is not None:
        state["startup"] = first_write_at
    if mode == "startup":
        detail = f"startup(+{startup_delay:.2f}s{', cut short by a checkpoint write' if at < startup_delay else ''})"
    elif mode == "mid_write":
        detail = f"mid_write(k={nth_write},+{1000 * write_delay:.0f}ms)"
    else:
        detail = f"after_ckpt(+{after_delay:.3f}s)"
    return {"resume": resume, "mode": detail, "at": at, "killed": killed, "finished": proc.returncode == 0,
            "left_tmp": sorted(tmp_dirs(out) - tmps_before), "checkpoints": sorted(step_dirs(out))}


def compare_weights(a: Path, b: Path) -> tuple[bool, str]:
    from safetensors.torch import load_file
    import torch

    if not a.is_file() or not b.is_file():
        return False, f"missing {a if not a.is_file() else b}"
    wa, wb = load_file(str(a)), load_file(str(b))
    if set(wa) != set(wb):
        return False, f"different tensor names: {sorted(set(wa) ^ set(wb))}"
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    if differ:
        worst = max((wa[k] - wb[k]).abs().max().item() for k in differ)
        return False, f"{len(differ)}/{len(wa)} tensors differ (max abs difference {worst:.3g})"
    return True, f"{len(wa)} tensors bitwise equal"


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_metrics(run: Path, reference: Path) -> list[str]:
    problems = []
    rows = read_rows(run / "metrics.jsonl")
    for split in ("train", "dev"):
        steps = [r["step"] for r in rows if r["split"] == split]
        duplicates = sorted({s for s in steps if steps.count(s) > 1})
        if duplicates:
            problems.append(f"metrics.jsonl has duplicate {split} steps {duplicates}")
        if steps != sorted(steps):
            problems.append(f"metrics.jsonl {split} steps are out of order")
    ref_dev = {r["step"]: r for r in read_rows(reference / "metrics.jsonl") if r["split"] == "dev"}
    run_dev = {r["step"]: r for r in rows if r["split"] == "dev"}
    if set(ref_dev) != set(run_dev):
        problems.append(f"dev rows at steps {sorted(run_dev)}, reference at {sorted(ref_dev)}")
    differ = [s for s in ref_dev if s in run_dev and run_dev[s] != ref_dev[s]]
    if differ:
        problems.append(f"dev losses differ from the reference at steps {differ}")
    return problems


def check_checkpoints(run: Path) -> list[str]:
    from antlm.train.checkpoint import list_checkpoints, verify

    problems = [problem for path in list_checkpoints(run / "checkpoints") if (problem := verify(path))]
    if not list_checkpoints(run / "checkpoints"):
        problems.append("no checkpoint left")
    return problems


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, help="SIGKILLs to deliver (default 30; 6 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--out", help="work directory (default: a temporary one, removed on success)")
    parser.add_argument("--steps", type=int, help="total training steps (default 120; 40 with --quick)")
    parser.add_argument("--checkpoint-every", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="6 kills over 40 steps")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for any one start")
    args = parser.parse_args(argv)
    args.kills = args.kills if args.kills is not None else (6 if args.quick else 30)
    args.steps = args.steps if args.steps is not None else (40 if args.quick else 120)
    if args.kills < 0 or args.steps < 3 or args.checkpoint_every < 1:
        parser.error("need --kills >= 0, --steps >= 3 and --checkpoint-every >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    temporary = args.out is None
    work = Path(tempfile.mkdtemp(prefix="antlm-fault-")) if temporary else Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("reference", "killed"):
        if (work / name).exists():
            shutil.rmtree(work / name)
    corpus = make_corpus(work / "corpus")
    rng = random.Random(args.seed)
    began = time.monotonic()

    reference = work / "reference"
    ref_args = train_args(corpus, reference, args.steps, args.checkpoint_every)
    try:
        ref = run_reference(ref_args, reference, work / "cache-reference", work / "reference.log", args.timeout)
    except RuntimeError as err:
        print(f"error: {err}\nwork dir: {work}\nkills survived: 0\nRESULT fault_injection kills=0 equal=false", flush=True)
        return 1
    print(f"reference: {args.steps} steps ({schedule_for(args.steps)}), checkpoint every {args.checkpoint_every}, "
          f"{ref['seconds']:.1f}s; first checkpoint after {ref['first_checkpoint']:.2f}s, "
          f"{1000 * ref['step_time']:.0f} ms/step", flush=True)

    run = work / "killed"
    run_args = train_args(corpus, run, args.steps, args.checkpoint_every)
    cache, log_path = work / "cache-killed", work / "killed.log"
    kills, cycles, finished_early, fresh_restarts, torn, failed = 0, 0, False, 0, 0, False
    state = {"startup": ref["first_checkpoint"]}
    while kills < args.kills:
        cycles += 1
        try:
            result = one_cycle(run_args, run, cache, log_path, rng, ref, state, args.timeout)
        except RuntimeError as err:  # a start that failed by itself: the run cannot go on
            print(f"error after {kills} kills: {err}", flush=True)
            failed = True
            break
        if result["killed"]:
            kills += 1
            fresh_restarts += not result["resume"] and cycles > 1
            torn += bool(result["left_tmp"])
            newest = result["checkpoints"][-1] if result["checkpoints"] else "none"
            left = f", left {', '.join(result['left_tmp'])}" if result["left_tmp"] else ""
            print(f"kill {kills}/{args.kills}: {'resume' if result['resume'] else 'start'}, {result['mode']} "
                  f"at {result['at']:.2f}s; newest checkpoint {newest}{left}", flush=True)
        if result["finished"]:
            finished_early = True
            print(f"the run finished on its own after {kills} kills (raise --steps for more)", flush=True)
            break

    if not finished_early and not failed:
        resume = (run / "config.yaml").is_file()
        with open(log_path, "a") as log:
            log.write(f"\n=== last {'resume' if resume else 'start'}, no kill ===\n")
        proc = spawn(run_args + (["--resume"] if resume else []), cache, log_path)
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            failed = True
            print(f"the last resume failed with exit code {proc.returncode}:\n{log_path.read_text()[-3000:]}")

    equal, how = compare_weights(reference / "final" / "model.safetensors", run / "final" / "model.safetensors")
    problems = check_checkpoints(run) if (run / "checkpoints").is_dir() else ["no checkpoints directory"]
    problems += check_metrics(run, reference) if (run / "metrics.jsonl").is_file() else ["no metrics.jsonl"]
    leftovers = sorted(tmp_dirs(run))
    print(f"final weights: {how}")
    print(f"checkpoints and metrics: {'ok' if not problems else '; '.join(problems)}")
    if fresh_restarts:
        print(f"{fresh_restarts} start(s) were killed before config.yaml existed; the next start was a plain one")
    if leftovers:
        print(f"temporary directories left in the run dir: {', '.join(leftovers)}")
    print(f"{torn} kills left a half-written checkpoint or final/ behind")
    print(f"work dir: {work}" + (" (removed)" if temporary and equal and not problems and not failed else ""))
    print(f"{cycles} starts with kills, {time.monotonic() - began:.1f}s in all")
    print(f"kills survived: {kills}")
    print(f"RESULT fault_injection kills={kills} equal={'true' if equal else 'false'}", flush=True)
    ok = equal and not problems and not failed
    if temporary and ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
