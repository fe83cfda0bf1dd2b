"""Atomic writes: a file or directory is written under a temporary name beside its final one and
renamed into place, so a reader (or a resume after a crash) sees the old version or the new one,
never a part. Every write antlm makes to a run, a cache, an export or a results file goes through
here, and a failure (a full disk, a revoked permission) is one `WriteError` line, with the
temporary copy removed and whatever was there before left as it was."""
from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from safetensors import SafetensorError

from antlm.errors import UserError

# What a write can fail with: the OS's errors, and safetensors', which wraps the OS error of a
# full disk in its own exception ("IoError(Os { code: 28, ... message: \"No space left on device\" })").
WRITE_ERRORS = (OSError, SafetensorError)


class WriteError(UserError):
    def __init__(self, path: Path, reason: str):
        super().__init__(f"could not write {path}: {reason}")
        self.path, self.reason = path, reason


def reason_of(err: BaseException) -> str:
    """The OS's words for a failed write ("No space left on device"), on one line."""
    if isinstance(err, OSError):
        return str(err.strerror or err).splitlines()[0]
    found = re.search(r'message: "([^"]+)"', str(err))
    return found.group(1) if found else (str(err) or type(err).__name__).splitlines()[0]


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (POSIX: the directory entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def replace_file(path: Path, write: Callable[[Path], None], durable: bool = False) -> Path:
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path` in one rename.
    `durable`: the data reaches the disk before the rename (checkpoints, the token cache)."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        write(tmp)
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except WRITE_ERRORS as err:
        raise WriteError(path, reason_of(err)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str, durable: bool = False) -> Path:
    return replace_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable)


def write_json(path: Path, data, durable: bool = False, indent: int = 1) -> Path:
    return write_text(path, json.dumps(data, indent=indent), durable)


def _swap(tmp: Path, final: Path) -> None:
    """Move the old directory aside first, so that no failure leaves `final` missing or half-written."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is None:
        return
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


@contextmanager
def replace_dir(final: Path, durable: bool = False, tmp: Optional[Path] = None) -> Iterator[Path]:
    """`with replace_dir(final) as tmp:` fill `tmp`; on leaving the block it replaces `final` (an
    old `final` is removed only once the new one is in place). On any failure `tmp` is removed
    and `final` is as it was. `durable`: every file and the rename reach the disk."""
    final = Path(final)
    tmp = Path(tmp) if tmp is not None else temp_name(final)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        if durable:
            for path in tmp.rglob("*"):
                if path.is_file():
                    _fsync_file(path)
            fsync_dir(tmp)
        _swap(tmp, final)
        if durable:
            fsync_dir(final.parent)
    except WRITE_ERRORS as err:
        raise WriteError(final, reason_of(err)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
