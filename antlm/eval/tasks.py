"""Zero-shot task data in the layouts antlm reads, as multiple-choice items (the correct option first).

Layouts (detected):
- BabyLM 2024 `evaluation_data/`: `blimp_filtered/`, `supplement_filtered/`, `ewok_filtered/` (or
  `ewok_filtered.zip`), `glue_filtered/`.
- BabyLM 2025 `evaluation_data/{full_eval,fast_eval}/`: the 2024 folders in `full_eval/` plus
  `entity_tracking/`, `wug_adj_nominalization/`, `wug_past_tense/`, `comps/`, `reading/`, `aoa/`;
  `fast_eval/` holds `blimp_fast/`, `supplement_fast/`, `ewok_fast/` (or `ewok_fast.zip`),
  `entity_tracking_fast/`, the wug folders and `reading/`.
- this project's `../shared/data`: `blimp_filtered/`, `blimp_supplement/`, `ewok/ewok_filtered.zip`,
  `glue/`, and the 2025 sets in `babylm_2025_eval/{full_eval,fast_eval}/`.
EWoK ZIPs are read in memory, never extracted (EWoK's terms forbid plain-text copies).

Each item keeps two views of its text, because the pipelines build their inputs differently:
`context` + `options` (the 2024 lm-eval view: context, then " " + option) and `sentences` +
`completions` (the 2025 view, `sentence_zero_shot/read_files.py`: the whole text of each option,
and the tail of it that is scored).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from antlm.errors import UserError

ZERO_SHOT_TASKS = ("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "comps")
OTHER_TASKS = ("reading", "aoa", "glue")
ALL_TASKS = ZERO_SHOT_TASKS + OTHER_TASKS
EVAL_SETS = ("full", "fast")
EWOK_PASSWORD_ENV = "ANTLM_EWOK_PASSWORD"
# The passwords the data's owners publish: EWoK's terms of use, and the 2025 pipeline README for ewok_fast.zip.
EWOK_PUBLISHED_PASSWORDS = ("ewok", "BabyLM2025")
EXPECTED_FILES = {"blimp": 67, "blimp_supplement": 5, "ewok": 11, "comps": 4}


@dataclass(frozen=True)
class Item:
    id: str
    context: str
    options: tuple[str, ...]
    sentences: tuple[str, ...] = ()
    completions: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if not self.sentences:  # no context: each option is the whole sentence, and all of it is scored
            object.__setattr__(self, "sentences", self.options)
            object.__setattr__(self, "completions", self.options)

    @property
    def good(self) -> str:
        return self.options[0]

    @property
    def bad(self) -> str:
        return self.options[1]


@dataclass(frozen=True)
class TaskSource:
    """Where a task's files are: a folder or a ZIP, and the name the 2025 pipeline gives that data set."""
    path: Path
    dataset: str
    eval_set: str


# --- layouts -----------------------------------------------------------------------------------

def detect_layout(data_dir: Path) -> str:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"evaluation data directory not found: {data_dir}")
    if (data_dir / "blimp_supplement").is_dir() or (data_dir / "ewok" / "ewok_filtered.zip").is_file():
        return "shared"
    if (data_dir / "full_eval").is_dir() or (data_dir / "fast_eval").is_dir() or data_dir.name in ("full_eval", "fast_eval"):
        return "babylm2025"
    if (data_dir / "supplement_filtered").is_dir() or (data_dir / "glue_filtered").is_dir():
        return "babylm2024"
    if (data_dir / "evaluation_data").is_dir():
        return detect_layout(data_dir / "evaluation_data")
    raise UserError(
        f"{data_dir} is none of: a BabyLM 2024 evaluation_data/ folder (blimp_filtered/, supplement_filtered/, "
        "ewok_filtered/, glue_filtered/), a BabyLM 2025 one (full_eval/, fast_eval/), or the shared data layout "
        "(blimp_filtered/, blimp_supplement/, ewok/)"
    )


def _set_roots(data_dir: Path, eval_set: str) -> list[Path]:
    """Folders that may hold the 2025 `<set>_eval/` data, most specific first."""
    data_dir = Path(data_dir)
    folder = f"{eval_set}_eval"
    if data_dir.name == folder:
        return [data_dir]
    if data_dir.name in ("full_eval", "fast_eval"):  # the other set's folder: look beside it
        data_dir = data_dir.parent
    return [p / folder for p in (data_dir, data_dir / "evaluation_data", data_dir / "babylm_2025_eval")]


# Folder (or ZIP) names per task: (full set names, fast set name). The first full names are the
# 2024/shared layout's; the 2025 pipeline's data set name (its output folder) comes last.
_FOLDERS = {
    "blimp": (("blimp_filtered",), "blimp_fast"),
    "blimp_supplement": (("blimp_supplement", "supplement_filtered"), "supplement_fast"),
    "ewok": (("ewok/ewok_filtered.zip", "ewok_filtered.zip", "ewok_filtered"), "ewok_fast"),
    "entity_tracking": (("entity_tracking",), "entity_tracking_fast"),
    "wug_adj": (("wug_adj_nominalization",), "wug_adj_nominalization"),
    "wug_past": (("wug_past_tense",), "wug_past_tense"),
    "comps": (("comps",), None),
}
DATASET_NAMES = {  # the 2025 pipeline's name for each task's full data set (`args.data_path.stem`)
    "blimp": "blimp_filtered", "blimp_supplement": "supplement_filtered", "ewok": "ewok_filtered",
    "entity_tracking": "entity_tracking", "wug_adj": "wug_adj_nominalization", "wug_past": "wug_past_tense",
    "comps": "comps",
}


def locate(data_dir: Path, task: str, eval_set: str = "full") -> TaskSource:
    if task not in _FOLDERS:
        raise UserError(f"unknown zero-shot task '{task}' (known: {', '.join(ZERO_SHOT_TASKS)})")
    if eval_set not in EVAL_SETS:
        raise UserError(f"unknown evaluation set '{eval_set}' (full or fast)")
    full_names, fast_name = _FOLDERS[task]
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"evaluation data directory not found: {data_dir}")
    if eval_set == "fast":
        if fast_name is None:
            raise UserError(f"{task} has no fast evaluation set (the 2025 pipeline scores it on the full set only)")
        candidates = [r / n for r in _set_roots(data_dir, "fast") for n in (fast_name, fast_name + ".zip")]
        dataset = fast_name
    else:
        roots = [data_dir, data_dir / "evaluation_data"] + _set_roots(data_dir, "full")
        candidates = [r / n for r in roots for n in full_names]
        dataset = DATASET_NAMES[task]
    for path in candidates:
        if path.is_dir() or path.is_file():
            return TaskSource(path, dataset, eval_set)
    raise UserError(f"task files for {task} ({eval_set} set) not found under {data_dir} "
                    f"(looked for {', '.join(sorted({c.name for c in candidates}))})")


def locate_file(data_dir: Path, eval_set: str, relative: str, task: str) -> Path:
    """A 2025 data file (`reading/reading_data.csv`, `aoa/cdi_childes.json`) under either set's folder."""
    for root in _set_roots(Path(data_dir), eval_set):
        if (root / relative).is_file():
            return root / relative
    raise UserError(f"{task} data not found: no {eval_set}_eval/{relative} under {data_dir}")


# --- parsing -----------------------------------------------------------------------------------

def _parse_jsonl(text: str, origin: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{origin}:{number}: malformed JSON line") from None
        if not isinstance(row, dict):
            raise UserError(f"{origin}:{number}: expected a JSON object")
        row["_line"] = number
        rows.append(row)
    return rows


def _field(row: dict, key: str, origin: str):
    value = row.get(key)
    if value is None or (key != "options" and not isinstance(value, (str, int, float))):
        raise UserError(f"{origin}:{row['_line']}: missing field '{key}'")
    return value


def _text(row: dict, key: str, origin: str) -> str:
    value = _field(row, key, origin)
    if not isinstance(value, str):
        raise UserError(f"{origin}:{row['_line']}: field '{key}' is not text")
    return value


def _blimp_item(row: dict, origin: str, stem: str, supplement: bool) -> tuple[str, Item]:
    good, bad = _text(row, "sentence_good", origin), _text(row, "sentence_bad", origin)
    if supplement or "field" not in row:
        uid, meta = stem, {"UID": stem, "field": "supplement", "linguistics_term": "supplement"}
    else:
        uid = row.get("UID") or stem
        term = row.get("field")
        meta = {"UID": uid, "field": "syntax/semantics" if term == "syntax_semantics" else term,
                "linguistics_term": row.get("linguistics_term")}
    return uid, Item("", "", (good, bad), meta=meta)


def _ewok_item(row: dict, origin: str, stem: str) -> tuple[str, Item]:
    context = _text(row, "Context1", origin)
    targets = (_text(row, "Target1", origin), _text(row, "Target2", origin))
    uid = row.get("Domain") or stem
    meta = {"UID": uid, "context_type": row.get("ContextType"), "context_contrast": row.get("ContextDiff"),
            "target_contrast": row.get("TargetDiff")}
    return uid, Item("", context, targets, tuple(f"{context} {t}" for t in targets),
                     tuple(f" {t}" for t in targets), meta)


def _entity_item(row: dict, origin: str, stem: str) -> tuple[str, Item]:
    prefix = _text(row, "input_prefix", origin)
    options = row.get("options")
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise UserError(f"{origin}:{row['_line']}: 'options' must be a list of at least two strings")
    uid = f"{stem}_{_field(row, 'numops', origin)}_ops"
    return uid, Item("", prefix, tuple(options), tuple(prefix + o for o in options), tuple(options),
                     {"UID": uid})


def _wug_item(row: dict, origin: str, task: str) -> tuple[str, Item]:
    sentences = tuple(_text(row, "sentences", origin).split("\t"))
    try:
        ratio = float(_field(row, "ratio", origin))
    except (TypeError, ValueError):
        raise UserError(f"{origin}:{row['_line']}: 'ratio' is not a number") from None
    if len(sentences) < 2:
        raise UserError(f"{origin}:{row['_line']}: 'sentences' must hold at least two TAB-separated sentences")
    return task, Item("", "", sentences, meta={"UID": task, "ratio": ratio})


_COMPS_SUBSETS = {"comps_base": "base", "comps_wugs": "wugs", "comps_wugs_dist-before": "wugs_dist_before"}


def _comps_item(row: dict, origin: str, stem: str) -> tuple[str, Item]:
    phrase = _text(row, "property_phrase", origin)
    prefixes = (_text(row, "prefix_acceptable", origin), _text(row, "prefix_unacceptable", origin))
    uid = _COMPS_SUBSETS.get(stem, "wugs_dist_in_between")  # as read_files.decode_comps names them
    sentences = tuple(f"{p} {phrase}" for p in prefixes)
    # Both options share the scored phrase; the predictions name the whole sentence.
    return uid, Item("", "", sentences, sentences, (phrase, phrase), {"UID": uid})


def _rows_by_file(source: TaskSource, task: str) -> list[tuple[str, list[dict], str]]:
    """(file stem, rows, origin) for every .jsonl file of a task, in name order."""
    path = source.path
    if path.suffix == ".zip":
        return _zip_rows(path)
    files = sorted(path.glob("*.jsonl"))
    if not files:
        raise UserError(f"no .jsonl files in {path} ({task})")
    _check_count(path, len(files), task)
    return [(f.stem, _parse_jsonl(f.read_text(encoding="utf-8"), str(f)), str(f)) for f in files]


def _check_count(path: Path, count: int, task: str) -> None:
    expected = EXPECTED_FILES.get(task)
    # COMPS ships four files, but a user may score a part of it.
    if expected and count != expected and task != "comps":
        noun = "EWoK domains" if path.suffix == ".zip" else ".jsonl files"
        raise UserError(f"{path} holds {count} {noun}; {task} needs {expected}")


def _zip_rows(path: Path) -> list[tuple[str, list[dict], str]]:
    env = os.environ.get(EWOK_PASSWORD_ENV)
    passwords = [env.encode()] if env else [p.encode() for p in EWOK_PUBLISHED_PASSWORDS]
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a valid ZIP archive") from None
    out = []
    with archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".jsonl")):
            data = None
            for password in passwords:
                try:
                    data = archive.read(name, pwd=password)  # in memory: EWoK's terms forbid plain-text copies
                    break
                except RuntimeError:
                    continue
            if data is None:
                raise UserError(f"{path}: wrong or missing EWoK password (set {EWOK_PASSWORD_ENV})")
            origin = f"{path}:{name}"
            out.append((Path(name).stem, _parse_jsonl(io.TextIOWrapper(io.BytesIO(data), "utf-8").read(), origin), origin))
    return out


def load_task(data_dir: Path, task: str, limit: Optional[int] = None, eval_set: str = "full") -> dict[str, list[Item]]:
    """{subtask: items} for one zero-shot task; `limit` keeps the first N items of each subtask."""
    return load_source(locate(data_dir, task, eval_set), task, limit)


def load_source(source: TaskSource, task: str, limit: Optional[int] = None) -> dict[str, list[Item]]:
    files = _rows_by_file(source, task)
    if source.path.suffix == ".zip":
        _check_count(source.path, len(files), task)
    out: dict[str, list[Item]] = {}
    for stem, rows, origin in files:
        for row in rows:
            if task in ("blimp", "blimp_supplement"):
                uid, item = _blimp_item(row, origin, stem, task == "blimp_supplement")
            elif task == "ewok":
                uid, item = _ewok_item(row, origin, stem)
            elif task == "entity_tracking":
                uid, item = _entity_item(row, origin, stem)
            elif task in ("wug_adj", "wug_past"):
                uid, item = _wug_item(row, origin, task)
            else:
                uid, item = _comps_item(row, origin, stem)
            items = out.setdefault(uid, [])
            if limit is None or len(items) < limit:
                # ids as both pipelines write them: <subtask>_<running index>
                items.append(replace(item, id=f"{uid}_{len(items)}"))
    return out


def parse_task_list(text: str, allowed: tuple[str, ...] = ALL_TASKS) -> list[str]:
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks:
        raise UserError(f"--tasks is empty: name one or more of {', '.join(allowed)}, or leave it out for the default suite")
    unknown = [t for t in tasks if t not in allowed]
    if unknown:
        raise UserError(f"unknown task '{','.join(unknown) or text}' (known: {', '.join(allowed)})")
    return tasks
