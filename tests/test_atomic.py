"""The one atomic-write helper (antlm/atomic.py): a failed write, whether the OS's error or
safetensors' wrapping of a full disk, is one WriteError line, leaves no temporary copy, and leaves
what was there before untouched."""
from __future__ import annotations

import errno
import json

import pytest
import torch
from safetensors import SafetensorError

from antlm import atomic
from antlm.atomic import WriteError, replace_dir, write_json

torch.set_num_threads(1)
# What safetensors raises when the disk fills during save_file (its Rust I/O error, verbatim).
FULL_DISK = SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                            'message: "No space left on device" })')


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "data.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}

    def fail(tmp):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError) as raised:
        atomic.replace_file(path, fail)
    assert str(raised.value) == f"could not write {path}: No space left on device"
    assert json.loads(path.read_text()) == {"a": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


@pytest.mark.parametrize("error", [FULL_DISK, OSError(errno.EACCES, "Permission denied")])
def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path, error):
    final = tmp_path / "final"
    with replace_dir(final) as tmp:
        (tmp / "weights").write_text("old")
    with pytest.raises(WriteError) as raised:
        with replace_dir(final) as tmp:
            (tmp / "weights").write_text("half")
            raise error
    reason = "No space left on device" if error is FULL_DISK else "Permission denied"
    assert str(raised.value) == f"could not write {final}: {reason}" and "\n" not in str(raised.value)
    assert (final / "weights").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["final"]
    with replace_dir(final) as tmp:
        (tmp / "weights").write_text("new")
    assert (final / "weights").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_other_errors_pass_through_and_clean_up(tmp_path):
    with pytest.raises(KeyError):
        with replace_dir(tmp_path / "final") as tmp:
            (tmp / "x").write_text("x")
            raise KeyError("a bug, not a write failure")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_in_safetensors_during_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    from antlm.train import checkpoint as ckpt

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    root = tmp_path / "checkpoints"
    ckpt.save_checkpoint(root, 10, model, optimizer, {})

    def full(tensors, path, *args, **kwargs):
        open(path, "wb").write(b"\0" * 16)  # the partial file a full disk leaves behind
        raise FULL_DISK

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(ckpt.CheckpointError) as raised:
        ckpt.save_checkpoint(root, 20, model, optimizer, {})
    text = str(raised.value)
    assert "No space left on device" in text and "step_00000010, is untouched" in text and "\n" not in text
    assert [p.name for p in root.iterdir()] == ["step_00000010"] and ckpt.verify(root / "step_00000010") is None


def test_a_full_disk_during_an_export_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from antlm.data.tokenizer import train_tokenizer
    from antlm.export import hf
    from conftest import WORDS, save_random_model

    tokenizer = train_tokenizer([" ".join(WORDS)] * 20, 300)
    run = save_random_model(tmp_path / "run", tokenizer, "babyllama")

    def full(*args, **kwargs):
        raise FULL_DISK

    monkeypatch.setattr(hf, "save_file", full)
    out = tmp_path / "hf"
    with pytest.raises(WriteError) as raised:
        hf.export_hf(run, out)
    assert str(raised.value) == f"could not write {out}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
