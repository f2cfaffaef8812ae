"""Unreadable images under on_error="skip": found by the header pass, or dropped from their batch at load time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from PIL import Image

from monai_mlip.data import (
    BuildReport,
    LoadCXRd,
    Manifest,
    SkipDataErrors,
    check_image_header,
    skip_bad_collate,
    verify_images,
)
from monai_mlip.errors import ImageReadError, MLIPDataError


def write_images(root: Path) -> dict[str, Path]:
    files = {}
    for name in ("good-1", "good-2", "damaged"):
        files[name] = root / f"{name}.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(files[name])
    data = files["damaged"].read_bytes()
    files["damaged"].write_bytes(data[: len(data) // 2])  # the header reads, the pixel data is cut
    files["empty"] = root / "empty.png"
    files["empty"].write_bytes(b"")
    files["text"] = root / "notes.dcm"
    files["text"].write_text("not an image at all")
    files["header-cut"] = root / "header-cut.jpg"
    files["header-cut"].write_bytes(b"\xff\xd8\xff")
    return files


def manifest_of(files: dict[str, Path], names) -> Manifest:
    return Manifest([{"image": str(files[n]), "id": n} for n in names], BuildReport("test"))


def test_header_pass_drops_and_counts_unreadable_files(tmp_path):
    files = write_images(tmp_path)
    assert check_image_header(files["good-1"]) == (64, 64)
    names = ["good-1", "empty", "text", "header-cut", "damaged", "good-2"]
    with pytest.raises(ImageReadError, match=r"empty\.png"):
        verify_images(manifest_of(files, names), on_error="raise")
    checked = verify_images(manifest_of(files, names), on_error="skip", num_workers=2)
    assert [item["id"] for item in checked] == ["good-1", "damaged", "good-2"]  # damaged pixels pass a header check
    assert checked.report.n_skipped == 3 and checked.report.kept == 3
    assert any("notes.dcm" in example for examples in checked.report.examples.values() for example in examples)


def test_a_damaged_image_is_dropped_from_its_batch_and_counted(tmp_path):
    files = write_images(tmp_path)
    dataset = Dataset(manifest_of(files, ["good-1", "damaged", "good-2"]), Compose([LoadCXRd("image")]))
    with pytest.raises(RuntimeError) as error:  # without the wrapper: MONAI's wrapped error, naming the file
        dataset[1]
    assert "damaged.png" in str(error.value.__cause__ or error.value)
    loader = DataLoader(SkipDataErrors(dataset), batch_size=3, collate_fn=skip_bad_collate, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 1, 64, 64) and batch["skipped_items"] == 1
    assert batch["id"] == ["good-1", "good-2"]
    with pytest.raises(MLIPDataError, match="none of its 1 items"):
        skip_bad_collate([None])


def test_other_errors_are_not_skipped():
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            raise KeyError("a bug, not bad data")

    with pytest.raises(KeyError):
        SkipDataErrors(Broken())[0]
