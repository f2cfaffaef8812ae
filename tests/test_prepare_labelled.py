"""Preparing RSNA, SIIM and CheXpert: the prepared set reads like its source, at the prepared size."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from monai_mlip.data import (
    BoxesToMaskd,
    LoadCXRd,
    RLEToMaskd,
    build_chexpert_5x200_manifest,
    build_rsna_manifest,
    build_siim_manifest,
    read_cxr,
)
from monai_mlip.data.manifests import PREPARED_REPORT, is_prepared
from monai_mlip.data.manifests.chexpert import CHEXPERT_5X200_CLASSES
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.errors import ImageReadError
from monai_mlip.prepare import prepare_chexpert, prepare_rsna, prepare_siim, resize_mask
from monai_mlip.prepare.__main__ import main
from monai_mlip.synthetic.layouts import write_rsna, write_siim

SOURCE_SIZE, PREPARED_SIZE = 256, 128


def _damage(path) -> None:
    path.write_bytes(path.read_bytes()[:400])  # a header and no pixels


def _mask(item: dict, key: str, transform) -> np.ndarray:
    loaded = transform(LoadCXRd("image")(item))
    return np.asarray(loaded["mask"])[0]


@pytest.fixture(scope="module")
def rsna(tmp_path_factory):
    source = tmp_path_factory.mktemp("rsna")
    write_rsna(source, 40, seed=1, image_size=SOURCE_SIZE)
    damaged = sorted((source / "stage_2_train_images").glob("*.dcm"))[3]
    _damage(damaged)
    out = tmp_path_factory.mktemp("rsna_prepared")
    report = prepare_rsna(source, out, longest_side=PREPARED_SIZE, num_workers=2, progress=False)
    return source, out, damaged.stem, report


def test_prepared_rsna_keeps_the_split_labels_and_scaled_boxes(rsna):
    source, out, damaged, report = rsna
    assert is_prepared(out) and not is_prepared(source)
    assert report.kept == 39 and damaged in json.dumps(json.loads((out / PREPARED_REPORT).read_text())["examples"])
    for split in ("train", "valid", "test", "all"):
        native = {item["patient_id"]: item for item in build_rsna_manifest(source, split)}
        prepared = build_rsna_manifest(out, split, on_error="skip")
        assert {item["patient_id"] for item in prepared} == set(native) - {damaged}  # the same split
        for item in prepared:
            assert item["image"].endswith(".png") and item["label"] == native[item["patient_id"]]["label"]
            np.testing.assert_allclose(item["boxes"], native[item["patient_id"]]["boxes"] * PREPARED_SIZE / SOURCE_SIZE)
    with pytest.raises(ImageReadError, match=damaged):
        build_rsna_manifest(out, "all")  # the image that could not be prepared is a missing image


def test_prepared_rsna_boxes_cover_the_same_region(rsna):
    source, out, _, _ = rsna
    native = {item["patient_id"]: item for item in build_rsna_manifest(source, "all", on_error="skip")}
    to_mask = BoxesToMaskd("boxes")
    positives = [item for item in build_rsna_manifest(out, "all", on_error="skip") if item["label"]]
    assert positives
    for item in positives[:5]:
        small = _mask(item, "boxes", to_mask)
        large = _mask(native[item["patient_id"]], "boxes", to_mask)
        expected = resize_mask(large, small.shape)
        assert small.shape == (PREPARED_SIZE, PREPARED_SIZE)
        # equal up to the rounding of a box edge that falls on half a prepared pixel
        assert (small & expected).sum() / (small | expected).sum() > 0.95


@pytest.fixture(scope="module")
def siim(tmp_path_factory):
    source = tmp_path_factory.mktemp("siim")
    write_siim(source, 40, seed=2, image_size=SOURCE_SIZE)
    out = tmp_path_factory.mktemp("siim_prepared")
    report = prepare_siim(source, out, longest_side=PREPARED_SIZE, num_workers=0, progress=False)
    return source, out, report


def test_prepared_siim_masks_follow_their_images(siim):
    source, out, report = siim
    assert report.kept == 40
    with open(out / "train-rle.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["ImageId"] for row in rows}) == len(rows) == 40  # one row per image: the union
    assert {(row["image_height"], row["image_width"]) for row in rows} == {(str(PREPARED_SIZE), str(PREPARED_SIZE))}
    decode = RLEToMaskd("rle")
    for split in ("train", "valid", "test"):
        native = {item["image_id"]: item for item in build_siim_manifest(source, split, image_shape=None)}
        prepared = build_siim_manifest(out, split)  # the RLE is checked against the recorded 128 x 128
        assert {item["image_id"] for item in prepared} == set(native)
        for item in prepared:
            original = native[item["image_id"]]
            assert item["label"] == original["label"] and item["image"].endswith(".png")
            small, large = _mask(item, "rle", decode), _mask(original, "rle", decode)
            np.testing.assert_array_equal(small, resize_mask(large, (PREPARED_SIZE, PREPARED_SIZE)))
            assert small.any() == bool(item["label"])


def test_a_lesion_smaller_than_a_prepared_pixel_is_kept():
    mask = np.zeros((64, 64), np.uint8)
    mask[10, 21] = 1
    small = resize_mask(mask, (16, 16))
    assert small.sum() == 1 and small[2, 5] == 1
    big = np.zeros((64, 64), np.uint8)
    big[8:16, 20:28] = 1
    np.testing.assert_array_equal(np.argwhere(resize_mask(big, (16, 16))), [[r, c] for r in (2, 3) for c in (5, 6)])


def test_prepared_chexpert_draws_the_same_5x200(tmp_path):
    rng = np.random.default_rng(0)
    header = ["Path", "Sex", "Frontal/Lateral", *CHEXPERT_LABELS]
    rows = []
    for number in range(30):
        view = "Lateral" if number % 5 == 4 else "Frontal"
        path = f"CheXpert-v1.0/train/patient{number:05d}/study1/view1_{view.lower()}.jpg"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (300, 240), dtype=np.uint8)).save(tmp_path / path)
        labels = {name: "0.0" for name in CHEXPERT_LABELS}
        labels[CHEXPERT_5X200_CLASSES[number % 5]] = "1.0"
        rows.append([path, "F", view, *(labels[name] for name in CHEXPERT_LABELS)])
    with open(tmp_path / "train.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    out = tmp_path / "prepared"
    report = prepare_chexpert(tmp_path / "train.csv", tmp_path, out, longest_side=150, num_workers=0, progress=False)
    assert report.kept == 24 and report.filtered == {"lateral view": 6}
    native = build_chexpert_5x200_manifest(tmp_path / "train.csv", tmp_path, per_class=3, seed=1)
    prepared = build_chexpert_5x200_manifest(out / "train.csv", out, per_class=3, seed=1)
    assert [(i["label"], i["image"][len(str(out)) :]) for i in prepared] == [
        (i["label"], i["image"][len(str(tmp_path)) :].replace(".jpg", ".png")) for i in native
    ]
    assert read_cxr(prepared[0]["image"])[0].shape == (150, 120)


def test_every_dataset_has_a_command(tmp_path, siim):
    source, _, _ = siim
    out = tmp_path / "siim"
    assert main(["siim", "--dataset_dir", str(source), "--out_dir", str(out), "--longest_side", "64"]) == 0
    assert is_prepared(out) and len(build_siim_manifest(out, "all")) == 40
    first = next((out / "dicom-images-train").glob("*.png"))
    assert Image.open(first).size == (64, 64)
