"""Checkpoint files: clear errors for truncated and empty files, resume from the newest readable one,
atomic writes that are flushed before the rename and leave nothing behind when they fail."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from monai_mlip.atomic_io import read_checkpoint, save_atomic
from monai_mlip.errors import CheckpointError
from monai_mlip.handlers import latest_checkpoint


def write_checkpoints(directory, epochs=(1, 2, 3)):
    for epoch in epochs:
        save_atomic({"model": {"w": torch.full((64,), float(epoch))}}, directory / f"checkpoint_epoch={epoch}.pt")


def test_truncated_and_empty_checkpoints_name_the_file(tmp_path):
    write_checkpoints(tmp_path, (1,))
    good = tmp_path / "checkpoint_epoch=1.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"truncated\.pt: cannot be loaded"):
        read_checkpoint(truncated)
    with pytest.raises(CheckpointError, match=r"empty\.pt: the file is empty"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")
    assert read_checkpoint(good)["model"]["w"][0] == 1


def test_resume_takes_the_newest_readable_checkpoint_and_names_the_skipped(tmp_path, caplog):
    write_checkpoints(tmp_path)
    newest = tmp_path / "checkpoint_epoch=3.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    (tmp_path / "checkpoint_epoch=2.pt").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="monai_mlip.handlers"):
        assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")
    assert "checkpoint_epoch=3.pt" in caplog.text and "checkpoint_epoch=2.pt" in caplog.text
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.pt"
    save_atomic({"w": torch.ones(3)}, target)
    with pytest.raises(Exception):  # noqa: B017  (torch cannot pickle a lambda; the type is torch's business)
        save_atomic({"w": lambda: None}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert read_checkpoint(target)["w"].tolist() == [1, 1, 1]


def test_the_data_is_flushed_to_disk_before_the_rename(tmp_path, monkeypatch):
    calls = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), replace(a, b))[1])
    save_atomic({"w": torch.ones(3)}, tmp_path / "model.pt")
    assert calls[:2] == ["fsync", "replace"]
