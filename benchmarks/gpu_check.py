#!/usr/bin/env python
"""The first GPU session's one command (issue 23): every GPU path of antlm, measured, in about
7 minutes, its set-up included, with one results file (JSON and a Markdown table).

Run through scripts/gpu_check.sh OUT_DIR [--data DIR] [--budget S] [--only a,b] [--cpu-dry-run].
Parts, in order of value to a short GPU loan; each runs in its own process group under its own time
limit (cut to what the overall budget has left), and a part that cannot run is skipped with the
reason printed and recorded:

  env             versions, GPUs, the bf16 matmul rate measured here (the MFU denominator), data prep
  tests_cuda      the suite's CUDA tests (`pytest -m cuda`)
  throughput_*    benchmarks/train_throughput.py: antlm against HF Trainer + LlamaForCausalLM, bf16,
                  CLM and MLM, paper-size BabyLlama (58M, seq 128): tokens/s, ratio, MFU against the
                  measured rate, peak GPU memory (_babyllama; _compile with torch.compile on both
                  sides; _ltg_shape: the LTG-BERT base shape as a Llama; _ltgbert: antlm's own alone)
  antlm_run       paper-size BabyLlama AntLM on the corpus through CLM -> MLM -> CLM: once straight,
                  once SIGKILLed after a checkpoint and resumed; final weights compared
  zeroshot_*      benchmarks/zeroshot2025.py on the GPU, causal and mntp, BLiMP fast set, the run's model
  ddp             torchrun on every GPU (nccl): an nccl all-reduce probe, then antlm training
  threads         the tiny preset on 2 CPU threads under each OpenMP wait setting (a quiet machine's figures)
  tests_gpu       the bf16 rehearsal tests with ANTLM_TEST_DEVICE=cuda
  tests_quick     the rest of the quick suite on this machine's packages, with what time is left
Order: env, tests_cuda, throughput_babyllama, antlm_run, zeroshot_*, ddp, throughput_ltgbert,
throughput_babyllama_compile, throughput_ltg_shape, threads, tests_gpu, tests_quick (most valuable first).

--cpu-dry-run runs the same parts on CPU with tiny shapes (4 min in all on a 2-core machine at load 5),
so that CI breaks when a flag or module they use changes, not the GPU loan. Exit status 1 when any
part failed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
CORPUS_NAME = "babylm_2024_100M_snippets"
TINY_MODEL = {"model.hidden_size": 32, "model.num_layers": 2, "model.num_heads": 4, "model.ffn_size": 64}
TINY_DATA = {"data.corpus": "embedded", "data.embedded_sentences": 2000, "data.vocab_size": 300,
             "data.seq_len": 32, "model.max_seq_len": 32, "train.batch_size": 8}
LTG_SHAPE = {"model.hidden_size": 768, "model.num_layers": 12, "model.num_heads": 12, "model.ffn_size": 2048}
# Published dense bf16 rate, used for MFU only when the measurement did not run.
PUBLISHED_BF16 = 989e12


def sets(values: dict) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


class Check:
    def __init__(self, args):
        self.args, self.dry = args, args.cpu_dry_run
        self.out = Path(args.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="antlm-gpu-check-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + args.budget
        self.log = open(self.out / "gpu_check.log", "w")
        self.parts: list[dict] = []
        self.env = dict(os.environ, ANTLM_CACHE=str(self.work / "cache"), HF_HUB_OFFLINE="1",
                        TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        if self.dry:
            self.env["OMP_NUM_THREADS"] = "1"
        self.device = "cpu" if self.dry else "cuda"
        self.data = self._data_dir(args.data)
        self.corpus = self.data / CORPUS_NAME if self.data and (self.data / CORPUS_NAME).is_dir() else None
        self.matmul_flops: float | None = None
        self.run_dir: Path | None = None
        self.gpus = 0

    def _data_dir(self, given):
        for candidate in ([given] if given else ([] if self.dry else [os.environ.get("ANTLM_SHARED_DATA"),
                                                                     REPO / ".gpu_data", REPO.parent / "shared" / "data"])):
            if candidate and Path(candidate).is_dir():
                return Path(candidate).resolve()
        return None

    def say(self, message: str) -> None:
        print(message, flush=True)
        self.log.write(message + "\n")
        self.log.flush()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, cmd: list[str], limit: float, env: dict | None = None) -> dict:
        """Run cmd in its own process group; on its limit the whole group is killed."""
        self.log.write(f"\n$ {' '.join(map(str, cmd))}   [limit {limit:.0f}s]\n")
        self.log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=max(1.0, limit))
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            timed_out = True
        self.log.write(output)
        self.log.flush()
        return {"rc": proc.returncode, "output": output, "seconds": time.perf_counter() - start, "timed_out": timed_out}

    def part(self, name: str, limit: float, body, skip: str | None = None) -> None:
        only = self.args.only
        if only and name not in only and not any(name.startswith(p.rstrip("*")) for p in only if p.endswith("*")):
            return
        record = {"name": name, "status": "skipped", "seconds": 0.0}
        if skip:
            record["reason"] = skip
        elif self.left() < min(limit, self.args.min_part):
            record["reason"] = f"{self.left():.0f}s of the {self.args.budget:.0f}s budget left"
        else:
            # The dry run checks commands, not speed: a contended CI machine gets 3x the time.
            limit = min(limit * (3 if self.dry else 1), self.left())
            self.say(f"== {name} (limit {limit:.0f}s, {self.left():.0f}s of the budget left)")
            start = time.perf_counter()
            try:
                figures = body(limit) or {}
                record.update(status=figures.pop("status", "ok"), figures=figures)
            except PartFailed as failure:
                record.update(status=failure.status, reason=str(failure))
            except Exception as error:  # a bug in this script must not cost the other parts
                record.update(status="failed", reason=f"{type(error).__name__}: {error}")
            record["seconds"] = round(time.perf_counter() - start, 1)
        self.say(f"   {name}: {record['status']}" + (f" ({record['reason']})" if record.get("reason") else "")
                 + (f" in {record['seconds']}s" if record["seconds"] else ""))
        self.parts.append(record)

    def checked(self, cmd: list[str], limit: float, what: str, env: dict | None = None) -> dict:
        result = self.run(cmd, limit, env)
        if result["timed_out"]:
            raise PartFailed(f"{what} passed its {limit:.0f}s limit", "timed_out")
        if result["rc"] != 0:
            tail = [line for line in result["output"].splitlines() if line.strip()][-3:]
            raise PartFailed(f"{what} exited {result['rc']}: {' | '.join(tail)[-400:]}")
        return result


class PartFailed(Exception):
    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------------------------
# Parts

def part_env(check: Check, limit: float) -> dict:
    probe = check.checked([sys.executable, __file__, "--probe-env", "--matmul-size", "512" if check.dry else "8192"],
                          min(limit, 60), "environment probe")
    figures = json.loads(probe["output"].strip().splitlines()[-1])
    check.gpus = figures.get("gpus", 0)
    if not check.dry and not check.gpus:
        raise PartFailed("torch sees no CUDA device")
    check.matmul_flops = figures.get("matmul_flops")
    figures["data"] = str(check.data) if check.data else None
    if check.corpus and not check.dry:
        # Tokenizer and token store once, here, so the timed parts read them from the cache.
        check.checked([sys.executable, "-m", "antlm", "prepare", "--config", "babyllama-antlm-4-16-4",
                       "--set", f"data.corpus={check.corpus}"], max(10, limit - probe["seconds"]), "antlm prepare")
    return figures


def probe_env(matmul_size: int) -> dict:
    import torch

    torch.set_num_threads(1 if not torch.cuda.is_available() else min(8, os.cpu_count() or 1))
    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpus": torch.cuda.device_count(), "cpu_count": os.cpu_count()}
    for name in ("transformers", "accelerate", "tokenizers", "safetensors", "numpy", "pytest"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    cuda = torch.cuda.is_available()
    info["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(info["gpus"])]
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    a = torch.randn(matmul_size, matmul_size, device=device, dtype=dtype)
    b = torch.randn(matmul_size, matmul_size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    sync()
    info["matmul_flops"] = 2 * matmul_size ** 3 * reps / (time.perf_counter() - start)
    info["matmul"] = f"{matmul_size}^3 {str(dtype).replace('torch.', '')} on random data, mean of {reps} after 3 warm-ups"
    return info


def pytest_summary(output: str) -> str:
    words = ("passed", "failed", "skipped", "error", "deselected", "no tests ran")
    lines = [line.strip("= ") for line in output.splitlines() if " in " in line and any(w in line for w in words)]
    return lines[-1] if lines else "no summary line"


def part_tests_cuda(check: Check, limit: float) -> dict:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "pytest.mark.cuda" in p.read_text())
    if not files:
        raise PartFailed("no test carries the cuda marker")
    # -v: each test's verdict is printed as it ends, so a part cut by its limit still tells which passed.
    result = check.run([sys.executable, "-m", "pytest", "-m", "cuda", "-v", "-p", "no:cacheprovider", *files], limit)
    summary = pytest_summary(result["output"])
    verdicts = [line.split(" ")[0].split("::", 1)[-1] + " " + word for line in result["output"].splitlines()
                for word in ("PASSED", "FAILED", "SKIPPED", "ERROR") if "::" in line and f" {word}" in line]
    figures = {"files": files, "summary": summary, "tests": verdicts}
    if result["timed_out"] or result["rc"] != 0:
        figures["status"] = "timed_out" if result["timed_out"] else "failed"
    elif check.dry and "skipped" not in summary:
        raise PartFailed(f"without CUDA every cuda test should skip: {summary}")
    return figures


def part_tests(check: Check, limit: float, args: list[str], env: dict | None = None) -> dict:
    result = check.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], limit, env)
    figures = {"summary": pytest_summary(result["output"])}
    if result["timed_out"] or result["rc"] != 0:
        figures["status"] = "timed_out" if result["timed_out"] else "failed"
    return figures


def part_throughput(check: Check, limit: float, preset: str, extra: dict, compile_: bool = False,
                    baseline: str = "hf", objectives: str = "clm,mlm") -> dict:
    figures_path = check.work / f"throughput-{len(check.parts)}.json"
    cmd = [sys.executable, BENCH / "train_throughput.py", "--preset", preset, "--device", check.device,
           "--in-process", "--json", figures_path, "--baseline", baseline, "--objectives", objectives,
           "--out", check.work / "throughput-runs"]
    if check.dry:
        cmd += ["--steps", "6", "--warmup", "2", "--threads", "1", *sets({**TINY_DATA, **TINY_MODEL})]
    else:
        cmd += ["--steps", str(check.args.steps), "--warmup", "10", "--log-every", "5",
                "--set", f"data.corpus={check.corpus}"]
    # The dry run keeps its tiny shape: what it checks is the command, not the model.
    cmd += (sets(extra) if not check.dry else []) + (["--compile"] if compile_ else [])
    check.checked(cmd, limit, "train_throughput.py")
    figures = json.loads(figures_path.read_text())
    rate, source = (check.matmul_flops, "measured") if check.matmul_flops else (PUBLISHED_BF16, "published")
    for objective in figures["objectives"].values():
        for side in objective["sides"].values():
            side["mfu"] = round(side["all"] * objective["flops_per_token"] / rate, 4)
    figures["mfu_against"] = f"{source} {rate / 1e12:.1f} TFLOP/s"
    return figures


def train_cmd(check: Check, out: Path, extra: list[str]) -> list:
    return [sys.executable, "-m", "antlm", "train", "--config", check.run_preset, "--out", out, *check.run_sets, *extra]


def part_antlm_run(check: Check, limit: float) -> dict:
    clm, mlm = (10, 10) if check.dry else (check.args.run_steps // 3, check.args.run_steps - 2 * (check.args.run_steps // 3))
    total, every = 2 * clm + mlm, max(2, (2 * clm + mlm) // 8)
    kill_at = clm + mlm // 2  # inside the MLM phase: the resumed run crosses MLM -> CLM
    check.run_preset = "babyllama-antlm-4-16-4"
    values = {"schedule": f"{clm}st_clm+{mlm}st_mlm+{clm}st_clm", "train.checkpoint_every": every,
              "train.eval_every": every * 2, "train.log_every": max(1, every // 2), "train.keep_checkpoints": 2,
              "train.progress": "false", "train.device": check.device}
    values.update({**TINY_DATA, **TINY_MODEL, "data.block_offsets": "random"} if check.dry
                  else {"data.corpus": check.corpus})
    check.run_sets = [f"--set={k}={v}" for k, v in values.items()]
    straight, killed = check.work / "run-straight", check.work / "run-killed"
    start = time.monotonic()
    check.checked(train_cmd(check, straight, ["--force"]), limit / 2, "the uninterrupted run")
    check.run_dir = straight

    # The same run, SIGKILLed once a checkpoint past kill_at exists, then resumed.
    proc = subprocess.Popen([str(c) for c in train_cmd(check, killed, ["--force"])], cwd=REPO, env=check.env,
                            stdout=check.log, stderr=subprocess.STDOUT, start_new_session=True)
    killed_at = None
    stop_by = start + limit - 5
    while proc.poll() is None and time.monotonic() < stop_by:
        steps = [int(p.name.split("_")[1]) for p in (killed / "checkpoints").glob("step_*")] if killed.is_dir() else []
        if steps and max(steps) >= kill_at:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = max(steps)
            break
        time.sleep(0.005)
    if proc.poll() is None and killed_at is None:
        os.killpg(proc.pid, signal.SIGKILL)
        raise PartFailed("the run to be killed passed its time", "timed_out")
    proc.wait()
    if killed_at is None:
        raise PartFailed(f"the run finished before a checkpoint past step {kill_at} was seen (no kill)")
    check.checked(train_cmd(check, killed, ["--resume"]), max(5, stop_by - time.monotonic()), "the resumed run")
    return {"steps": total, "schedule": values["schedule"], "killed_after_checkpoint": killed_at,
            **compare_runs(straight, killed, exact=check.dry), **phase_speeds(straight, check.matmul_flops)}


def compare_runs(a: Path, b: Path, exact: bool) -> dict:
    import torch
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "final" / "model.safetensors")), load_file(str(b / "final" / "model.safetensors"))
    worst = max(((wa[k].float() - wb[k].float()).abs().max().item() for k in wa), default=0.0)
    # CPU: bitwise (the suite's claim). CUDA: kernels with atomics (embedding backward) reorder sums,
    # so "exact enough" is the GPU resume test's tolerance.
    same = all(torch.equal(wa[k], wb[k]) for k in wa) if exact else all(
        torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-2, atol=1e-3) for k in wa)
    dev = [[json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (a, b)]
    last_dev = [[row for row in rows if row["split"] == "dev"][-1] for rows in dev]
    figures = {"max_weight_difference": worst, "resume_ok": same, "rule": "bitwise" if exact else "allclose(1e-2, 1e-3)",
               "final_dev_straight": last_dev[0], "final_dev_resumed": last_dev[1]}
    if not same:
        figures["status"] = "failed"
    return figures


def phase_speeds(run: Path, matmul_flops: float | None) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    order = [r["objective"] for r in train]
    switches = [o for i, o in enumerate(order) if i == 0 or o != order[i - 1]]
    out = {"objective_order": switches}
    for objective in ("clm", "mlm"):
        rates = [r["tokens_per_s"] for r in train if r["objective"] == objective][1:]  # first window: warm-up
        if rates:
            out[f"{objective}_tokens_per_s_median"] = statistics.median(rates)
        mfus = [r["mfu"] for r in train if r["objective"] == objective and "mfu" in r][1:]
        if mfus:
            out[f"{objective}_mfu_published_peak"] = statistics.median(mfus)
            if matmul_flops:
                out[f"{objective}_mfu_measured_peak"] = round(statistics.median(mfus) * PUBLISHED_BF16 / matmul_flops, 4)
    if switches != ["clm", "mlm", "clm"]:
        out["status"] = "failed"
    return out


def part_zeroshot(check: Check, limit: float, backend: str) -> dict:
    figures_path = check.work / f"zeroshot-{backend}.json"
    cmd = [sys.executable, BENCH / "zeroshot2025.py", "--backend", backend, "--device", check.device,
           "--json", figures_path, "--eval-set", "fast"]
    if check.run_dir and (check.run_dir / "final").is_dir():
        cmd += ["--model", check.run_dir]
    if check.data:
        cmd += ["--data", check.data]
    cmd += ["--sentences", "40", "--threads", "1"] if check.dry else ["--sentences", "4000", "--repeats", "2",
                                                                        "--tolerance", "1e-3"]
    result = check.run(cmd, limit)
    if result["timed_out"]:
        raise PartFailed(f"zeroshot2025.py passed its {limit:.0f}s limit", "timed_out")
    if not figures_path.is_file():
        raise PartFailed(f"zeroshot2025.py exited {result['rc']}: {result['output'].strip().splitlines()[-1:]}")
    figures = json.loads(figures_path.read_text())
    figures["model"] = str(check.run_dir / "final") if "--model" in cmd else "random weights (no run to score)"
    if result["rc"] != 0:
        figures["status"] = "failed"
    return figures


def part_ddp(check: Check, limit: float) -> dict:
    world = 1 if check.dry else max(1, check.gpus)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    out = check.work / "ddp"
    values = {**TINY_DATA, **TINY_MODEL, "schedule": "10st_clm+10st_mlm", "train.device": check.device,
              "train.progress": "false", "train.log_every": 5, "train.eval_every": 20, "train.checkpoint_every": 20,
              "train.batch_size": 8 * world}
    backend = "gloo" if check.dry else "nccl"
    train_args = ["train", "--config", "tiny", "--out", str(out), "--force", *sets(values)]
    # One launch: each worker probes the backend, then trains through antlm's CLI.
    probe = check.checked([*launch, __file__, "--collective-probe", backend, "--then", json.dumps(train_args)],
                          limit, f"torchrun ({backend} probe, antlm train)")
    info = json.loads((out / "run_info.json").read_text())
    return {"world": world, "antlm_world_size": info.get("world_size"), "collective": backend,
            "probe": [line for line in probe["output"].splitlines() if line.startswith("all_reduce")][:1],
            "note": "a world of 1 trains without a process group; the probe exercises the backend" if world == 1 else ""}


def part_threads(check: Check, limit: float) -> dict:
    """CPU training with 2 threads under each OpenMP wait setting on this (quiet) machine: whether
    antlm's short-spin default costs anything against the runtime's own where no other process
    competes (docs/performance.md; benchmarks/wait_policy.py measures the busy case too)."""
    from antlm.threads import USER_VARIABLES

    steps, every = (12, 4) if check.dry else (120, 10)
    figures = {"steps": steps, "threads": 2, "cpu_count": os.cpu_count()}
    # antlm's default sets GOMP_SPINCOUNT itself (antlm/threads.py); the runtime's own default spins
    # 300,000 iterations. The dry run checks the command with antlm's default alone.
    policies = (("antlm_default", {}), ("passive", {"OMP_WAIT_POLICY": "PASSIVE"}),
                ("active", {"OMP_WAIT_POLICY": "ACTIVE"}), ("runtime_default", {"GOMP_SPINCOUNT": "300000"}))
    policies = policies[:1] if check.dry else policies
    values = {"train.device": "cpu", "train.threads": 2, "train.max_steps": steps, "train.log_every": every,
              "train.progress": "false", "train.eval_every": 10 ** 6, "train.checkpoint_every": 10 ** 6,
              **({**TINY_DATA, **TINY_MODEL} if check.dry else {})}
    start = time.monotonic()
    check.checked([sys.executable, "-m", "antlm", "prepare", "--config", "tiny", *sets(values)], limit / 3,
                  "antlm prepare (tiny)")  # the corpus and tokenizer once, outside the timed runs
    each = (limit - (time.monotonic() - start)) / len(policies)
    for name, policy in policies:
        out = check.work / f"threads-{name}"
        env = {k: v for k, v in check.env.items() if k not in (*USER_VARIABLES, "OMP_NUM_THREADS")}
        env.update(policy)
        check.checked([sys.executable, "-m", "antlm", "train", "--config", "tiny", "--out", out, "--force", *sets(values)],
                      each, f"tiny preset, {policy or 'antlm default'}", env)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        rates = [r["tokens_per_s"] for r in rows if r["split"] == "train"][1:]  # the first window warms up
        figures[f"{name}_tokens_per_s_median"] = statistics.median(rates) if rates else None
    return figures


def collective_probe(backend: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    value = torch.full((4,), float(rank + 1), device=device)
    dist.all_reduce(value)
    expected = world * (world + 1) / 2
    if rank == 0:
        print(f"all_reduce {backend} world {world}: {value[0].item()} (expected {expected})", flush=True)
    dist.destroy_process_group()
    if value[0].item() != expected:
        raise SystemExit(1)


# ----------------------------------------------------------------------------------------------
# Results

def write_results(check: Check) -> None:
    result = {"mode": "cpu-dry-run" if check.dry else "gpu", "budget_s": check.args.budget,
              "wall_s": round(check.args.budget - check.left(), 1), "parts": check.parts}
    (check.out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    lines = [f"# antlm GPU check ({result['mode']}), {result['wall_s']} s of a {check.args.budget:.0f} s budget", "",
             "| part | status | seconds | result |", "|---|---|---|---|"]
    for part in check.parts:
        lines.append(f"| {part['name']} | {part['status']} | {part['seconds']} | {summarize(part)} |")
    throughput = [p for p in check.parts if p["name"].startswith("throughput") and p.get("figures")]
    if throughput:
        lines += ["", "| run | objective | antlm tok/s | HF tok/s | ratio | antlm MFU | HF MFU | antlm / HF peak GPU MiB |",
                  "|---|---|---|---|---|---|---|---|"]
        for part in throughput:
            for objective, o in part["figures"]["objectives"].items():
                a, h = o["sides"]["antlm"], o["sides"].get("hf", {})
                lines.append(f"| {part['name']} | {objective} | {a['all']:.0f} | {h.get('all', 0):.0f} | "
                             f"{o['ratio'] or 0:.2f} | {a['mfu']:.3f} | {h.get('mfu', 0):.3f} | "
                             f"{a.get('peak_gpu_mib', '-')} / {h.get('peak_gpu_mib', '-')} |")
        lines.append(f"\nMFU against the {throughput[0]['figures']['mfu_against']} bf16 matmul rate.")
    (check.out / "results.md").write_text("\n".join(lines) + "\n")


def summarize(part: dict) -> str:
    f = part.get("figures") or {}
    if part.get("reason"):
        return part["reason"].replace("|", "/")
    if part["name"] == "env":
        rate = f.get("matmul_flops")
        return (f"torch {f.get('torch')}, {f.get('gpus')} GPU(s) {f.get('gpu_names')}, matmul "
                f"{rate / 1e12 if rate else 0:.1f} TFLOP/s")
    if part["name"] == "antlm_run":
        return (f"{f.get('objective_order')}, killed after step {f.get('killed_after_checkpoint')}, resume "
                f"{f.get('rule')}: {f.get('resume_ok')} (max diff {f.get('max_weight_difference', 0):.2g}); CLM "
                f"{f.get('clm_tokens_per_s_median', 0):.0f} / MLM {f.get('mlm_tokens_per_s_median', 0):.0f} tok/s")
    if part["name"].startswith("zeroshot"):
        return (f"{f.get('sentences')} sentences, antlm {f.get('antlm_sent_per_s', 0):.0f} / 2025 method "
                f"{f.get('baseline_sent_per_s', 0):.0f} sent/s ({f.get('ratio', 0):.2f}x), max diff "
                f"{f.get('max_score_difference', 0):.2g}, same choice {f.get('same_choice')}/{f.get('items')}")
    if part["name"].startswith("throughput"):
        return "; ".join(f"{k} ratio {o['ratio']:.2f}" if o["ratio"] else f"{k} {o['antlm']:.0f} tok/s"
                         for k, o in f.get("objectives", {}).items())
    if part["name"] == "threads":
        return ", ".join(f"{k.replace('_tokens_per_s_median', '')} {v:.0f}" for k, v in f.items()
                         if k.endswith("median") and v) + " tok/s (tiny, 2 CPU threads)"
    if part["name"] == "ddp":
        return f"world {f.get('world')}, {f.get('collective')}: {' '.join(f.get('probe', []))}"
    return str(f.get("summary", ""))


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", help="where results.json, results.md and gpu_check.log go")
    parser.add_argument("--cpu-dry-run", action="store_true", help="every part on CPU with tiny shapes (CI)")
    parser.add_argument("--data", help="a folder with babylm_2024_100M_snippets/ and the 2025 fast eval sets "
                                       "(default: $ANTLM_SHARED_DATA, .gpu_data, ../shared/data)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all parts (default 420; dry run 900)")
    parser.add_argument("--min-part", type=float, default=20, help="a part needs this many seconds left to start")
    parser.add_argument("--only", default="", help="comma-separated part names (a trailing * matches a prefix)")
    parser.add_argument("--steps", type=int, default=40, help="throughput steps per measurement (GPU)")
    parser.add_argument("--run-steps", type=int, default=240, help="steps of the AntLM run (GPU)")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--probe-env", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--matmul-size", type=int, default=8192, help=argparse.SUPPRESS)
    parser.add_argument("--collective-probe", help=argparse.SUPPRESS)
    parser.add_argument("--then", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_env:
        print(json.dumps(probe_env(args.matmul_size)))
        return 0
    if args.collective_probe:
        collective_probe(args.collective_probe)
        if args.then:
            from antlm.cli import main as antlm_main

            return antlm_main(json.loads(args.then))
        return 0
    if not args.out_dir:
        parser.error("give the results folder: gpu_check.sh OUT_DIR")
    if args.data and not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder (scripts/gpu_bundle.sh makes .gpu_data)")
    args.budget = args.budget or (900.0 if args.cpu_dry_run else 420.0)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    check = Check(args)
    dry, no_corpus = check.dry, None if (check.dry or check.corpus) else (
        f"no {CORPUS_NAME}/ under --data (run scripts/gpu_bundle.sh and carry .gpu_data)")
    check.say(f"antlm GPU check: {'CPU dry run' if dry else 'GPU'}, budget {args.budget:.0f}s, data {check.data}, "
              f"scratch {check.work}")
    check.part("env", 90, lambda limit: part_env(check, limit))
    no_gpu = None if dry or check.gpus else "no CUDA device"
    check.part("tests_cuda", 120, lambda limit: part_tests_cuda(check, limit), no_gpu)
    check.part("throughput_babyllama", 60, lambda limit: part_throughput(check, limit, "babyllama-clm-24", {}),
               no_gpu or no_corpus)
    check.part("antlm_run", 100, lambda limit: part_antlm_run(check, limit), no_gpu or no_corpus)
    for backend in ("causal", "mntp"):
        check.part(f"zeroshot_{backend}", 60, lambda limit, b=backend: part_zeroshot(check, limit, b), no_gpu)
    check.part("ddp", 60, lambda limit: part_ddp(check, limit), no_gpu)
    check.part("throughput_ltgbert", 45, lambda limit: part_throughput(check, limit, "ltgbert-mlm-72", {}, baseline="none"),
               no_gpu or no_corpus)
    check.part("throughput_babyllama_compile", 150,
               lambda limit: part_throughput(check, limit, "babyllama-clm-24", {}, compile_=True),
               no_gpu or no_corpus or ("dry run: compiling costs ~40 s on CPU; tests/test_bf16_rehearsal.py "
                                       "(slow) checks compile against eager" if dry else None))
    check.part("throughput_ltg_shape", 60, lambda limit: part_throughput(check, limit, "babyllama-clm-24", LTG_SHAPE),
               no_gpu or no_corpus)
    check.part("threads", 90, lambda limit: part_threads(check, limit), None if dry or check.gpus else no_gpu)
    gpu_env = dict(check.env, ANTLM_TEST_DEVICE="cuda")
    check.part("tests_gpu", 90, lambda limit: part_tests(check, limit, ["tests/test_bf16_rehearsal.py"], gpu_env),
               no_gpu or ("dry run: CI runs these on CPU" if dry else None))
    xdist = ["-n", str(min(8, os.cpu_count() or 1))] if not dry and _has("xdist") else []
    # No registry there: a test that would make a venv (test_export_hf4) must fail fast and skip, not wait on the network.
    offline = dict(check.env, PIP_NO_INDEX="1", UV_OFFLINE="1")
    check.part("tests_quick", 600, lambda limit: part_tests(check, limit, ["-m", "not slow and not cuda", "-x", *xdist],
                                                             offline),
               "dry run: CI runs the suite itself" if dry else no_gpu)
    write_results(check)
    failed = [p["name"] for p in check.parts if p["status"] in ("failed", "timed_out")]
    skipped = [p["name"] for p in check.parts if p["status"] == "skipped"]
    check.say(f"results: {check.out / 'results.json'}, {check.out / 'results.md'}; "
              f"failed: {', '.join(failed) or 'none'}; skipped: {', '.join(skipped) or 'none'}")
    return 1 if failed else 0


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        sys.stderr.write(f"gpu_check: error: {message} (see --help)\n")
        raise SystemExit(2)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
