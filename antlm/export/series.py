"""`antlm export RUN --to hf OUT --series`: the final model and every word checkpoint as one git
repository whose branches are Hugging Face revisions: `main` (the final model) and `chck_1M`,
`chck_2M`, ... (the run's word_checkpoints/), each a complete `transformers` export.

Pushing it to a hub model repository publishes the series the way the BabyLM 2025 pipeline reads
it (`from_pretrained(repo, revision="chck_1M")`). Everything runs locally through the `git`
command line with a fixed identity; nothing here touches the network. `*.safetensors` are marked
for git-lfs in .gitattributes, which the hub needs for large files (it takes effect where git-lfs
is installed; without it git stores them as plain blobs, which local loading does not mind).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from antlm.atomic import replace_dir
from antlm.errors import UserError
from antlm.export.hf import export_hf
from antlm.train.series import written_series

GIT_IDENTITY = ["-c", "user.name=antlm", "-c", "user.email=antlm@localhost", "-c", "commit.gpgsign=false"]
GITATTRIBUTES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", *GIT_IDENTITY, "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if result.returncode:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise UserError(f"git {args[0]} failed in {repo}: {message[-1] if message else result.returncode}")


def _commit_tree(repo: Path, model: Path, scratch: Path, branch: str, message: str, first: bool) -> None:
    if not first:
        # Orphan branches: each revision is its own snapshot, as the hub shows it, not a diff.
        _git(repo, "checkout", "-q", "--orphan", branch)
        _git(repo, "rm", "-rfq", "--ignore-unmatch", ".")
    exported = export_hf(model, scratch / branch)
    for path in exported.iterdir():
        shutil.copy2(path, repo / path.name)
    (repo / ".gitattributes").write_text(GITATTRIBUTES)
    _git(repo, "add", "-A", ".")
    _git(repo, "commit", "-q", "-m", message)


def export_series(run: str | Path, out_dir: str | Path, force: bool = False) -> tuple[Path, list[str]]:
    """Write the git repository; returns it and its branch names (main first)."""
    run, out = Path(run), Path(out_dir)
    if not (run / "final" / "config.json").is_file():
        raise UserError(f"--series needs a finished run directory with final/, got {run}")
    series = written_series(run, "export --series")
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty (use --force to replace it)")
    if out.resolve() == run.resolve() or out.resolve() in run.resolve().parents:
        raise UserError(f"the export directory {out} must not contain the run {run}")
    if shutil.which("git") is None:
        raise UserError("--series needs the git command line (it writes a git repository)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside OUT and renamed into place: OUT appears complete or not at all.
    with replace_dir(out) as tmp, tempfile.TemporaryDirectory(prefix="antlm-series-") as scratch:
        _git(tmp, "init", "-q", "-b", "main")
        _commit_tree(tmp, run / "final", Path(scratch), "main", f"final model of {run.name}", first=True)
        for name, path, entry in series:
            _commit_tree(tmp, path, Path(scratch), name, f"{name}: step {entry['step']}, "
                         f"{entry['words_seen']:,} words seen", first=False)
        _git(tmp, "checkout", "-q", "-f", "main")
    return out, ["main", *(name for name, _, _ in series)]
