"""Zero-shot task data in the two layouts antlm reads, with the BabyLM 2024 task definitions.

- `babylm2024`: the official `evaluation_data/` folder: `blimp_filtered/*.jsonl`,
  `supplement_filtered/*.jsonl`, `ewok_filtered/*.jsonl` (or `ewok_filtered.zip`), `glue_filtered/`.
- `shared`: this project's `../shared/data`: `blimp_filtered/`, `blimp_supplement/`,
  `ewok/ewok_filtered.zip` (password-protected; read in memory, never extracted), `glue/`.

Every item is a two-way choice with the correct answer first, as in the 2024 task YAMLs:
BLiMP and the supplement compare `sentence_good` with `sentence_bad` (empty context); EWoK
compares `Target1` with `Target2` given `Context1`.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from antlm.errors import UserError

ZERO_SHOT_TASKS = ("blimp", "blimp_supplement", "ewok")
ALL_TASKS = ZERO_SHOT_TASKS + ("glue",)
EWOK_PASSWORD_ENV = "ANTLM_EWOK_PASSWORD"
EWOK_DEFAULT_PASSWORD = "ewok"  # the password EWoK's terms of use publish for its ZIPs
BLIMP_PARADIGMS = 67
SUPPLEMENT_TASKS = 5
EWOK_DOMAINS = 11


@dataclass(frozen=True)
class Item:
    id: str
    context: str
    good: str
    bad: str


def detect_layout(data_dir: Path) -> str:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"evaluation data directory not found: {data_dir}")
    if (data_dir / "blimp_supplement").is_dir() or (data_dir / "ewok" / "ewok_filtered.zip").is_file():
        return "shared"
    if (data_dir / "supplement_filtered").is_dir() or (data_dir / "glue_filtered").is_dir():
        return "babylm2024"
    if (data_dir / "evaluation_data").is_dir():
        return detect_layout(data_dir / "evaluation_data")
    raise UserError(
        f"{data_dir} is neither a BabyLM 2024 evaluation_data/ folder (blimp_filtered/, supplement_filtered/, "
        "ewok_filtered/, glue_filtered/) nor the shared data layout (blimp_filtered/, blimp_supplement/, ewok/)"
    )


def resolve_root(data_dir: Path) -> Path:
    data_dir = Path(data_dir)
    if not (data_dir / "blimp_filtered").is_dir() and (data_dir / "evaluation_data").is_dir():
        return data_dir / "evaluation_data"
    return data_dir


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


def _field(row: dict, key: str, origin: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise UserError(f"{origin}:{row['_line']}: missing text field '{key}'")
    return value


def _pairs(rows: list[dict], origin: str, subtask: str, limit: Optional[int]) -> list[Item]:
    rows = rows[:limit] if limit else rows
    return [Item(f"{subtask}_{i}", "", _field(r, "sentence_good", origin), _field(r, "sentence_bad", origin))
            for i, r in enumerate(rows)]


def _read_dir(directory: Path, expected: int, task: str, limit: Optional[int]) -> dict[str, list[Item]]:
    if not directory.is_dir():
        raise UserError(f"task files for {task} not found: {directory}")
    files = sorted(directory.glob("*.jsonl"))
    if len(files) != expected:
        raise UserError(f"{directory} holds {len(files)} .jsonl files; {task} needs {expected}")
    return {f.stem: _pairs(_parse_jsonl(f.read_text(encoding="utf-8"), str(f)), str(f), f.stem, limit) for f in files}


def _ewok_items(rows: list[dict], origin: str, domain: str, limit: Optional[int]) -> list[Item]:
    rows = rows[:limit] if limit else rows
    return [Item(f"{domain}_{i}", _field(r, "Context1", origin), _field(r, "Target1", origin), _field(r, "Target2", origin))
            for i, r in enumerate(rows)]


def _read_ewok_zip(path: Path, limit: Optional[int]) -> dict[str, list[Item]]:
    password = os.environ.get(EWOK_PASSWORD_ENV, EWOK_DEFAULT_PASSWORD).encode()
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a valid ZIP archive") from None
    out = {}
    with archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".jsonl")):
            try:
                data = archive.read(name, pwd=password)  # in memory: EWoK's terms forbid plain-text copies
            except RuntimeError:
                raise UserError(f"{path}: wrong or missing EWoK password (set {EWOK_PASSWORD_ENV})") from None
            domain = Path(name).stem
            origin = f"{path}:{name}"
            out[domain] = _ewok_items(_parse_jsonl(io.TextIOWrapper(io.BytesIO(data), "utf-8").read(), origin), origin, domain, limit)
    if len(out) != EWOK_DOMAINS:
        raise UserError(f"{path} holds {len(out)} EWoK domains; expected {EWOK_DOMAINS}")
    return out


def load_task(data_dir: Path, task: str, limit: Optional[int] = None) -> dict[str, list[Item]]:
    """{subtask: items} for one zero-shot task; `limit` keeps the first N items of each subtask."""
    layout = detect_layout(data_dir)
    root = resolve_root(data_dir)
    if task == "blimp":
        return _read_dir(root / "blimp_filtered", BLIMP_PARADIGMS, task, limit)
    if task == "blimp_supplement":
        folder = "blimp_supplement" if layout == "shared" else "supplement_filtered"
        return _read_dir(root / folder, SUPPLEMENT_TASKS, task, limit)
    if task == "ewok":
        zipped = root / "ewok" / "ewok_filtered.zip" if layout == "shared" else root / "ewok_filtered.zip"
        if zipped.is_file():
            return _read_ewok_zip(zipped, limit)
        folder = root / "ewok_filtered"
        if not folder.is_dir():
            raise UserError(f"task files for ewok not found: {zipped} or {folder}")
        files = sorted(folder.glob("*.jsonl"))
        return {f.stem: _ewok_items(_parse_jsonl(f.read_text(encoding="utf-8"), str(f)), str(f), f.stem, limit) for f in files}
    raise UserError(f"unknown zero-shot task '{task}' (known: {', '.join(ZERO_SHOT_TASKS)})")


def parse_task_list(text: str) -> list[str]:
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in ALL_TASKS]
    if unknown or not tasks:
        raise UserError(f"unknown task '{','.join(unknown) or text}' (known: {', '.join(ALL_TASKS)})")
    return tasks
