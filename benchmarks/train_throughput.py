#!/usr/bin/env python
"""Training throughput: antlm's loop against `transformers` LlamaForCausalLM + HF `Trainer`.

Both sides train the same BabyLlama configuration (default: the CPU preset
antlm/presets/babyllama-clm-24-cpu.yaml) on the same blocks (tokenized once with antlm's pipeline,
`prepare_data`, and fed in the same order), with the same batch size, sequence length, AdamW
hyper-parameters (lr, betas, eps, weight decay), warmup + cosine-to-min-lr schedule, gradient
clipping and number of steps, from the same initial weights (antlm's init copied into the HF model
with the export helpers). The baseline keeps Trainer's default AdamW implementation (the fused
kernel with torch >= 2.8) unless `--baseline-optim` says otherwise. CLM and MLM phases are
measured separately:

* antlm:   `antlm.train.loop.train` with schedule `<N>st_clm`, then `<N>st_mlm` in a second run.
* HF CLM:  `LlamaForCausalLM` + `Trainer`, labels = input_ids (the model shifts internally).
* HF MLM:  the same model made bidirectional (`is_causal = False` on every attention module; checked
           below: changing the last token changes the first position's logits), 15% masking 80/10/10
           done by a DataCollatorForLanguageModeling-style collator, labels -100 at unmasked
           positions, loss over the full [B, T, V] logits. With LlamaForCausalLM's shifted loss a
           masked token k is predicted at position k-1: the MNTP alignment antlm's BabyLlama uses
           (mlm.target_offset=1), so both sides train the same objective.

Timing. Data preparation (corpus, tokenizer, token store) runs once in the parent before any
measurement and is excluded; each measurement runs in a fresh subprocess (so peak memory is its
own and no side inherits the other's allocator or thread state), and process startup, imports and
model construction are outside the timed region. The first `--warmup` steps are excluded on both
sides. antlm is timed from its own metrics.jsonl: the loop writes one row every train.log_every
steps (`--log-every`, default 1) with `tokens_per_s` measured from the end of the previous row to
just before the row is written; we drop the rows up to step `warmup` and sum the others (tokens /
tokens_per_s gives each window's seconds). That excludes the loop's final dev evaluation,
checkpoint and `final/` export, which the loop always runs at the last step *after* writing that
step's row (eval_every and checkpoint_every are set past the run, so no other step evaluates or
checkpoints). The HF side is
timed by a TrainerCallback that takes timestamps in `on_step_end` every `log_every` steps and at the
last step, from step `warmup` on: the same steps (warmup+1 .. N) in the same windows, each including
its data loading, forward, backward, clipping, optimizer and scheduler step, and Trainer's logging
(logging_steps = log_every, as antlm's); Trainer's own setup and teardown fall outside. Tokens
are counted as batch x seq_len per step on both sides. The reported tokens/s is over all timed
steps (`--stat all`); the median and best window are printed as a noise check: on a shared
machine, slow windows are mostly other processes' work, and `--stat median` puts the median window
into the RESULT lines instead.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py
      [--quick] [--steps 60] [--preset NAME] [--set key=value ...] [--device cpu|cuda] [--repeats R]
The last two lines are `RESULT train_clm antlm=<tok/s> baseline=<tok/s> ratio=<x>` and the same for
train_mlm (ratio = antlm / baseline; > 1 means antlm is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_PRESET = "babyllama-clm-24-cpu"
SHARED_CORPUS = REPO.parent / "shared" / "data" / "babylm_2024_100M_snippets"
# --quick: a smaller model (vocabulary, batch and sequence length stay as configured).
QUICK_MODEL = {"model.hidden_size": 64, "model.num_layers": 2, "model.num_heads": 4, "model.ffn_size": 192}
WORKER_TAG = "BENCH_WORKER_RESULT "
OBJECTIVES = ("clm", "mlm")


def _quiet(*_args, **_kwargs) -> None:
    pass


# ----------------------------------------------------------------------------------------------
# Configuration shared by both sides

def base_overrides(args) -> list[str]:
    """The overrides every measurement uses; the user's --set come last and win."""
    user_keys = {item.split("=", 1)[0].strip() for item in args.set}
    out = []
    if "data.corpus" not in user_keys:
        out.append(f"data.corpus={SHARED_CORPUS if SHARED_CORPUS.is_dir() else 'embedded'}")
    if args.quick:
        out += [f"{k}={v}" for k, v in QUICK_MODEL.items() if k not in user_keys]
    out += [
        f"train.threads={args.threads}", f"train.device={args.device}", "train.precision=auto",
        "train.progress=false", f"train.compile={'true' if args.compile else 'false'}", f"train.log_every={args.log_every}",
        f"train.eval_every={args.steps + 1}", f"train.checkpoint_every={args.steps + 1}",
        "train.keep_checkpoints=1",
    ]
    return out + list(args.set)


def run_config(spec: dict):
    from antlm.config import build_config

    return build_config(spec["preset"], spec["overrides"] + [f"schedule={spec['steps']}st_{spec['objective']}"])


# ----------------------------------------------------------------------------------------------
# Memory

def _vm_hwm_mib():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_memory(device) -> float:
    """Reset the peak counters; returns the process's peak RSS so far (MiB)."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _vm_hwm_mib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:  # Linux >= 4.0: "5" resets the peak resident set size (VmHWM, and ru_maxrss with it)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return before


def peak_memory(device, before: float) -> dict:
    """Peak RSS from the reset to now (where /proc allows the reset; else the whole process's)."""
    import torch

    train_peak = _vm_hwm_mib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"peak_rss_mib": round(max(before, train_peak), 1), "train_peak_rss_mib": round(train_peak, 1)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


# ----------------------------------------------------------------------------------------------
# antlm side

def measure_antlm(spec: dict) -> dict:
    from antlm.train.device import pick_device
    from antlm.train.loop import train
    from antlm.train.setup import prepare_data

    cfg = run_config(spec)
    device = pick_device(cfg.train.device)
    prepare_data(cfg, None, _quiet)  # warm the cache reads so both sides start from loaded data
    out = Path(spec["out"]) / f"antlm-{spec['objective']}"
    before = reset_peak_memory(device)
    train(cfg, out, force=True, log=_quiet)
    memory = peak_memory(device, before)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["split"] == "train"]
    tokens_per_step = cfg.train.batch_size * cfg.data.seq_len
    windows, previous = [], 0  # (steps, seconds) of each timed log window
    for row in rows:
        window_steps = row["step"] - previous
        previous = row["step"]
        if row["step"] > spec["warmup"]:
            windows.append((window_steps, window_steps * tokens_per_step / row["tokens_per_s"]))
    result = summarize(windows, tokens_per_step, rows[-1]["loss"], memory)
    result["optimizer"] = optimizer_kind(cfg, device)
    return result


def optimizer_kind(cfg, device) -> str:
    """Which implementation antlm's build_optimizer picks here (probed on a dummy parameter)."""
    import torch

    from antlm.train.optim import build_optimizer

    defaults = getattr(build_optimizer(torch.nn.Linear(2, 2).to(device), cfg.optim, device), "defaults", {})
    kind = "fused" if defaults.get("fused") else "foreach" if defaults.get("foreach") else "per-parameter loop"
    return f"{cfg.optim.name} ({kind})" if cfg.optim.name == "adamw" else cfg.optim.name


def summarize(windows: list, tokens_per_step: int, final_loss: float, memory: dict) -> dict:
    import torch

    steps = sum(n for n, _ in windows)
    seconds = sum(t for _, t in windows)
    return {"tokens_per_s": steps * tokens_per_step / seconds, "timed_steps": steps, "seconds": seconds,
            "window_tokens_per_s": [n * tokens_per_step / t for n, t in windows],
            "final_loss": final_loss, "threads": torch.get_num_threads(), **memory}


# ----------------------------------------------------------------------------------------------
# transformers side

def step_blocks(cfg, data, steps: int):
    """The input blocks antlm's loop feeds at steps 0..steps-1, in its order: [steps*B, T] int64."""
    import numpy as np
    import torch

    from antlm.data import tokenizer as tok_lib
    from antlm.data.batches import BatchMaker

    batch = cfg.train.batch_size
    steps_per_epoch = len(data.train) // batch
    maker = BatchMaker(cfg, data.train, tok_lib.special_ids(data.tokenizer), data.tokenizer.get_vocab_size(), steps)
    inputs = [data.train.blocks(maker.positions(step, batch, steps_per_epoch))[0] for step in range(steps)]
    return torch.from_numpy(np.concatenate(inputs))


class BlockDataset:  # a plain torch-style map dataset (torch.utils.data.Dataset protocol)
    def __init__(self, blocks, with_labels: bool):
        self.blocks, self.with_labels = blocks, with_labels

    def __len__(self) -> int:
        return self.blocks.size(0)

    def __getitem__(self, index: int) -> dict:
        row = self.blocks[index]
        return {"input_ids": row, "labels": row} if self.with_labels else {"input_ids": row}


class MlmCollator:
    """What DataCollatorForLanguageModeling(mlm=True) does: each non-special token is selected with
    probability mask_rate; selected ones become <mask> (80%), a random ordinary token (10%) or stay;
    labels are the original ids at selected positions and -100 elsewhere."""

    def __init__(self, mlm_cfg, mask_id: int, num_special: int, vocab_size: int, seed: int):
        import torch

        self.rate = mlm_cfg.mask_rate
        self.replace_mask, self.replace_random = mlm_cfg.replace_mask, mlm_cfg.replace_random
        self.mask_id, self.num_special, self.vocab_size = mask_id, num_special, vocab_size
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        g = self.generator
        ids = torch.stack([f["input_ids"] for f in features])
        labels = ids.clone()
        probability = torch.full(ids.shape, self.rate)
        probability.masked_fill_(ids < self.num_special, 0.0)
        selected = torch.bernoulli(probability, generator=g).bool()
        labels[~selected] = -100
        ids = ids.clone()
        to_mask = torch.bernoulli(torch.full(ids.shape, self.replace_mask), generator=g).bool() & selected
        ids[to_mask] = self.mask_id
        rest = self.replace_random / max(1e-9, 1.0 - self.replace_mask)
        to_random = torch.bernoulli(torch.full(ids.shape, min(1.0, rest)), generator=g).bool() & selected & ~to_mask
        ids[to_random] = torch.randint(self.num_special, self.vocab_size, ids.shape, generator=g)[to_random]
        return {"input_ids": ids, "labels": labels}


def is_bidirectional(model, vocab_size: int) -> bool:
    """Changing the last token must change the first position's logits."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.randint(8, vocab_size, (2, 16), device=device)
    y = x.clone()
    y[:, -1] = 8 + (y[:, -1] - 8 + 1) % (vocab_size - 8)
    with torch.no_grad():
        diff = (model(input_ids=x).logits[:, 0].float() - model(input_ids=y).logits[:, 0].float()).abs().max().item()
    model.train(was_training)
    return diff > 1e-6


def build_hf_model(cfg, tokenizer, bidirectional: bool):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from antlm.export.hf import llama_config, llama_state_dict
    from antlm.models import build_model

    class BidirectionalLlamaForCausalLM(LlamaForCausalLM):
        """LlamaForCausalLM whose attention sees the whole sequence (no causal mask)."""

        def __init__(self, config):
            super().__init__(config)
            for layer in self.model.layers:
                layer.self_attn.is_causal = False
            self.explicit_mask = False

        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            if self.explicit_mask and attention_mask is None:
                # Fallback for a transformers that would build a causal mask anyway: a 4D additive
                # mask of zeros is passed through unchanged and lets every query see every key.
                batch, length = input_ids.shape
                attention_mask = torch.zeros(batch, 1, length, length, device=input_ids.device,
                                             dtype=self.model.embed_tokens.weight.dtype)
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    values = llama_config(cfg.model, tokenizer)
    values["use_cache"] = False  # training: no KV cache to fill
    config = LlamaConfig(**values)
    config._attn_implementation = "sdpa"
    model = (BidirectionalLlamaForCausalLM if bidirectional else LlamaForCausalLM)(config)
    # antlm's initial weights: the loop seeds with train.seed right before build_model.
    torch.manual_seed(cfg.train.seed)
    reference = build_model(cfg.model)
    missing, unexpected = model.load_state_dict(llama_state_dict(reference), strict=False)
    if unexpected or any("rotary" not in key for key in missing):
        raise RuntimeError(f"weight mapping failed: missing {missing}, unexpected {unexpected}")
    if bidirectional and not is_bidirectional(model, cfg.model.vocab_size):
        model.explicit_mask = True
        if not is_bidirectional(model, cfg.model.vocab_size):
            raise RuntimeError("could not make LlamaForCausalLM bidirectional")
    return model


def measure_hf(spec: dict) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from antlm.data import tokenizer as tok_lib
    from antlm.train.device import pick_device
    from antlm.train.setup import prepare_data

    cfg = run_config(spec)
    device = pick_device(cfg.train.device)
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    data = prepare_data(cfg, None, _quiet)
    vocab_size = data.tokenizer.get_vocab_size()
    cfg.model.vocab_size = vocab_size
    steps, warmup, objective = spec["steps"], spec["warmup"], spec["objective"]
    blocks = step_blocks(cfg, data, steps)
    special = tok_lib.special_ids(data.tokenizer)
    if objective == "clm":
        dataset, collator = BlockDataset(blocks, with_labels=True), None  # default_data_collator
    else:
        dataset = BlockDataset(blocks, with_labels=False)
        collator = MlmCollator(cfg.mlm, special["mask"], len(tok_lib.SPECIAL_TOKENS), vocab_size, cfg.train.seed)
    model = build_hf_model(cfg, data.tokenizer, bidirectional=objective == "mlm")

    cuda = device.type == "cuda"
    optim = cfg.optim
    warmup_lr = optim.warmup_steps if optim.warmup_steps is not None else int(round(optim.warmup_fraction * steps))
    args = TrainingArguments(
        output_dir=str(Path(spec["out"]) / f"hf-{objective}"),
        per_device_train_batch_size=cfg.train.batch_size, max_steps=steps,
        learning_rate=optim.lr, weight_decay=optim.weight_decay, adam_beta1=optim.beta1, adam_beta2=optim.beta2,
        adam_epsilon=optim.eps, max_grad_norm=optim.grad_clip, warmup_steps=warmup_lr,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": optim.min_lr_ratio},
        logging_strategy="steps", logging_steps=cfg.train.log_every, report_to=[], save_strategy="no",
        eval_strategy="no", dataloader_num_workers=0, use_cpu=not cuda, bf16=cuda, seed=cfg.train.seed,
        train_sampling_strategy="sequential", remove_unused_columns=False, disable_tqdm=True,
        # None: Trainer's default AdamW (adamw_torch_fused with torch >= 2.8, on CPU too; which one
        # antlm uses is printed with its result). `--baseline-optim adamw_torch` gives the baseline
        # torch's per-parameter loop instead.
        **({"optim": spec["baseline_optim"]} if spec.get("baseline_optim") else {}),
        torch_compile=bool(spec.get("compile")),
    )

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.marks, self.losses = {}, []

        def on_step_end(self, args, state, control, **kwargs):
            # The ends of the same log windows as antlm's metrics rows.
            if state.global_step % cfg.train.log_every == 0 or state.global_step == state.max_steps:
                if cuda:
                    torch.cuda.synchronize()
                self.marks[state.global_step] = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    timer = StepTimer()
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=[timer])
    before = reset_peak_memory(device)
    trainer.train()
    memory = peak_memory(device, before)
    marks = sorted((step, t) for step, t in timer.marks.items() if step >= warmup)
    windows = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])]
    final_loss = timer.losses[-1] if timer.losses else float("nan")
    result = summarize(windows, cfg.train.batch_size * cfg.data.seq_len, final_loss, memory)
    result["optimizer"] = str(getattr(args.optim, "value", args.optim))
    return result


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    return (measure_antlm if spec["side"] == "antlm" else measure_hf)(spec)


# ----------------------------------------------------------------------------------------------
# Parent: data preparation, one subprocess per measurement, report

def run_measurement(spec: dict, in_process: bool) -> dict:
    if in_process:
        return worker(spec)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_TAG):
            return json.loads(line[len(WORKER_TAG):])
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    raise SystemExit(f"{spec['side']} {spec['objective']} measurement failed (exit {proc.returncode}):\n{tail}")


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="config preset name or YAML path")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 60; --quick 20)")
    parser.add_argument("--warmup", type=int, default=5, help="steps excluded from timing on both sides")
    parser.add_argument("--log-every", type=int, default=1, help="log (and timing) window in steps, both sides")
    parser.add_argument("--stat", default="all", choices=("all", "median"),
                        help="RESULT tokens/s: over all timed steps, or the median log window")
    parser.add_argument("--quick", action="store_true", help="20 steps with a small model (about 2 minutes on CPU)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: bf16 autocast on both sides")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads on both sides")
    parser.add_argument("--repeats", type=int, default=1, help="measure each side this many times (median reported)")
    parser.add_argument("--baseline-optim", default=None,
                        help="TrainingArguments.optim for the baseline (default: Trainer's default, adamw_torch_fused)")
    parser.add_argument("--objectives", default="clm,mlm", help="comma-separated subset of clm,mlm")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile on both sides (antlm train.compile=true, TrainingArguments.torch_compile)")
    parser.add_argument("--baseline", default="hf", choices=("hf", "none"),
                        help="none: antlm alone (a backbone transformers has no Trainer model for, e.g. ltgbert)")
    parser.add_argument("--json", default=None, help="also write the figures (per side: tokens/s, memory, FLOPs) here")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process instead of one subprocess each (peak memory is then shared)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 20 if args.quick else 60
    if args.warmup < 1 or args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must be larger than --warmup ({args.warmup}), which must be >= 1")
    if args.log_every < 1 or args.warmup % args.log_every:
        parser.error(f"--log-every ({args.log_every}) must divide --warmup ({args.warmup})")
    args.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if not args.objectives or any(o not in OBJECTIVES for o in args.objectives):
        parser.error("--objectives must be a subset of clm,mlm")
    return args


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker is not None:
        result = worker(json.loads(args.worker))
        print(WORKER_TAG + json.dumps(result), flush=True)
        return result

    import torch

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    try:
        import transformers
    except ImportError:
        raise SystemExit("the baseline needs transformers (and accelerate for Trainer)") from None

    from antlm.config import build_config
    from antlm.train.setup import prepare_data

    overrides = base_overrides(args)
    cfg = build_config(args.preset, overrides)  # validates the overrides before any work
    start = time.perf_counter()
    data = prepare_data(cfg, None, lambda msg: print(f"  [data] {msg}", flush=True))
    needed = args.steps * cfg.train.batch_size
    if len(data.train) < needed:
        print(f"  note: {len(data.train)} train blocks < {needed} needed; the runs wrap into a second epoch")
    cfg.model.vocab_size = data.tokenizer.get_vocab_size()
    m = cfg.model
    params = (m.vocab_size * m.hidden_size * 2 + m.num_layers * (4 * m.hidden_size**2 + 3 * m.hidden_size * m.ffn_size
                                                                    + 2 * m.hidden_size) + m.hidden_size)
    print(f"data: {data.corpus.root} ({len(data.train):,} blocks of {cfg.data.seq_len}), prepared in "
          f"{time.perf_counter() - start:.1f}s (excluded)")
    print(f"model: {m.backbone} hidden {m.hidden_size}, {m.num_layers} layers, {m.num_heads} heads, ffn {m.ffn_size}, "
          f"vocab {m.vocab_size}, {params:,} parameters; batch {cfg.train.batch_size} x seq {cfg.data.seq_len}; "
          f"{args.steps} steps, first {args.warmup} excluded; device {args.device}, {args.threads} threads, "
          f"{'bf16 autocast' if args.device == 'cuda' else 'fp32'}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}", flush=True)
    load_start = _load()
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5
    print(f"machine: {os.cpu_count()} CPUs, load average {load_start}"
          + (" - other processes are running: timings will be noisy" if busy else ""), flush=True)

    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="antlm-bench-")
        out_root = tmp.name
    else:
        out_root = args.out
        Path(out_root).mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        for objective in args.objectives:
            for repeat in range(args.repeats):
                # Alternate the order between repeats so slow drift in machine load hits both sides.
                sides = ("antlm", "hf") if repeat % 2 == 0 else ("hf", "antlm")
                for side in (s for s in sides if s == "antlm" or args.baseline == "hf"):
                    spec = {"side": side, "objective": objective, "preset": args.preset, "overrides": overrides,
                            "steps": args.steps, "warmup": args.warmup, "threads": args.threads, "out": out_root,
                            "baseline_optim": args.baseline_optim, "compile": args.compile}
                    result = run_measurement(spec, args.in_process)
                    results.setdefault((side, objective), []).append(result)
                    print(f"  {side:5s} {objective}: {result['tokens_per_s']:9.0f} tok/s "
                          f"({result['timed_steps']} steps in {result['seconds']:.2f}s, {result['threads']} threads, "
                          f"{result['optimizer']}, final loss "
                          f"{result['final_loss']:.3f}, train peak RSS {result['train_peak_rss_mib']:.0f} MiB)",
                          flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()

    def summary(side: str, objective: str) -> dict:
        runs = results[(side, objective)]
        windows = [w for r in runs for w in r["window_tokens_per_s"]]
        out = {"all": statistics.median(r["tokens_per_s"] for r in runs), "median": statistics.median(windows),
               "best": max(windows), "timed_steps": runs[0]["timed_steps"]}
        for key in ("peak_rss_mib", "train_peak_rss_mib", "peak_gpu_mib"):
            if key in runs[0]:
                out[key] = max(r[key] for r in runs)
        return out

    cuda = args.device == "cuda"
    header = (f"{'tool':<22} {'objective':<9} {'tokens/s':>10} {'window med':>10} {'window best':>11} "
              f"{'peak RSS MiB':>13} {'train peak MiB':>15}" + (f" {'GPU peak MiB':>13}" if cuda else "")
              + f" {'steps':>11}")
    print()
    print(header)
    print("-" * len(header))
    names = {"antlm": "antlm", "hf": "transformers Trainer"}
    sides = ("antlm", "hf") if args.baseline == "hf" else ("antlm",)
    for objective in args.objectives:
        for side in sides:
            s = summary(side, objective)
            line = (f"{names[side]:<22} {objective:<9} {s['all']:>10.0f} {s['median']:>10.0f} {s['best']:>11.0f} "
                    f"{s['peak_rss_mib']:>13.0f} {s['train_peak_rss_mib']:>15.0f}")
            if cuda:
                line += f" {s.get('peak_gpu_mib', float('nan')):>13.0f}"
            print(line + f" {s['timed_steps']:>5}/{args.steps:<5}")
    print(f"load average now {_load()} (was {load_start} at the start)")
    print(f"(tokens/s: median of {args.repeats} run(s) of all timed steps ({args.warmup + 1}..{args.steps}), "
          f"batch x seq_len per step; window med/best: over the {args.log_every}-step log windows of all runs, "
          "a noise check; "
          "peak RSS: whole worker process; train peak: resident peak from just before training started"
          + ("; --in-process: one process for all, so memory numbers overlap" if args.in_process else "") + ")")
    if args.stat == "median":
        print("(RESULT lines: median log window, --stat median)")
    print()
    from antlm.train.device import train_flops_per_token

    report = {}
    for objective in args.objectives:
        antlm_tps = summary("antlm", objective)[args.stat]
        base_tps = summary("hf", objective)[args.stat] if args.baseline == "hf" else None
        report[objective] = {"antlm": antlm_tps, "baseline": base_tps, "ratio": antlm_tps / base_tps if base_tps else None}
    for objective, r in report.items():
        if r["baseline"] is None:
            print(f"RESULT train_{objective} antlm={r['antlm']:.0f} baseline=none", flush=True)
        else:
            print(f"RESULT train_{objective} antlm={r['antlm']:.0f} baseline={r['baseline']:.0f} ratio={r['ratio']:.2f}",
                  flush=True)
    if args.json:
        # FLOPs per token of the useful work (the head at the masked fraction for MLM), the same
        # count for both sides, so that tokens/s x FLOPs per token / a peak rate is each side's MFU.
        head = {"clm": 1.0, "mlm": cfg.mlm.mask_rate}
        figures = {"preset": args.preset, "overrides": overrides, "device": args.device, "compile": args.compile,
                   "steps": args.steps, "warmup": args.warmup, "parameters": params, "backbone": m.backbone,
                   "stat": args.stat, "objectives": {}}
        for objective in args.objectives:
            figures["objectives"][objective] = {
                **report[objective], "flops_per_token": train_flops_per_token(cfg, head[objective]),
                "sides": {side: summary(side, objective) for side in sides}}
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return report


if __name__ == "__main__":
    main()
