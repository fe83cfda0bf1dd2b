"""`antlm eval`: the BabyLM 2024 suite for one model, with causal, masked or hybrid scoring.

Modes (recorded in every results file):
- `babylm2024` reproduces the official 2024 pipeline's choices, quirks included:
  1. ties count as correct (lm-eval takes the argmax over [good, bad] and the first index wins a tie);
  2. causal, empty context (BLiMP, supplement): the sentence is scored after `<s>`;
  3. causal, with a context (EWoK): the context is encoded without `<s>` (lm-eval adds no BOS for causal
     models) and only the target's tokens are scored;
  4. masked models: PLL with the `mean` reduction (per-token average, not the sum);
  5. masked models: the text scored is minicons' join of the context (the EOS string when empty) and
     " " + target with another space, `"</s>  " + sentence`; the lone space token that the double space
     makes is scored and counted in the mean.
- `clean` drops the quirks: ties count as wrong, `<s>` before every context, PLL `sum`, no EOS context.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from antlm.data.tokenizer import EOS
from antlm.errors import UserError
from antlm.eval import scoring
from antlm.eval.tasks import ZERO_SHOT_TASKS, Item, detect_layout, load_task
from antlm.model_io import load_model

BACKENDS = ("causal", "mlm", "hybrid")
MODES = ("babylm2024", "clean")
MACRO_PARTS = ("blimp", "blimp_supplement", "ewok", "glue")


@dataclass
class EvalOptions:
    tasks: list[str]
    backend: str = "causal"
    mode: str = "babylm2024"
    variant: str = "original"
    reduction: Optional[str] = None  # None: the mode's default for each backend
    limit: Optional[int] = None
    batch_tokens: int = 16384
    device: str = "cpu"
    progress: bool = False
    glue: dict = field(default_factory=dict)  # GlueSettings overrides
    glue_tasks: Optional[list[str]] = None  # None: all seven
    glue_backends: Optional[list[str]] = None  # hybrid: fine-tune GLUE under these backends only (None: both)
    overlong: Optional[str] = None  # items longer than the window; None: the mode's rule (overlong_for)


def overlong_for(options: EvalOptions, backend: str) -> str:
    """babylm2024 causal: lm-eval's window (the last max_len + 1 tokens, what remains of the target is
    scored); otherwise antlm's rule: cut context from the left, an item whose target does not fit is an
    error that names it. `--overlong` overrides (skip: such items are left out and counted)."""
    if options.overlong:
        return options.overlong
    return "window" if (backend == "causal" and options.mode == "babylm2024") else "context"


def reduction_for(options: EvalOptions, backend: str) -> str:
    if options.reduction:
        return options.reduction
    return "mean" if (backend == "mlm" and options.mode == "babylm2024") else "sum"


def score_items(model, tokenizer, items: list[Item], backend: str, options: EvalOptions, progress=None,
                log: Callable = print, stats: Optional[dict] = None) -> list[tuple[float, float]]:
    """(good, bad) scores per item; NaN where the over-long policy skipped a sentence. `stats`, when
    given, receives the policy and how many inputs were cut or skipped."""
    compat = options.mode == "babylm2024"
    requests = []
    for item in items:
        for text in (item.good, item.bad):
            if backend == "causal":
                requests.append(scoring.encode_causal(tokenizer, item.context, text, bos_before_context=not compat))
            else:
                if compat:
                    # The 2024 pipeline hands minicons the context (EOS when empty) and " " + text,
                    # and minicons joins them with another " ": the text is "<ctx>  <text>", and the
                    # lone space token this makes is scored with the target.
                    requests.append(scoring.encode_masked(tokenizer, item.context or EOS, "  " + text))
                else:
                    requests.append(scoring.encode_masked(tokenizer, item.context, text))
    policy = overlong_for(options, backend)
    describe = lambda index: f"item {items[index // 2].id} ({'good' if index % 2 == 0 else 'bad'} sentence)"  # noqa: E731
    fitted = scoring.fit_length(requests, model.cfg.max_seq_len, policy, shift=int(backend == "causal"), describe=describe)
    if fitted.cut or fitted.skipped:
        log(f"warning: {fitted.cut + len(fitted.skipped)} of {len(requests)} {backend} inputs were longer than "
            f"max_seq_len={model.cfg.max_seq_len}: {fitted.cut} cut ({policy}), {len(fitted.skipped)} skipped")
    if stats is not None:
        stats.update(policy=policy, inputs_cut=fitted.cut, inputs_skipped=len(fitted.skipped))
    if backend == "causal":
        values = scoring.causal_scores(model, requests, options.batch_tokens, progress, overlong=policy)
    else:
        offset = model.antlm_config["mlm_target_offset"]
        values = scoring.pll_scores(model, requests, scoring.mask_id_of(tokenizer), offset, options.variant,
                                    reduction_for(options, backend), options.batch_tokens, progress, overlong=policy)
    return [(values[2 * i], values[2 * i + 1]) for i in range(len(items))]


def _progress_bar(total: int, label: str, enabled: bool):
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="row", dynamic_ncols=True)
    return bar, bar.update


def evaluate_zero_shot(model, tokenizer, data_dir: Path, backend: str, options: EvalOptions, log: Callable) -> tuple[dict, dict]:
    """(scores, predictions) for the zero-shot tasks asked for."""
    ties_win = options.mode == "babylm2024"
    scores, predictions = {}, {}
    for task in [t for t in options.tasks if t in ZERO_SHOT_TASKS]:
        start = time.perf_counter()
        subtasks = load_task(data_dir, task, options.limit)
        items = [item for name in subtasks for item in subtasks[name]]
        bar, update = _progress_bar(len(items) * 2, f"{task} ({backend})", options.progress)
        overlong: dict = {}
        pairs = score_items(model, tokenizer, items, backend, options, update, log, overlong)
        if bar:
            bar.close()
        result, preds, cursor, skipped = {}, {}, 0, 0
        for name, subtask_items in subtasks.items():
            chunk = pairs[cursor:cursor + len(subtask_items)]
            cursor += len(subtask_items)
            # An item with a skipped sentence (NaN) is left out of its subtask's accuracy.
            scored = [(item, (g >= b) if ties_win else (g > b)) for item, (g, b) in zip(subtask_items, chunk)
                      if not (math.isnan(g) or math.isnan(b))]
            skipped += len(subtask_items) - len(scored)
            result[name] = 100.0 * sum(ok for _, ok in scored) / max(1, len(scored))
            preds[name] = {"predictions": [{"id": item.id, "pred": item.good if ok else item.bad} for item, ok in scored]}
        seconds = time.perf_counter() - start
        scores[task] = {"score": sum(result.values()) / len(result), "subtasks": result, "items": len(items),
                        "overlong": {**overlong, "items_skipped": skipped}, "seconds": round(seconds, 1)}
        predictions[task] = preds
        log(f"{task} [{backend}]: {scores[task]['score']:.2f} over {len(result)} subtasks, {len(items)} items, {seconds:.0f}s")
    return scores, predictions


def macro_average(task_scores: dict, glue: Optional[dict]) -> dict:
    parts = dict(task_scores)
    if glue and glue.get("score") is not None:
        parts["glue"] = glue
    missing = [p for p in MACRO_PARTS if p not in parts]
    if missing:
        return {"macro": None, "missing": missing}
    out = {"macro": sum(parts[p]["score"] for p in MACRO_PARTS) / len(MACRO_PARTS), "missing": []}
    if glue.get("tasks_not_run"):
        out["note"] = f"GLUE averaged over the tasks that ran; not run: {', '.join(glue['tasks_not_run'])}"
    return out


def _glue_summary(entries: dict) -> dict:
    ran = {t: e for t, e in entries.items() if e.get("status") == "ok"}
    return {
        "score": sum(e["score"] for e in ran.values()) / len(ran) if ran else None,
        "tasks": {t: {k: v for k, v in e.items() if k != "predictions"} for t, e in entries.items()},
        "tasks_not_run": [t for t in entries if t not in ran],
    }


def run_eval(model_path: Path, data_dir: Path, options: EvalOptions, log: Callable = print) -> dict:
    if options.backend not in BACKENDS:
        raise UserError(f"unknown backend '{options.backend}' (causal, mlm or hybrid)")
    if options.mode not in MODES:
        raise UserError(f"unknown mode '{options.mode}' (babylm2024 or clean)")
    layout = detect_layout(data_dir)
    model, tokenizer = load_model(model_path, options.device)
    backends = ["causal", "mlm"] if options.backend == "hybrid" else [options.backend]
    results = {
        "model": str(model_path), "backbone": model.antlm_config["backbone"], "data": str(data_dir),
        "layout": layout, "mode": options.mode, "backend": options.backend, "variant": options.variant,
        "limit": options.limit, "tasks": options.tasks, "results": {}, "complete": False,
        "overlong": {b: overlong_for(options, b) for b in backends},
    }
    submission: dict = {}
    for backend in backends:
        entry = {"reduction": reduction_for(options, backend), "variant": options.variant if backend == "mlm" else None}
        task_scores, predictions = evaluate_zero_shot(model, tokenizer, data_dir, backend, options, log)
        entry["tasks"] = task_scores
        glue = None
        if "glue" in options.tasks and (options.glue_backends is None or backend in options.glue_backends):
            from antlm.eval.glue import GLUE_TASKS, GlueSettings, run_glue

            settings = GlueSettings(**options.glue)
            glue_tasks = options.glue_tasks or list(GLUE_TASKS)
            glue_entries = run_glue(model_path, data_dir, glue_tasks, backend, settings, options.device, log, options.progress)
            glue = _glue_summary(glue_entries)
            entry["tasks"]["glue"] = glue
            predictions["glue"] = {t: {"predictions": e["predictions"]} for t, e in glue_entries.items() if e.get("status") == "ok"}
        entry.update(macro_average(task_scores, glue))
        results["results"][backend] = entry
        submission[backend] = predictions
    reduced_glue = any(k in options.glue for k in ("train_limit", "eval_limit", "max_epochs")) or options.glue_tasks
    skipped_items = sum(t.get("overlong", {}).get("items_skipped", 0) for e in results["results"].values()
                        for t in e["tasks"].values())
    results["complete"] = options.limit is None and not ("glue" in options.tasks and reduced_glue) and not skipped_items
    results["submission"] = submission
    return results


def check_output_path(path: Path, what: str) -> None:
    """Fail before any scoring when an output could not be written."""
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file path")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} is not a directory")
    if existing is not None and not os.access(existing, os.W_OK):
        raise UserError(f"{what} {path}: {existing} is not writable")


def write_outputs(results: dict, out: Path, submission_path: Optional[Path]) -> None:
    """Write results.json (and the gzipped submission) only once everything has been scored; both
    files go to temporary names first, so a failure replaces neither."""
    submission = results.pop("submission")
    out.parent.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        staged.append((tmp, out))
        tmp.write_text(json.dumps(results, indent=1))
        if submission_path is not None:
            submission_path.parent.mkdir(parents=True, exist_ok=True)
            # A submission holds one prediction per item: hybrid runs submit their causal predictions.
            backend = "causal" if "causal" in submission else next(iter(submission))
            tmp = submission_path.with_name(f".{submission_path.name}.tmp-{os.getpid()}")
            staged.append((tmp, submission_path))
            with gzip.open(tmp, "wt", encoding="utf-8") as handle:
                json.dump(submission[backend], handle)
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def format_table(results: dict) -> str:
    lines = [f"model {results['model']} ({results['backbone']}), mode {results['mode']}"
             + (f", limit {results['limit']} per subtask" if results["limit"] else "")]
    backends = list(results["results"])
    header = "| task | " + " | ".join(f"{b} ({results['results'][b]['reduction']})" for b in backends) + " |"
    lines += [header, "|---|" + "---|" * len(backends)]
    tasks = [t for t in ("blimp", "blimp_supplement", "ewok", "glue") if any(t in results["results"][b]["tasks"] for b in backends)]
    for task in tasks:
        cells = []
        for b in backends:
            value = results["results"][b]["tasks"].get(task, {}).get("score")
            cells.append("n/a" if value is None else f"{value:.2f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    macro = [results["results"][b]["macro"] for b in backends]
    lines.append("| **macro** | " + " | ".join("n/a" if m is None else f"**{m:.2f}**" for m in macro) + " |")
    for b in backends:
        if results["results"][b]["missing"]:
            lines.append(f"{b}: no macro-average; missing {', '.join(results['results'][b]['missing'])}")
        if results["results"][b].get("note"):
            lines.append(f"{b}: {results['results'][b]['note']}")
    return "\n".join(lines)


def set_threads_for(device: str) -> None:
    if device == "cpu" and os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
