"""`antlm eval`: one model on the BabyLM suites, scored the way a pipeline module says
(antlm/eval/pipelines/: `babylm2024`, `babylm2025`, `clean`), with causal, masked or hybrid scoring.

Every task entry carries a `label` (compat mode, backend, where a masked model's prediction is read,
PLL variant, reduction, temperature, data set) so that no number leaves without what made it.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from antlm.errors import UserError
from antlm.eval import pipelines, scoring
from antlm.eval.hf_models import is_hf_directory, load_hf_model
from antlm.eval.pipelines.base import Pipeline, ScoringContext
from antlm.eval.tasks import ZERO_SHOT_TASKS, Item, detect_layout, load_source, locate
from antlm.model_io import load_model

BACKENDS = ("causal", "mlm", "mntp", "hybrid")
MODES = tuple(pipelines.PIPELINES)
WUG_TASKS = ("wug_adj", "wug_past")


@dataclass
class EvalOptions:
    tasks: Optional[list[str]] = None  # None: the pipeline's default task set
    backend: str = "causal"
    compat: str = "babylm2024"  # the scoring pipeline (antlm/eval/pipelines/), as --compat names it
    variant: str = "original"
    reduction: Optional[str] = None  # None: the pipeline's default for each backend
    limit: Optional[int] = None
    batch_tokens: int = 16384
    device: str = "cpu"
    progress: bool = False
    glue: dict = field(default_factory=dict)  # GLUE settings overrides
    glue_tasks: Optional[list[str]] = None  # None: the recipe's task set
    glue_backends: Optional[list[str]] = None  # hybrid: fine-tune GLUE under these backends only (None: both)
    overlong: Optional[str] = None  # items longer than the window; None: the pipeline's rule
    eval_set: str = "full"  # full or fast (the 2025 pipeline's fast_eval sets)
    temperatures: Optional[list[float]] = None  # None: [1.0]; more than one: a sweep, best reported
    shared_prefix: bool = True  # causal: run an item's common leading tokens once (KV cache); False runs each option whole


def overlong_for(options: EvalOptions, backend: str) -> str:
    return options.overlong or pipelines.get(options.compat).overlong(backend)


def reduction_for(options: EvalOptions, backend: str) -> str:
    return options.reduction or pipelines.get(options.compat).reduction(backend)


def label_for(options: EvalOptions, backend: str, model_offset: int, temperature: float) -> dict:
    pipeline = pipelines.get(options.compat)
    masked = backend != "causal"
    return {"compat": pipeline.name, "backend": backend, "read_offset": pipeline.read_offset(backend, model_offset),
            "variant": options.variant if masked else None, "reduction": reduction_for(options, backend),
            "temperature": temperature, "eval_set": options.eval_set}


def score_items(model, tokenizer, items: list[Item], backend: str, options: EvalOptions, progress=None,
                log: Callable = print, stats: Optional[dict] = None) -> dict[float, list[list[float]]]:
    """{temperature: per item, one score per option}; NaN where the over-long policy skipped an input.
    `stats`, when given, receives the policy and how many inputs were cut or skipped."""
    pipeline = pipelines.get(options.compat)
    model_offset = model.antlm_meta.mlm_target_offset
    special = getattr(model, "special_tokens", None)
    ctx = ScoringContext(tokenizer, model.antlm_meta.backbone, model_offset, special)
    requests, owners, shared = [], [], []
    for index, item in enumerate(items):
        encoded = pipeline.encode(item, backend, ctx)
        shared.append(range(len(requests), len(requests) + len(encoded)))
        requests += encoded
        owners += [(index, option) for option in range(len(encoded))]
    policy = overlong_for(options, backend)
    if policy == "extend":
        if getattr(model, "extend_positions", None) is not None:
            model.extend_positions(max(len(r.prefix) + len(r.target) + len(r.suffix) for r in requests))
        else:  # an encoder's export raises on such inputs (LTG-BERT's position buckets end at its window)
            policy = "error"
    describe = lambda i: f"item {items[owners[i][0]].id} (option {owners[i][1] + 1})"  # noqa: E731
    fitted = scoring.fit_length(requests, model.cfg.max_seq_len, policy, shift=int(backend == "causal"), describe=describe)
    if fitted.cut or fitted.skipped:
        log(f"warning: {fitted.cut + len(fitted.skipped)} of {len(requests)} {backend} inputs were longer than "
            f"max_seq_len={model.cfg.max_seq_len}: {fitted.cut} cut ({policy}), {len(fitted.skipped)} skipped")
    if stats is not None:
        stats.update(policy=policy, inputs_cut=fitted.cut, inputs_skipped=len(fitted.skipped))
    temperatures = options.temperatures or [1.0]
    if backend == "causal":
        values = scoring.causal_scores(model, requests, options.batch_tokens, progress, overlong=policy,
                                       temperatures=temperatures, shared=shared if options.shared_prefix else None)
    else:
        mask_id = special.mask_id if special is not None else scoring.mask_id_of(tokenizer)
        values = scoring.pll_scores(model, requests, mask_id, pipeline.read_offset(backend, model_offset),
                                    options.variant, reduction_for(options, backend), options.batch_tokens, progress,
                                    overlong=policy, temperatures=temperatures)
    out = {}
    for temperature, flat in values.items():
        per_item: list[list[float]] = [[] for _ in items]
        for (index, _), value in zip(owners, flat):
            per_item[index].append(value)
        out[temperature] = per_item
    return out


def choose(scores: list[float]) -> int:
    """The first maximum, as np.argmax (2024) and torch.max (2025) take it."""
    best = 0
    for index, value in enumerate(scores):
        if value > scores[best]:
            best = index
    return best


def is_correct(item: Item, scores: list[float], ties_correct: bool) -> bool:
    if not ties_correct:
        return all(scores[0] > other for other in scores[1:])
    # The 2025 results compare the chosen option's text with the correct one's; the 2024 argmax
    # differs only when two options have the same text, and then their scores tie and index 0 wins.
    return item.completions[choose(scores)].strip() == item.completions[0].strip()


def _softmax_first(scores: list[float]) -> float:
    return torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0)[0].item()


def summarize(task: str, subtasks: dict[str, list[Item]], per_item: list[list[float]], pipeline: Pipeline) -> dict:
    """Scores of one task at one temperature: accuracy per subtask and per reported metadata value,
    or for the wug tasks the Spearman correlation (x 100) with the human ratios."""
    from scipy.stats import spearmanr

    result: dict = {"subtasks": {}, "predictions": {}, "items_skipped": 0, "ties": 0, "ties_counted_correct": 0}
    by: dict[str, dict[str, list[int]]] = {}
    model_ratios, human_ratios = [], []
    cursor = 0
    for name, items in subtasks.items():
        right, total, preds = 0, 0, []
        for item in items:
            scores = per_item[cursor]
            cursor += 1
            if any(math.isnan(s) for s in scores):
                result["items_skipped"] += 1
                continue
            chosen = choose(scores)
            prediction = {"id": item.id, "pred": pipeline.prediction_text(item, chosen, task)}
            if task in WUG_TASKS:
                prediction["prob"] = _softmax_first(scores)
                model_ratios.append(prediction["prob"])
                human_ratios.append(item.meta["ratio"])
            ok = is_correct(item, scores, pipeline.ties_correct)
            right, total = right + ok, total + 1
            if scores.count(scores[chosen]) > 1:  # an exact tie for the best score: the pipeline's rule decides
                result["ties"] += 1
                result["ties_counted_correct"] += ok
            for key in pipeline.report_by:
                if item.meta.get(key) is not None:
                    counts = by.setdefault(key, {}).setdefault(str(item.meta[key]), [0, 0])
                    counts[0], counts[1] = counts[0] + ok, counts[1] + 1
            preds.append(prediction)
        result["subtasks"][name] = 100.0 * right / max(1, total)
        result["predictions"][name] = {"predictions": preds}
    if task in WUG_TASKS:
        rho = spearmanr(model_ratios, human_ratios)[0] if len(model_ratios) > 1 else float("nan")
        result["score"] = 100.0 * float(rho)
        result["metric"] = "spearman_x100"
        result["subtasks"] = {task: result["score"]}
    else:
        result["score"] = pipeline.task_score(task, result["subtasks"])
        result["metric"] = "accuracy"
    if by and task not in WUG_TASKS:
        result["by"] = {key: {value: 100.0 * c[0] / c[1] for value, c in values.items()} for key, values in by.items()}
        if task == "entity_tracking" and "UID" in result["by"]:
            # run.py's report adds each file's mean over its numops subtasks to the UID list.
            for split in ("regular", "ambiref", "move_contents"):
                parts = [v for k, v in result["subtasks"].items() if k.startswith(split)]
                if parts:
                    result["by"]["UID"][split] = sum(parts) / len(parts)
    return result


def _progress_bar(total: int, label: str, enabled: bool):
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="row", dynamic_ncols=True)
    return bar, bar.update


def best_temperature(by_temperature: dict[float, dict]) -> float:
    """The first temperature with the highest score (the 2025 `run.py` keeps the first strict maximum)."""
    best = None
    for temperature, summary in by_temperature.items():
        score = summary["score"]
        if best is None or (not math.isnan(score) and (math.isnan(by_temperature[best]["score"]) or score > by_temperature[best]["score"])):
            best = temperature
    return best


def evaluate_zero_shot(model, tokenizer, data_dir: Path, backend: str, options: EvalOptions, log: Callable) -> tuple[dict, dict]:
    """(scores, predictions) for the zero-shot tasks asked for."""
    pipeline = pipelines.get(options.compat)
    model_offset = model.antlm_meta.mlm_target_offset
    scores, predictions = {}, {}
    for task in [t for t in options.tasks if t in ZERO_SHOT_TASKS]:
        start = time.perf_counter()
        source = locate(data_dir, task, options.eval_set)
        subtasks = load_source(source, task, options.limit)
        items = [item for name in subtasks for item in subtasks[name]]
        bar, update = _progress_bar(sum(len(i.options) for i in items), f"{task} ({backend})", options.progress)
        overlong: dict = {}
        per_temperature = score_items(model, tokenizer, items, backend, options, update, log, overlong)
        if bar:
            bar.close()
        summaries = {t: summarize(task, subtasks, per_item, pipeline) for t, per_item in per_temperature.items()}
        best = best_temperature(summaries)
        chosen = summaries[best]
        seconds = time.perf_counter() - start
        entry = {"score": chosen["score"], "metric": chosen["metric"], "subtasks": chosen["subtasks"],
                 "items": len(items), "dataset": source.dataset, "label": label_for(options, backend, model_offset, best),
                 "overlong": {**overlong, "items_skipped": chosen["items_skipped"]}, "seconds": round(seconds, 1),
                 "ties": {"items": chosen["ties"], "counted_correct": chosen["ties_counted_correct"],
                          "rule": pipeline.tie_rule}}
        if "by" in chosen:
            entry["by"] = chosen["by"]
        if len(summaries) > 1:
            entry["temperature_sweep"] = {f"{t:g}": s["score"] for t, s in summaries.items()}
        scores[task] = entry
        predictions[task] = chosen["predictions"]
        log(f"{task} [{backend}, {options.compat}, {options.eval_set}, T={best:g}]: {entry['score']:.2f} "
            f"({entry['metric']}) over {len(entry['subtasks'])} subtasks, {len(items)} items, {seconds:.0f}s")
    return scores, predictions


def macro_average(task_scores: dict, glue: Optional[dict], parts: tuple[str, ...] = ("blimp", "blimp_supplement", "ewok", "glue")) -> dict:
    if not parts:
        return {"macro": None, "missing": [], "note": "this pipeline defines no macro-average; tasks are reported on their own"}
    scored = dict(task_scores)
    if glue and glue.get("score") is not None:
        scored["glue"] = glue
    missing = [p for p in parts if p not in scored]
    if missing:
        out = {"macro": None, "missing": missing}
        if glue and glue.get("note"):
            out["note"] = glue["note"]
        return out
    out = {"macro": sum(scored[p]["score"] for p in parts) / len(parts), "missing": []}
    if glue.get("note"):
        out["note"] = glue["note"]
    return out


def _reading(model_path, model, tokenizer, data_dir, backend, options, log) -> tuple[dict, dict]:
    """The 2025 reading task (antlm/eval/reading.py): R^2 gains on eye tracking and self-paced reading."""
    from antlm.eval.reading import run_reading
    from antlm.eval.tasks import locate_file

    csv = locate_file(data_dir, options.eval_set, "reading/reading_data.csv", "reading")
    overlong = options.overlong if options.overlong in ("skip", "context", "error") else "error"
    result = run_reading(model, tokenizer, csv, backend,
                         batch_tokens=options.batch_tokens, limit=options.limit, overlong=overlong, log=log)
    scores = result.scores
    entry = {"score": None, "metric": "r2_gain", "subtasks": {"eye_tracking": scores.eye_tracking_score,
                                                              "self_paced_reading": scores.self_paced_reading_score},
             "items": len(result.rows), "dataset": "reading", "label": label_for(options, backend, model.antlm_meta.mlm_target_offset, 1.0),
             "overlong": {"policy": overlong, "items_skipped": result.words_skipped}, "seconds": round(result.seconds, 1),
             "note": "two scores, as calculate_results_from_pred.py prints them: READING (ET) and READING (SPR)"}
    log(f"reading [{backend}]: eye tracking {scores.eye_tracking_score:.2f}, self-paced reading "
        f"{scores.self_paced_reading_score:.2f} ({len(result.rows)} words, {result.seconds:.0f}s)")
    return entry, result.predictions


def _aoa(model_path, model, tokenizer, data_dir, backend, options, log) -> tuple[dict, dict]:
    """Age of acquisition (antlm/eval/aoa.py) over the run's word checkpoints (train.word_checkpoints)."""
    from antlm.eval.aoa import aoa_score, aoa_surprisals, series_checkpoints
    from antlm.eval.tasks import locate_file

    run_dir = Path(model_path)
    run_dir = run_dir.parent if run_dir.name == "final" else run_dir
    if not (run_dir / "word_checkpoints" / "series.json").is_file():
        raise UserError(f"aoa scores a series of checkpoints: {run_dir} has no word_checkpoints/series.json "
                        "(train with train.word_checkpoints=babylm)")
    words = locate_file(data_dir, "full", "aoa/cdi_childes.json", "aoa")
    human = locate_file(data_dir, "full", "aoa/cdi_human.csv", "aoa")
    overlong = options.overlong if options.overlong in ("skip", "context", "error") else "error"
    surprisals = aoa_surprisals(series_checkpoints(run_dir), words, backend, device=options.device,
                                batch_tokens=options.batch_tokens, limit=options.limit, overlong=overlong, log=log)
    fit = aoa_score(surprisals.data, human, log=log)
    entry = {"score": fit.curve_fitness, "metric": "pearson_r", "subtasks": {"aoa": fit.curve_fitness},
             "items": surprisals.contexts, "dataset": "aoa", "checkpoints": surprisals.checkpoints, "words_fitted": fit.n_words,
             "label": label_for(options, backend, model.antlm_meta.mlm_target_offset, 1.0) | {"eval_set": "full"},
             "overlong": {"policy": overlong, "items_skipped": surprisals.contexts_skipped}, "seconds": round(surprisals.seconds, 1)}
    log(f"aoa [{backend}]: curve fitness r={fit.curve_fitness:.3f} over {fit.n_words} words, {surprisals.checkpoints} checkpoints")
    return entry, surprisals.data


def check_options(options: EvalOptions, pipeline: Pipeline) -> None:
    if options.backend not in BACKENDS:
        raise UserError(f"unknown backend '{options.backend}' ({', '.join(BACKENDS)})")
    if options.tasks is None:
        options.tasks = list(pipeline.default_tasks)
    outside = [t for t in options.tasks if t not in pipeline.tasks]
    if outside:
        raise UserError(f"--compat {pipeline.name} does not run {', '.join(outside)} (it runs {', '.join(pipeline.tasks)})")
    if options.eval_set not in pipeline.eval_sets:
        raise UserError(f"--compat {pipeline.name} has no '{options.eval_set}' evaluation set ({', '.join(pipeline.eval_sets)})")
    temperatures = options.temperatures or [1.0]
    if any(t <= 0 for t in temperatures):
        raise UserError("temperatures must be positive")
    if temperatures != [1.0] and not pipeline.temperature_sweep:
        raise UserError(f"--compat {pipeline.name} scores at temperature 1 only (babylm2025 and clean take --temperatures)")


def check_hf_options(options: EvalOptions, pipeline: Pipeline) -> None:
    """What a Hugging Face directory can be scored on: the 2025 pipeline's zero-shot tasks."""
    if not pipeline.takes_hf_models:
        raise UserError(f"--compat {pipeline.name} scores antlm models only; score a Hugging Face directory with "
                        "--compat babylm2025, the pipeline that takes any transformers model")
    if options.tasks is None:
        options.tasks = [t for t in pipeline.default_tasks if t in ZERO_SHOT_TASKS]
    outside = [t for t in options.tasks if t not in ZERO_SHOT_TASKS]
    if outside:
        raise UserError(f"a Hugging Face directory is scored on the zero-shot tasks; {', '.join(outside)} "
                        "need an antlm run")


def load_scored_model(model_path: Path, options: EvalOptions):
    """An antlm run or final/, or a Hugging Face directory (antlm/eval/hf_models.py)."""
    if not is_hf_directory(Path(model_path)):
        return load_model(model_path, options.device)
    model, tokenizer, special = load_hf_model(Path(model_path), options.backend, options.device)
    model.special_tokens = special
    return model, tokenizer


def run_eval(model_path: Path, data_dir: Path, options: EvalOptions, log: Callable = print) -> dict:
    pipeline = pipelines.get(options.compat)
    if is_hf_directory(Path(model_path)):
        check_hf_options(options, pipeline)
    check_options(options, pipeline)
    layout = detect_layout(data_dir)
    model, tokenizer = load_scored_model(model_path, options)
    model_offset = model.antlm_meta.mlm_target_offset
    backends = [options.backend] if options.backend != "hybrid" else pipeline.hybrid_backends(model_offset)
    for backend in backends:
        problem = pipeline.masked_backend_problem(backend, model_offset)
        if problem:
            raise UserError(problem)
    results = {
        "model": str(model_path), "backbone": model.antlm_meta.backbone, "data": str(data_dir),
        "layout": layout, "compat": options.compat, "backend": options.backend, "variant": options.variant,
        "eval_set": options.eval_set, "limit": options.limit, "tasks": options.tasks, "results": {}, "complete": False,
        "overlong": {b: overlong_for(options, b) for b in backends},
    }
    submission: dict = {}
    for backend in backends:
        entry = {"reduction": reduction_for(options, backend), "variant": options.variant if backend != "causal" else None,
                 "read_offset": pipeline.read_offset(backend, model_offset)}
        task_scores, predictions = evaluate_zero_shot(model, tokenizer, data_dir, backend, options, log)
        for task, run_task in (("reading", _reading), ("aoa", _aoa)):
            if task in options.tasks:
                task_scores[task], predictions[task] = run_task(model_path, model, tokenizer, data_dir, backend, options, log)
        entry["tasks"] = task_scores
        glue = None
        if "glue" in options.tasks and (options.glue_backends is None or backend in options.glue_backends):
            from antlm.eval.glue import run_glue
            from antlm.eval.glue_recipes import glue_summary, recipe_named

            recipe = recipe_named(pipeline.glue_recipe)
            glue_backend = "causal" if backend == "causal" else "mlm"
            glue_entries = run_glue(model_path, data_dir, options.glue_tasks, glue_backend, recipe, options.glue,
                                    options.device, log, options.progress)
            glue = glue_summary(recipe, glue_entries)
            entry["tasks"]["glue"] = glue
            predictions["glue"] = {t: e for t, e in glue_entries.items() if e.get("status") == "ok"}
        entry.update(macro_average(task_scores, glue, pipeline.macro_parts))
        results["results"][backend] = entry
        submission[backend] = predictions
    # Fewer rows, epochs or tasks, or another pooling: not the recipe's GLUE, so not comparable.
    glue_off_recipe = any(k in options.glue for k in ("train_limit", "eval_limit", "max_epochs", "pooling")) or options.glue_tasks
    skipped_items = sum(t.get("overlong", {}).get("items_skipped", 0) for e in results["results"].values()
                        for t in e["tasks"].values())
    results["complete"] = options.limit is None and not ("glue" in options.tasks and glue_off_recipe) and not skipped_items
    results["submission"] = submission
    results["submission_check"] = _submission_check(pipeline, submission, data_dir, options)
    return results


def _submission_check(pipeline: Pipeline, submission: dict, data_dir: Path, options: EvalOptions) -> Optional[dict]:
    """What the pipeline's own checker would reject in the submission (2024: `verify_dict`; 2025:
    collate_preds.py's size checks), so a results file says whether it can be submitted."""
    backend = "causal" if "causal" in submission else next(iter(submission))
    problems = pipeline.submission_problems(submission[backend], data_dir) if pipeline.submission_problems else None
    if problems is None:
        return None
    return {"pipeline": pipeline.name, "complete": not problems, "problems": len(problems), "first": problems[:10]}


def set_threads_for(device: str) -> None:
    if device == "cpu" and os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
