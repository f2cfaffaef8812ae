"""Manifest builders on small layouts written here in the native formats, and on real index files."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_mlip.data import (
    CHEXPERT_5X200_CLASSES,
    CHEXPERT_LABELS,
    build_chexpert_5x200_manifest,
    build_mimic_cxr_manifest,
    build_ms_cxr_manifest,
    build_rsna_manifest,
    build_siim_manifest,
    sample_fraction,
    split_by_key,
)
from monai_mlip.data.manifests.common import read_csv_rows
from monai_mlip.errors import BoxError, ImageReadError, ManifestError, MLIPDataError, ReportError, RLEError
from tests.conftest import write_dicom, xrv_data_file

REPORT = " FINAL REPORT\n INDICATION: ___ cough.\n FINDINGS: Right lower lobe opacity.\n IMPRESSION: Pneumonia.\n"


def _write_csv_gz(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _mimic_layout(root: Path, studies: int = 6) -> list[tuple[str, str, str, str, str]]:
    """Studies with a PA image and a lateral image; split train/validate/test by study index."""
    rows = []
    for number in range(studies):
        subject, study = f"1{number:07d}", f"5{number:07d}"
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True)
        (folder.parent / f"s{study}.txt").write_text(REPORT.replace("Right", ["Right", "Left"][number % 2]))
        split = ("train", "train", "train", "train", "validate", "test")[number % 6]
        for view, suffix in (("PA", "a"), ("LATERAL", "b")):
            dicom_id = f"{number:08x}-{suffix}"
            Image.fromarray(np.full((8, 8), 40 * number % 256, np.uint8)).save(folder / f"{dicom_id}.jpg")
            rows.append((dicom_id, study, subject, split, view))
    split_header = ["dicom_id", "study_id", "subject_id", "split"]
    _write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", split_header, [r[:4] for r in rows])
    _write_csv_gz(
        root / "mimic-cxr-2.0.0-metadata.csv.gz",
        ["dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns"],
        [(r[0], r[2], r[1], r[4], 8, 8) for r in rows],
    )
    labels = [[r[2], r[1], *(["1.0", "", "-1.0", "0.0"] * 4)[: len(CHEXPERT_LABELS)]] for r in rows[::2]]
    _write_csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *CHEXPERT_LABELS], labels)
    return rows


def test_mimic_manifest_filters_views_and_splits(tmp_path):
    _mimic_layout(tmp_path)
    train = build_mimic_cxr_manifest(tmp_path, split="train")
    assert len(train) == 4 and {item["view"] for item in train} == {"PA"}
    first = train[0]
    assert Path(first["image"]).is_file() and first["split"] == "train"
    assert first["report"] == "Pneumonia. Right lower lobe opacity."
    assert first["labels"].dtype == np.float32 and first["labels"].shape == (14,)
    assert first["labels"][0] == 1 and math.isnan(first["labels"][1]) and first["labels"][2] == -1
    assert train.report.filtered == {"view LATERAL": 4, "split validate": 2, "split test": 2}
    assert train.report.found == {"images": 12, "studies": 6}
    every_view = build_mimic_cxr_manifest(tmp_path, split=None, views=None)
    assert len(every_view) == 12


def assert_every_image_accounted_for(manifest):
    report = manifest.report
    assert report.kept == len(manifest)
    listed = report.kept + sum(report.filtered.values()) + report.missing.get("image file", 0) + report.n_skipped
    assert listed == report.found["images"], report.summary()


def test_mimic_missing_files_raise_or_are_counted(tmp_path):
    rows = _mimic_layout(tmp_path)
    dicom_id, study, subject = rows[0][:3]
    (tmp_path / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg").unlink()
    report_path = tmp_path / "files" / "p10" / "p10000001" / "s50000001.txt"
    report_path.write_bytes(b" FINDINGS: \xff\xfe opacity")
    with pytest.raises(ImageReadError, match="image file not found") as info:
        build_mimic_cxr_manifest(tmp_path)
    assert dicom_id in str(info.value)
    manifest = build_mimic_cxr_manifest(tmp_path, on_error="skip")
    assert len(manifest) == 2
    assert manifest.report.missing == {"image file": 1}
    assert list(manifest.report.skipped) == [next(iter(manifest.report.skipped))]
    # the bad report's study has one frontal training image left: one image skipped
    assert "not UTF-8" in next(iter(manifest.report.skipped)) and manifest.report.n_skipped == 1
    assert "s50000001.txt" in manifest.report.summary()
    assert_every_image_accounted_for(manifest)


def test_mimic_skips_count_every_image_and_cover_bad_rows_and_labels(tmp_path):
    _mimic_layout(tmp_path)
    (tmp_path / "files" / "p10" / "p10000001" / "s50000001.txt").write_bytes(b"\x00" * 32)  # a two-image study
    (tmp_path / "files" / "p10" / "p10000003" / "s50000003.txt").unlink()
    split = tmp_path / "mimic-cxr-2.0.0-split.csv.gz"
    with gzip.open(split, "at") as handle:
        handle.write("0000000f-a,50000000,10000000\n")  # three values for four columns
    labels = tmp_path / "mimic-cxr-2.0.0-chexpert.csv.gz"
    with gzip.open(labels, "at") as handle:
        handle.write(",".join(["10000002", "50000002", "bogus", *["nan"] * (len(CHEXPERT_LABELS) - 1)]) + "\n")
    with pytest.raises(ManifestError, match="3 values for 4 columns"):  # under "raise" the first fault stops it
        build_mimic_cxr_manifest(tmp_path, split=None, views=None)
    manifest = build_mimic_cxr_manifest(tmp_path, split=None, views=None, on_error="skip")
    skipped = manifest.report.skipped
    assert sum(n for reason, n in skipped.items() if "binary data" in reason) == 2  # both images of the study
    assert sum(n for reason, n in skipped.items() if "report file not found" in reason) == 2
    assert manifest.report.missing == {"report file": 1}
    assert skipped["3 values for 4 columns"] == 1 and sum(n for r, n in skipped.items() if "bogus" in r) == 1
    assert len(manifest) == 12 - 4
    # every listed image is kept, filtered, missing or skipped, once (the bad label row is a row, not an image)
    report = manifest.report
    images = report.kept + sum(report.filtered.values()) + report.n_skipped - 1
    assert images == report.found["images"] == 13


def test_mimic_separate_reports_dir_and_missing_report(tmp_path):
    images = tmp_path / "jpg"
    images.mkdir()
    _mimic_layout(images)
    reports = tmp_path / "reports"
    for txt in images.rglob("*.txt"):
        target = reports / txt.relative_to(images)
        target.parent.mkdir(parents=True, exist_ok=True)
        txt.rename(target)
    assert len(build_mimic_cxr_manifest(images, reports_dir=reports)) == 4
    with pytest.raises(ReportError, match="report file not found"):
        build_mimic_cxr_manifest(images)


def test_mimic_fraction_is_seeded_by_study(tmp_path):
    _mimic_layout(tmp_path, studies=12)
    half = build_mimic_cxr_manifest(tmp_path, split=None, views=None, fraction=0.5, seed=3)
    again = build_mimic_cxr_manifest(tmp_path, split=None, views=None, fraction=0.5, seed=3)
    assert [i["dicom_id"] for i in half] == [i["dicom_id"] for i in again]
    assert len({i["study_id"] for i in half}) == 6 and len(half) == 12  # whole studies, both views


def test_mimic_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="split index is missing"):
        build_mimic_cxr_manifest(tmp_path)


def _rsna_layout(root: Path, patients: int = 40) -> None:
    (root / "stage_2_train_images").mkdir(parents=True)
    lines = ["patientId,x,y,width,height,Target"]
    classes = ["patientId,class"]
    for number in range(patients):
        pid = f"patient-{number:03d}"
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", np.full((16, 16), number, np.uint16))
        if number % 3 == 0:
            lines += [f"{pid},1.0,2.0,4.0,3.0,1", f"{pid},8,8,4,4,1"]
            classes.append(f"{pid},Lung Opacity")
        else:
            lines.append(f"{pid},,,,,0")
            classes.append(f"{pid},Normal")
    (root / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(classes) + "\n")


def test_rsna_manifest_split_by_patient_with_boxes(tmp_path):
    _rsna_layout(tmp_path)
    splits = {name: build_rsna_manifest(tmp_path, split=name) for name in ("train", "valid", "test")}
    assert [len(splits[n]) for n in ("train", "valid", "test")] == [28, 6, 6]
    ids = [{item["patient_id"] for item in splits[n]} for n in splits]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    positive = next(item for item in build_rsna_manifest(tmp_path, split="all") if item["label"] == 1)
    np.testing.assert_array_equal(positive["boxes"], [[1, 2, 4, 3], [8, 8, 4, 4]])
    assert positive["class_name"] == "Lung Opacity"
    tenth = build_rsna_manifest(tmp_path, split="train", fraction=0.1, seed=1)
    again = build_rsna_manifest(tmp_path, fraction=0.1, seed=1)
    assert [i["patient_id"] for i in tenth] == [i["patient_id"] for i in again]
    assert {i["label"] for i in tenth} == {0, 1}  # stratified: both classes kept


def test_rsna_bad_rows(tmp_path):
    _rsna_layout(tmp_path, patients=3)
    labels = tmp_path / "stage_2_train_labels.csv"
    labels.write_text(labels.read_text() + "patient-bad,-5,2,4,3,1\npatient-odd,,,,,2\n")
    with pytest.raises(BoxError, match="negative") as info:
        build_rsna_manifest(tmp_path, split="all")
    assert "patient-bad" in str(info.value)
    manifest = build_rsna_manifest(tmp_path, split="all", on_error="skip")
    assert len(manifest) == 3 and manifest.report.n_skipped == 2
    assert any("Target must be 0 or 1" in reason for reason in manifest.report.skipped)


def _siim_layout(root: Path, images: int = 20) -> dict[str, np.ndarray]:
    from monai_mlip.data import rle_encode

    masks = {}
    lines = ["ImageId, EncodedPixels"]
    for number in range(images):
        image_id = f"1.2.276.0.7230010.3.1.4.{number}"
        folder = root / "dicom-images-train" / f"1.2.3.{number}" / f"1.2.3.{number}.1"
        folder.mkdir(parents=True)
        write_dicom(folder / f"{image_id}.dcm", np.zeros((16, 16), np.uint16))
        mask = np.zeros((16, 16), np.uint8)
        if number % 4 == 0:
            first, second = np.zeros_like(mask), np.zeros_like(mask)
            first[2:5, 3:6] = 1
            second[10:12, 10:14] = 1
            lines += [f"{image_id}, {rle_encode(first)}", f"{image_id}, {rle_encode(second)}"]
            mask = first | second
        else:
            lines.append(f"{image_id}, -1")
        masks[image_id] = mask
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return masks


def test_siim_manifest_unions_rows_and_splits_by_image(tmp_path):
    from monai_mlip.data import LoadCXRd, RLEToMaskd

    masks = _siim_layout(tmp_path)
    everything = build_siim_manifest(tmp_path, split="all", image_shape=(16, 16))
    assert len(everything) == 20 and sum(item["label"] for item in everything) == 5
    load = LoadCXRd("image")
    decode = RLEToMaskd("rle")
    for item in everything:
        out = decode(load(item))
        np.testing.assert_array_equal(out["mask"][0].numpy(), masks[item["image_id"]], err_msg=item["image_id"])
    parts = [build_siim_manifest(tmp_path, split=s, image_shape=(16, 16)) for s in ("train", "valid", "test")]
    assert sum(map(len, parts)) == 20
    assert not {i["image_id"] for i in parts[0]} & {i["image_id"] for i in parts[1] + parts[2]}
    balanced = build_siim_manifest(tmp_path, split="train", image_shape=(16, 16), balance_train=True)
    n_positive = sum(item["label"] for item in balanced)
    assert n_positive > 0 and len(balanced) == 2 * n_positive


def test_siim_malformed_rle_and_missing_dicom(tmp_path):
    _siim_layout(tmp_path, images=4)
    rle_file = tmp_path / "train-rle.csv"
    rle_file.write_text(rle_file.read_text() + "1.2.bad, 3 4 5\n1.2.gone, -1\n")
    with pytest.raises(RLEError, match="odd number") as info:
        build_siim_manifest(tmp_path, split="all", image_shape=(16, 16))
    assert "1.2.bad" in str(info.value)
    manifest = build_siim_manifest(tmp_path, split="all", image_shape=(16, 16), on_error="skip")
    assert len(manifest) == 4
    assert manifest.report.n_skipped == 1 and manifest.report.missing == {"image file": 1}


def test_real_siim_rle_file_through_the_reader():
    """The real file's header quirk (``ImageId, EncodedPixels``) is read with stripped names."""
    path = xrv_data_file("siim-pneumothorax-train-rle.csv.gz")
    rows = list(read_csv_rows(path, required=("ImageId", "EncodedPixels")))
    assert len(rows) == 12954 and all(row["ImageId"] == row["ImageId"].strip() for row in rows)


@pytest.mark.slow
def test_chexpert_5x200_on_the_real_label_file():
    path = xrv_data_file("chexpert_train.csv.gz")
    manifest = build_chexpert_5x200_manifest(path, "/nonexistent", check_files=False, seed=0)
    assert len(manifest) == 1000
    counts = np.bincount([item["label"] for item in manifest])
    assert counts.tolist() == [200] * 5
    rows = {row["Path"]: row for row in read_csv_rows(path)}
    diseases = [name for name in CHEXPERT_LABELS if name != "No Finding"]
    for item in manifest:
        row = rows[item["image"].removeprefix("/nonexistent/")]
        assert row["Frontal/Lateral"] == "Frontal"
        values = {name: float(row[name] or 0) for name in diseases}
        assert values[CHEXPERT_5X200_CLASSES[item["label"]]] == 1
        assert sum(values.values()) == 1 and min(values.values()) == 0
    again = build_chexpert_5x200_manifest(path, "/nonexistent", check_files=False, seed=0)
    assert [i["image"] for i in again] == [i["image"] for i in manifest]


def test_ms_cxr_groups_boxes_by_phrase(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a.jpg")
    header = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
    rows = [
        "a,Pneumonia,Bilateral opacities,a.dcm,1,2,5,5,30,20,test",
        "a,Pneumonia,Bilateral opacities,a.dcm,15,2,5,5,30,20,test",
        "a,Pneumothorax,Apical pneumothorax,a.dcm,1,1,4,4,30,20,train",
    ]
    (tmp_path / "ms.csv").write_text("\n".join([header, *rows]) + "\n")
    manifest = build_ms_cxr_manifest(tmp_path / "ms.csv", tmp_path, image_suffix="jpg")
    assert len(manifest) == 2
    assert manifest[0]["boxes"].shape == (2, 4) and manifest[0]["image_size"] == (20, 30)
    assert manifest[0]["image"].endswith("a.jpg")
    assert len(build_ms_cxr_manifest(tmp_path / "ms.csv", tmp_path, split="test", image_suffix="jpg")) == 1
    (tmp_path / "ms.csv").write_text("\n".join([header, rows[0].replace(",1,2,5,5,", ",28,2,5,5,")]) + "\n")
    with pytest.raises(BoxError, match="outside"):
        build_ms_cxr_manifest(tmp_path / "ms.csv", tmp_path, image_suffix="jpg")


def test_split_and_fraction_helpers_are_reproducible():
    items = [{"patient": f"p{i // 2}", "label": i % 3 == 0} for i in range(200)]
    a = split_by_key(items, "patient", seed=0)
    b = split_by_key(items, "patient", seed=0)
    assert a == b and sum(len(v) for v in a.values()) == 200
    assert not {i["patient"] for i in a["train"]} & {i["patient"] for i in a["test"]}
    assert split_by_key(items, "patient", seed=1) != a
    small = sample_fraction(items, 0.01, seed=5, stratify_key="label")
    ten = sample_fraction(items, 0.1, seed=5, stratify_key="label")
    assert len(small) == 2 and len(ten) == 20
    assert all(item in ten for item in small)  # nested draws
    assert sample_fraction(items, 0.1, seed=5, stratify_key="label") == ten
    assert sample_fraction(items, 0.1, seed=6, stratify_key="label") != ten
    with pytest.raises(ValueError, match="fraction"):
        sample_fraction(items, 0.0)


def test_mimic_one_image_per_study_prefers_the_first_view(tmp_path):
    _mimic_layout(tmp_path)
    every_view = build_mimic_cxr_manifest(tmp_path, split="train", views=("LATERAL", "PA"), one_per_study=True)
    assert len(every_view) == 4 and {item["view"] for item in every_view} == {"LATERAL"}
    assert every_view.report.filtered["other images of the study"] == 4


def test_attach_reports_joins_grounding_to_studies(tmp_path):
    rows = _mimic_layout(tmp_path)
    studies = build_mimic_cxr_manifest(tmp_path, split="train")
    header = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height"
    lines = [header]
    for dicom_id, study, subject, *_ in rows[:4]:  # train studies 0 and 1: a PA and a lateral image each
        path = f"files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg"
        lines.append(f"{dicom_id},Pneumonia,Right lower lobe opacity.,{path},1,1,3,3,8,8")
    (tmp_path / "ms.csv").write_text("\n".join(lines) + "\n")
    from monai_mlip.data import attach_reports

    grounded = attach_reports(build_ms_cxr_manifest(tmp_path / "ms.csv", tmp_path), studies)
    assert len(grounded) == 2 and all(item["report"].startswith("Pneumonia.") for item in grounded)
    assert grounded.report.filtered == {"image not in the studies given (other split or view)": 2}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_boxes_are_refused_or_skipped(tmp_path, value):
    _rsna_layout(tmp_path, patients=3)
    labels = tmp_path / "stage_2_train_labels.csv"
    labels.write_text(labels.read_text() + f"patient-nan,{value},2,4,3,1\npatient-short,1,2,3\n")
    with pytest.raises(MLIPDataError, match=r"patient-nan|values for"):
        build_rsna_manifest(tmp_path, split="all")
    manifest = build_rsna_manifest(tmp_path, split="all", on_error="skip")
    assert len(manifest) == 3 and manifest.report.n_skipped == 2  # the non-finite box and the short row
    assert "patient-nan" not in {item["patient_id"] for item in manifest}

    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a.jpg")
    header = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
    good = "a,Pneumonia,Opacity,a.dcm,1,2,5,5,30,20,test"
    bad = f"a,Edema,Haze,a.dcm,1,{value},5,5,30,20,test"
    (tmp_path / "ms.csv").write_text("\n".join([header, good, bad, "a,Edema,Short row"]) + "\n")
    with pytest.raises(MLIPDataError):
        build_ms_cxr_manifest(tmp_path / "ms.csv", tmp_path, image_suffix="jpg")
    manifest = build_ms_cxr_manifest(tmp_path / "ms.csv", tmp_path, image_suffix="jpg", on_error="skip")
    assert [item["phrase"] for item in manifest] == ["Opacity"] and manifest.report.n_skipped == 2


def test_chexpert_nan_labels_are_unmentioned_and_bad_labels_skipped(tmp_path):
    header = ["Path", "Frontal/Lateral", *[n for n in CHEXPERT_LABELS if n != "No Finding"]]
    diseases = header[2:]
    rows = [
        ["p1.jpg", "Frontal", *["1.0" if n == "Edema" else "nan" for n in diseases]],
        ["p2.jpg", "Frontal", *["1.0" if n == "Edema" else "oops" for n in diseases]],
        ["p3.jpg", "Frontal", "1.0"],
    ]
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    with pytest.raises(MLIPDataError):
        build_chexpert_5x200_manifest(path, tmp_path, check_files=False)
    manifest = build_chexpert_5x200_manifest(path, tmp_path, check_files=False, on_error="skip")
    assert [item["image"].endswith("p1.jpg") for item in manifest] == [True]  # "nan" is unmentioned, i.e. 0 here
    assert manifest.report.n_skipped == 2
