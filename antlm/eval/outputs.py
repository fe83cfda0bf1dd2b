"""What `antlm eval` writes: results.json, the 2024 submission file, and the 2025 pipeline's
results folder, each only once everything has been scored, through temporary names.

The 2025 layout is what `evaluation_pipeline/sentence_zero_shot/run.py` writes and
`collate_preds.py` reads: `DIR/<model>/<revision>/zero_shot/<backend>/<task>/<dataset>/`
`predictions.json` and `best_temperature_report.txt` (BLiMP and the supplement both under task
`blimp`), `zero_shot/<backend>/reading/predictions.json`, `zero_shot/<backend>/AoA_word/surprisal.json`,
`finetune/<task>/predictions.json`.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Optional

from antlm.atomic import WRITE_ERRORS, WriteError, reason_of
from antlm.errors import UserError

# The 2025 pipeline's --task name for each antlm zero-shot task (the supplement runs as `blimp`).
OFFICIAL_TASK_2025 = {"blimp": "blimp", "blimp_supplement": "blimp", "ewok": "ewok", "entity_tracking": "entity_tracking",
                      "wug_adj": "wug_adj", "wug_past": "wug_past", "comps": "comps"}


def check_output_path(path: Path, what: str) -> None:
    """Fail before any scoring when an output could not be written."""
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file path")
    check_output_dir(path.parent if str(path.parent) else Path("."), what, path)


def check_output_dir(directory: Path, what: str, shown: Optional[Path] = None) -> None:
    existing = next((p for p in [directory, *directory.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{what} {shown or directory}: {existing} is not a directory")
    if existing is not None and not os.access(existing, os.W_OK):
        raise UserError(f"{what} {shown or directory}: {existing} is not writable")


class Staged:
    """Files written to temporary names and renamed together at the end, or not at all."""

    def __init__(self):
        self.files: list[tuple[Path, Path]] = []

    def path_for(self, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        self.files.append((tmp, final))
        return tmp

    def write_text(self, final: Path, text: str) -> None:
        self._write(final, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write_gzip_json(self, final: Path, data) -> None:
        def write(tmp: Path) -> None:
            with gzip.open(tmp, "wt", encoding="utf-8") as handle:
                json.dump(data, handle)

        self._write(final, write)

    def _write(self, final: Path, write) -> None:
        """A full disk or a refused write is one WriteError line; discard() then removes every copy."""
        try:
            write(self.path_for(final))
        except WRITE_ERRORS as err:
            raise WriteError(final, reason_of(err)) from None

    def commit(self) -> None:
        for tmp, final in self.files:
            try:
                os.replace(tmp, final)
            except OSError as err:
                raise WriteError(final, reason_of(err)) from None

    def discard(self) -> None:
        for tmp, _ in self.files:
            tmp.unlink(missing_ok=True)


def write_outputs(results: dict, out: Path, submission_path: Optional[Path], results_dir: Optional[Path] = None,
                  revision: str = "main") -> None:
    """results.json, and when asked the gzipped submission (2024 layout) and the 2025 results folder."""
    submission = results.pop("submission")
    staged = Staged()
    try:
        staged.write_text(out, json.dumps(results, indent=1))
        if submission_path is not None:
            # A submission holds one prediction per item: hybrid runs submit their causal predictions.
            backend = "causal" if "causal" in submission else next(iter(submission))
            staged.write_gzip_json(submission_path, build_submission(submission[backend]))
        if results_dir is not None:
            write_2025_layout(results, submission, results_dir, revision, staged)
        staged.commit()
    finally:
        staged.discard()


def compat_of(results: dict) -> str:
    """The pipeline a results file was scored with; files before 0.2.0 name it `mode`."""
    return results.get("compat") or results.get("mode")


def build_submission(predictions: dict) -> dict:
    """The 2024 submission layout (`score_predictions.py`): {task: {subtask: {"predictions": [...]}}},
    the GLUE tasks under "glue"."""
    from antlm.eval.submission2024 import build_submission_2024

    zero_shot = {task: preds for task, preds in predictions.items() if task != "glue"}
    return build_submission_2024(zero_shot, predictions.get("glue", {}))


def model_name(results: dict) -> str:
    """The 2025 pipeline names the results folder after the model path's stem (`run.py`); a run's
    final/ is named after its run directory."""
    path = Path(results["model"])
    return (path.parent if path.name == "final" else path).stem


def _report(task: str, entry: dict) -> str:
    """best_temperature_report.txt as `run.py`'s create_evaluation_report writes it."""
    wug = task.startswith("wug")
    metric = "SPEARMAN'S RHO" if wug else "ACCURACY"
    lines = [f"TEMPERATURE: {entry['label']['temperature']:.2f}", ""]
    # The wug report prints rho itself (calculate_results_from_pred.py scales it by 100 later).
    average = entry["score"] / 100.0 if wug else entry["score"]
    groups = {"UID": {"avg": average}} if wug else (entry.get("by") or {"UID": entry["subtasks"]})
    for domain, values in groups.items():
        lines.append(f"### {domain.upper()} {metric}")
        lines += [f"{name}: {value:.2f}" for name, value in values.items()]
        lines.append("")
    lines += [f"### AVERAGE {metric}", f"{average:.2f}", ""]
    return "\n".join(lines) + "\n"


def write_2025_layout(results: dict, submission: dict, results_dir: Path, revision: str, staged: Staged) -> None:
    base = Path(results_dir) / model_name(results) / revision
    for backend, entry in results["results"].items():
        predictions = submission[backend]
        for task, task_entry in entry["tasks"].items():
            if task in OFFICIAL_TASK_2025:
                folder = base / "zero_shot" / backend / OFFICIAL_TASK_2025[task] / task_entry["dataset"]
                staged.write_text(folder / "predictions.json", json.dumps(predictions[task]))
                staged.write_text(folder / "best_temperature_report.txt", _report(task, task_entry))
            elif task == "reading":
                staged.write_text(base / "zero_shot" / backend / "reading" / "predictions.json", json.dumps(predictions[task]))
            elif task == "aoa":
                staged.write_text(base / "zero_shot" / backend / "AoA_word" / "surprisal.json", json.dumps(predictions[task]))
        if predictions.get("glue"):
            from antlm.eval.submission2025 import glue_files_2025

            for relative, content in glue_files_2025(predictions["glue"]).items():
                staged.write_text(base / relative, content if isinstance(content, str) else json.dumps(content))


def _label_text(label: dict) -> str:
    parts = [label["compat"], label["backend"]]
    if label.get("read_offset") is not None:
        parts.append(f"read@{'mask' if label['read_offset'] == 0 else 'mask-1'}")
    if label.get("variant"):
        parts.append(label["variant"])
    parts += [label["reduction"], f"T={label['temperature']:g}", label["eval_set"]]
    return ", ".join(parts)


def format_table(results: dict) -> str:
    lines = [f"model {results['model']} ({results['backbone']}), compat {compat_of(results)}, "
             f"{results.get('eval_set', 'full')} set" + (f", limit {results['limit']} per subtask" if results["limit"] else "")]
    backends = list(results["results"])
    header = "| task | " + " | ".join(f"{b} ({results['results'][b]['reduction']})" for b in backends) + " |"
    lines += [header, "|---|" + "---|" * len(backends)]
    tasks = []
    for b in backends:
        tasks += [t for t in results["results"][b]["tasks"] if t not in tasks]
    labels = []
    for task in tasks:
        if any(results["results"][b]["tasks"].get(task, {}).get("metric") == "r2_gain" for b in backends):
            for part, short in (("eye_tracking", "ET"), ("self_paced_reading", "SPR")):
                values = [results["results"][b]["tasks"].get(task, {}).get("subtasks", {}).get(part) for b in backends]
                lines.append(f"| {task} ({short}) | " + " | ".join("n/a" if v is None else f"{v:.2f}" for v in values) + " |")
        cells = []
        for b in backends:
            entry = results["results"][b]["tasks"].get(task, {})
            value = entry.get("score")
            cells.append("n/a" if value is None else f"{value:.2f}")
            if entry.get("label"):
                labels.append(f"{task} [{b}]: {_label_text(entry['label'])}"
                              + (" (spearman x100)" if entry.get("metric") == "spearman_x100" else ""))
        if not lines[-1].startswith(f"| {task} (SPR)"):
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
    macro = [results["results"][b].get("macro") for b in backends]
    if any(results["results"][b].get("missing") or results["results"][b].get("macro") is not None for b in backends):
        lines.append("| **macro** | " + " | ".join("n/a" if m is None else f"**{m:.2f}**" for m in macro) + " |")
    for b in backends:
        if results["results"][b].get("missing"):
            lines.append(f"{b}: no macro-average; missing {', '.join(results['results'][b]['missing'])}")
        if results["results"][b].get("note"):
            lines.append(f"{b}: {results['results'][b]['note']}")
    ties = [f"{task} [{b}]: {entry['ties']['items']} of {entry['items']} items, {entry['ties']['counted_correct']} counted right"
            for b in backends for task, entry in results["results"][b]["tasks"].items()
            if entry.get("ties", {}).get("items")]
    if ties:
        rule = next(entry["ties"]["rule"] for b in backends for entry in results["results"][b]["tasks"].values() if entry.get("ties"))
        lines += [f"exact ties ({rule}):"] + [f"  {line}" for line in ties]
    lines += ["scored as:"] + [f"  {label}" for label in labels]
    return "\n".join(lines)
