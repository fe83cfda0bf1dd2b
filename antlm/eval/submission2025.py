"""The BabyLM 2025 pipeline's fine-tuning outputs, from run_glue entries (babylm/evaluation-pipeline-2025
@ bf55c11):

- `results/<model>/<revision>/finetune/<task>/predictions.json`: `{task: {"predictions": [{"id":
  "<task>_<i>", "pred": int}]}}` from the best model on the predict file (= the validation file),
  finetune/run.py:95,109-115;
- `.../finetune/<task>/results.txt`: `key: value` lines of the best model's validation metrics as
  fractions, in --metrics order (run.py:104-107; accuracy f1 mcc, MNLI accuracy only:
  eval_finetuning.sh:29,109);
- collate_preds.py:457-465 merges the seven predictions.json into `glue`, and checks their sizes
  (collate_preds.py:146-152: boolq 1635, mnli 4908, mrpc 204, multirc 2424, qqp 20215, rte 139, wsc 52).
"""
from __future__ import annotations

from antlm.eval.glue_recipes import GLUE_2025

SIZES_2025 = {"boolq": 1635, "mnli": 4908, "mrpc": 204, "multirc": 2424, "qqp": 20215, "rte": 139, "wsc": 52}


def glue_predictions_2025(task: str, entry: dict) -> dict:
    """The content of finetune/<task>/predictions.json for one run_glue entry."""
    return {task: {"predictions": [{"id": f"{task}_{i}", "pred": int(p["pred"])}
                                   for i, p in enumerate(entry["predictions"])]}}


def glue_results_txt_2025(task: str, entry: dict) -> str:
    """The content of finetune/<task>/results.txt (fractions, as the 2025 trainer prints them)."""
    keys = ("accuracy",) if task == "mnli" else ("accuracy", "f1", "mcc")
    values = entry.get("fractions") or {key: entry[key] / 100.0 for key in keys if key in entry}
    return "\n".join(f"{key}: {values[key]}" for key in keys if key in values)


def glue_files_2025(entries: dict) -> dict[str, object]:
    """{relative path under results/<model>/<revision>/: content} for every task that ran:
    `finetune/<task>/predictions.json` (a dict to dump as JSON) and `finetune/<task>/results.txt`."""
    files: dict[str, object] = {}
    for task in GLUE_2025.tasks:
        entry = entries.get(task)
        if entry and entry.get("status") == "ok":
            files[f"finetune/{task}/predictions.json"] = glue_predictions_2025(task, entry)
            files[f"finetune/{task}/results.txt"] = glue_results_txt_2025(task, entry)
    return files


def glue_size_problems_2025(entries: dict) -> list[str]:
    """What collate_preds.py's size check would reject (missing tasks or wrong counts)."""
    problems = []
    for task in GLUE_2025.tasks:
        entry = entries.get(task)
        if not entry or entry.get("status") != "ok":
            problems.append(f"{task}: no predictions ({(entry or {}).get('reason', 'not run')})")
        elif len(entry["predictions"]) != SIZES_2025[task]:
            problems.append(f"{task}: {len(entry['predictions'])} predictions, the 2025 data has {SIZES_2025[task]}")
    return problems
