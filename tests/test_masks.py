"""SIIM RLE and RSNA box masks, on crafted inputs and on every row of the real files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_mlip.data import BoxesToMaskd, RLEToMaskd, boxes_to_mask, read_siim_rle, rle_decode, rle_encode, rle_union
from monai_mlip.data.manifests import parse_rsna_patient, read_rsna_label_rows
from monai_mlip.errors import BoxError, RLEError
from tests.conftest import xrv_data_file


def test_rle_is_relative_and_column_major():
    # runs at flat (column-major) pixels 2-3 and 6: offset 2 length 2, then offset 2 from the end of that run
    mask = rle_decode(" 2 2 2 1", shape=(4, 3))
    expected = np.zeros((4, 3), np.uint8)
    expected[2:4, 0] = 1  # flat 2, 3 -> column 0, rows 2 and 3
    expected[2, 1] = 1  # flat 6 -> column 1, row 2
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == np.uint8
    assert rle_encode(mask) == "2 2 2 1"
    assert rle_encode(np.zeros((5, 5))) == "-1" and not rle_decode(" -1", (5, 5)).any()


@pytest.mark.parametrize(
    ("rle", "reason"),
    [("1 2 3", "odd number"), ("5 10 90 3", "past the"), ("-4 2", "positive"), ("3 x", "not an integer")],
)
def test_malformed_rle(rle, reason):
    with pytest.raises(RLEError, match=reason) as info:
        rle_decode(rle, (10, 10), item="1.2.3.4")
    assert "1.2.3.4" in str(info.value)


@pytest.mark.slow
def test_real_siim_rle_file_round_trips():
    rles = read_siim_rle(xrv_data_file("siim-pneumothorax-train-rle.csv.gz"))
    rows = [rle for runs in rles.values() for rle in runs]
    assert len(rles) > 10_000 and len(rows) > 3_000
    for image_id, runs in rles.items():
        for rle in runs:
            mask = rle_decode(rle, item=image_id)
            assert mask.any(), image_id
            encoded = rle_encode(mask)
            # the file's runs are canonical, so re-encoding gives the same text; otherwise decode again
            if encoded != " ".join(rle.split()):
                np.testing.assert_array_equal(rle_decode(encoded), mask, err_msg=image_id)
    several = next(image_id for image_id, runs in rles.items() if len(runs) > 1)
    union = rle_union(rles[several])
    assert union.sum() >= max(rle_decode(r).sum() for r in rles[several])


def test_boxes_to_mask_union_and_rounding():
    mask = boxes_to_mask([(1, 2, 3, 2), (3, 3, 2, 2), (0.5, 0, 1, 1)], shape=(6, 6))
    expected = np.zeros((6, 6), np.uint8)
    expected[2:4, 1:4] = 1
    expected[3:5, 3:5] = 1
    expected[0:1, 0:2] = 1  # the fractional box is rounded outwards
    np.testing.assert_array_equal(mask, expected)
    assert not boxes_to_mask(np.zeros((0, 4)), (4, 4)).any()


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        ((-1, 0, 2, 2), "negative"),
        ((0, 0, 0, 2), "non-positive"),
        ((5, 5, 4, 4), "past the"),
        ((1, 1, np.nan, 2), "finite"),
    ],
)
def test_bad_boxes(box, reason):
    with pytest.raises(BoxError, match=reason) as info:
        boxes_to_mask([box], (8, 8), item="patient-7")
    assert "patient-7" in str(info.value)


@pytest.mark.slow
def test_real_rsna_labels_every_row():
    grouped = read_rsna_label_rows(xrv_data_file("kaggle_stage_2_train_labels.csv.zip"))
    assert len(grouped) == 26684
    positives = 0
    coordinates = np.arange(1024)
    for patient_id, rows in grouped.items():
        target, boxes = parse_rsna_patient(patient_id, rows)
        assert boxes.shape == (target * len(rows), 4)
        if not target:
            continue
        positives += 1
        mask = boxes_to_mask(boxes, (1024, 1024), item=patient_id).astype(bool)
        # an independent rasterisation of the union by coordinate comparison, over the boxes' extent
        top, left = (int(v) for v in boxes[:, [1, 0]].min(axis=0))
        rows, cols = coordinates[top:, None], coordinates[None, left:]
        union = np.zeros((1024 - top, 1024 - left), bool)
        for x, y, w, h in boxes:
            union |= (rows >= y) & (rows < y + h) & (cols >= x) & (cols < x + w)
        assert mask.sum() == union.sum(), patient_id
        np.testing.assert_array_equal(mask[top:, left:], union, err_msg=patient_id)
    assert positives == 6012


def test_mask_transforms_follow_the_loaded_image():
    image = torch.zeros(1, 6, 5)
    out = RLEToMaskd("rle", id_key="image_id")({"image": image, "rle": "0 2\n13 1", "image_id": "x"})
    assert "rle" not in out and tuple(out["mask"].shape) == (1, 6, 5)
    assert out["mask"][0, :2, 0].tolist() == [1, 1] and out["mask"].sum() == 3
    out = BoxesToMaskd("boxes")({"image": image, "boxes": np.array([[1, 1, 2, 3]], np.float32)})
    assert out["mask"].sum() == 6 and "boxes" not in out


def test_boxes_touching_the_edge_after_rescaling_are_clipped_not_refused():
    """Every box touching the right/bottom edge stays valid when rescaled to any smaller size."""
    refused = 0
    for source in range(200, 260, 7):
        for target in range(100, 230, 3):
            scale = target / source
            half = source / 2
            box = [[half * scale, half * scale, half * scale, half * scale]]  # the lower-right quadrant
            mask = boxes_to_mask(box, (target, target))
            refused += int(mask[-1, -1] != 1)
    assert refused == 0
    with pytest.raises(BoxError, match="extends past"):  # a box really past the edge is still an error
        boxes_to_mask([[100, 100, 30, 10]], (120, 120))


@pytest.mark.parametrize("boxes", [[[1, 2, 3]], [[1, 2, 3, 4, 5]], [["a", 2, 3, 4]], [[1, 2], [3, 4, 5, 6]]])
def test_boxes_with_the_wrong_values_name_the_item(boxes):
    with pytest.raises(BoxError, match="patient-7"):
        boxes_to_mask(boxes, (10, 10), item="patient-7")
    transform = BoxesToMaskd("boxes", mask_key="label", id_key="patient_id")
    with pytest.raises(BoxError, match="patient-7"):
        transform({"image": torch.zeros(1, 10, 10), "boxes": boxes, "patient_id": "patient-7"})
