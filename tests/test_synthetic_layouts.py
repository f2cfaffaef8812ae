"""Synthetic datasets written in the native layouts and read back by the manifest builders."""

from __future__ import annotations

import gzip
import hashlib
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_mlip.data import (
    LoadCXR,
    build_mimic_cxr_manifest,
    build_ms_cxr_manifest,
    build_rsna_manifest,
    build_siim_manifest,
    clean_text,
    read_cxr,
    rle_union,
    split_sentences,
)
from monai_mlip.data.manifests.common import read_csv_rows
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.synthetic import findings as findings_module
from monai_mlip.synthetic import render_study, write_mimic, write_rsna, write_siim
from monai_mlip.synthetic.__main__ import main
from monai_mlip.synthetic.identifiers import item_rng

SIZE = 64


def _rerender(layout: str, summary, index: int, **kwargs):
    """The study a writer rendered as item ``index``."""
    options = summary.options
    return render_study(item_rng(options["seed"], layout, index), options["image_size"], prevalence=layout, **kwargs)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    return write_mimic(tmp_path_factory.mktemp("mimic"), 40, seed=3, image_size=SIZE, lateral_fraction=0.2)


def test_mimic_layout_on_disk(mimic):
    root = mimic.root
    for name in ("split", "metadata", "chexpert"):
        path = root / f"mimic-cxr-2.0.0-{name}.csv.gz"
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    with gzip.open(root / "mimic-cxr-2.0.0-chexpert.csv.gz", "rt") as handle:
        header = handle.readline().strip()
    assert header == "subject_id,study_id," + ",".join(CHEXPERT_LABELS)
    for subject_id, study_id, *dicom_ids in mimic.ids:
        assert len(subject_id) == 8 and subject_id[0] == "1" and len(study_id) == 8 and study_id[0] == "5"
        folder = root / "files" / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"
        assert folder.with_name(f"s{study_id}.txt").is_file()
        for dicom_id in dicom_ids:
            assert [len(part) for part in dicom_id.split("-")] == [8] * 5
            int(dicom_id.replace("-", ""), 16)
            assert (folder / f"{dicom_id}.jpg").is_file()
    splits = {row["split"] for row in read_csv_rows(root / "mimic-cxr-2.0.0-split.csv.gz")}
    assert splits <= {"train", "validate", "test"} and "train" in splits
    views = [row["ViewPosition"] for row in read_csv_rows(root / "mimic-cxr-2.0.0-metadata.csv.gz")]
    assert {"LATERAL"} < set(views) <= {"PA", "AP", "LATERAL"}
    assert views.count("LATERAL") < len(views) / 2
    assert mimic.n_images == len(views) == sum(len(ids) - 2 for ids in mimic.ids)


def test_mimic_reads_back_through_the_manifest(mimic):
    manifest = build_mimic_cxr_manifest(mimic.root, split=None)
    assert len(manifest) == mimic.n_studies, manifest.report
    assert manifest.report.filtered.get("view LATERAL", 0) == mimic.n_images - mimic.n_studies
    by_study = {item["study_id"]: item for item in manifest}
    for index, (subject_id, study_id, *dicom_ids) in enumerate(mimic.ids):
        item = by_study[study_id]
        study = _rerender("mimic", mimic, index, lateral=len(dicom_ids) > 1)
        assert item["subject_id"] == subject_id and item["dicom_id"] == dicom_ids[0] and item["view"] == study.view
        expected = np.array([study.labels[c] for c in CHEXPERT_LABELS], np.float32)
        np.testing.assert_array_equal(np.isnan(item["labels"]), np.isnan(expected))
        np.testing.assert_array_equal(np.nan_to_num(item["labels"], nan=9), np.nan_to_num(expected, nan=9))
        sentences = split_sentences(item["report"])
        for finding in study.findings:
            assert clean_text(finding.sentence) in sentences
        image = LoadCXR()(item["image"])
        assert tuple(image.shape) == (1, SIZE, SIZE)
        assert float(np.abs(image[0].numpy() - study.image).mean()) < 0.01, "JPEG differs from the rendering"
    everything = build_mimic_cxr_manifest(mimic.root, split=None, views=None)
    assert len(everything) == mimic.n_images


def test_ms_cxr_boxes_match_the_findings(mimic):
    path = mimic.root / "MS_CXR_Local_Alignment_v1.1.0.csv"
    header = path.read_text().splitlines()[0]
    assert header == "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
    grounding = build_ms_cxr_manifest(path, mimic.root)
    assert len(grounding) > 5, grounding.report
    index_of = {ids[2]: i for i, ids in enumerate(mimic.ids)}
    split_of = {row["dicom_id"]: row["split"] for row in read_csv_rows(mimic.root / "mimic-cxr-2.0.0-split.csv.gz")}
    rows = list(read_csv_rows(path))
    assert all(row["split"] == split_of[row["dicom_id"]] for row in rows)
    for item in grounding:
        index = index_of[item["dicom_id"]]
        study = _rerender("mimic", mimic, index, lateral=len(mimic.ids[index]) > 3)
        (finding,) = [f for f in study.findings if f.sentence == item["phrase"]]
        assert not finding.uncertain and item["category"] == finding.category
        np.testing.assert_array_equal(item["boxes"], finding.boxes)
        assert item["image_size"] == (SIZE, SIZE)
        for x, y, w, h in item["boxes"].astype(int):
            assert finding.mask[y : y + h, x : x + w].any()


def test_mimic_dicom_option(tmp_path):
    summary = write_mimic(tmp_path, 12, seed=5, image_size=SIZE, image_format="dcm", lateral_fraction=0.0)
    manifest = build_mimic_cxr_manifest(tmp_path, split=None)
    assert len(manifest) == 12 and all(item["image"].endswith(".dcm") for item in manifest)
    photometric = set()
    for index, (_, study_id, dicom_id) in enumerate(summary.ids):
        study = _rerender("mimic", summary, index, lateral=False)
        (item,) = [i for i in manifest if i["study_id"] == study_id]
        assert item["dicom_id"] == dicom_id
        ds = pydicom.dcmread(item["image"])
        assert ds.Modality in ("CR", "DX") and ds.ViewPosition == study.view and ds.BodyPartExamined == "CHEST"
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.BitsAllocated == 16 and ds.BitsStored in (12, 16) and (ds.Rows, ds.Columns) == (SIZE, SIZE)
        assert float(ds.PixelSpacing[0]) == pytest.approx(study.pixel_spacing, rel=1e-4)
        photometric.add(ds.PhotometricInterpretation)
        pixels, meta = read_cxr(item["image"])
        assert np.abs(pixels - study.image).max() < 2.5 / 4095, "DICOM does not read back to the rendering"
        assert meta["view_position"] == study.view
    assert "MONOCHROME2" in photometric


def test_rsna_reads_back(tmp_path):
    summary = write_rsna(tmp_path, 30, seed=1, image_size=SIZE)
    header = (tmp_path / "stage_2_train_labels.csv").read_text().splitlines()[0]
    assert header == "patientId,x,y,width,height,Target"
    manifest = build_rsna_manifest(tmp_path, split="all")
    assert len(manifest) == 30
    by_patient = {item["patient_id"]: item for item in manifest}
    positives = 0
    for index, (patient_id,) in enumerate(summary.ids):
        assert len(patient_id) == 36 and patient_id[14] == "4"
        item = by_patient[patient_id]
        study = _rerender("rsna", summary, index)
        pneumonia = [f for f in study.findings if f.name == "pneumonia"]
        assert item["label"] == int(bool(pneumonia))
        expected = np.concatenate([f.boxes for f in pneumonia]) if pneumonia else np.zeros((0, 4), np.float32)
        np.testing.assert_array_equal(item["boxes"], expected)
        assert item["class_name"] == (
            "Lung Opacity" if pneumonia else "No Lung Opacity / Not Normal" if study.findings else "Normal"
        )
        pixels, _ = read_cxr(item["image"])
        assert np.abs(pixels - study.image).max() < 2.5 / 4095
        positives += item["label"]
    assert 4 <= positives <= 20


def test_siim_reads_back(tmp_path):
    summary = write_siim(tmp_path, 30, seed=2, image_size=SIZE)
    lines = (tmp_path / "train-rle.csv").read_text().splitlines()
    assert lines[0] == "ImageId, EncodedPixels"
    assert all(line.split(",")[1].startswith(" ") for line in lines[1:])
    assert any(line.endswith(", -1") for line in lines[1:])
    manifest = build_siim_manifest(tmp_path, split="all", image_shape=(SIZE, SIZE))
    assert len(manifest) == 30, manifest.report
    by_id = {item["image_id"]: item for item in manifest}
    positives = 0
    for index, (study_uid, series_uid, image_id) in enumerate(summary.ids):
        assert image_id.startswith("1.2.276.0.7230010.3.1.4.8323329.")
        item = by_id[image_id]
        assert Path(item["image"]) == tmp_path / "dicom-images-train" / study_uid / series_uid / f"{image_id}.dcm"
        study = _rerender("siim", summary, index)
        pneumothorax = [f for f in study.findings if f.name == "pneumothorax"]
        assert item["label"] == int(bool(pneumothorax))
        expected = np.zeros((SIZE, SIZE), np.uint8)
        for finding in pneumothorax:
            expected |= finding.mask
        rows = item["rle"].split("\n") if item["rle"] else []
        assert len(rows) == sum(len(f.components()) for f in pneumothorax)
        np.testing.assert_array_equal(rle_union(rows, (SIZE, SIZE)), expected)
        ds = pydicom.dcmread(item["image"])
        assert ds.SOPInstanceUID == image_id and ds.StudyInstanceUID == study_uid
        positives += item["label"]
    assert 4 <= positives <= 20


@pytest.mark.parametrize(
    ("writer", "options"),
    [(write_mimic, {}), (write_mimic, {"image_format": "dcm"}), (write_rsna, {}), (write_siim, {})],
    ids=["mimic-jpg", "mimic-dcm", "rsna", "siim"],
)
def test_same_seed_same_bytes_whatever_the_workers(tmp_path, writer, options):
    one = writer(tmp_path / "one", 10, seed=4, image_size=SIZE, workers=1, **options)
    two = writer(tmp_path / "two", 10, seed=4, image_size=SIZE, workers=2, **options)
    assert _digest(one.root) == _digest(two.root)
    other = writer(tmp_path / "other", 10, seed=5, image_size=SIZE, **options)
    first, second = _digest(one.root), _digest(other.root)
    assert set(first.values()).isdisjoint(v for k, v in second.items() if not k.endswith(".json"))


def test_writing_again_reuses_the_dataset(tmp_path):
    first = write_rsna(tmp_path, 6, seed=0, image_size=SIZE)
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = write_rsna(tmp_path, 6, seed=0, image_size=SIZE)
    assert again.cached and not first.cached and again.n_images == 6 and again.counts == first.counts
    assert stamp == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    changed = write_rsna(tmp_path, 6, seed=1, image_size=SIZE)
    assert not changed.cached


def test_names_and_headers_do_not_depend_on_the_findings(tmp_path, monkeypatch):
    """File names and DICOM header values come from the seed alone: with no findings at all they are the same."""
    normal = write_siim(tmp_path / "normal", 8, seed=6, image_size=SIZE)
    monkeypatch.setitem(findings_module.PREVALENCE, "siim", {})
    empty = write_siim(tmp_path / "empty", 8, seed=6, image_size=SIZE)
    assert normal.ids == empty.ids and normal.counts.get("pneumothorax", 0) > 0 and not empty.counts.get("pneumothorax")
    skip = {"PixelData"}
    for path in sorted((tmp_path / "normal").rglob("*.dcm")):
        a, b = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "empty" / path.relative_to(tmp_path / "normal"))
        assert {e.keyword: e.value for e in a if e.keyword not in skip} == {
            e.keyword: e.value for e in b if e.keyword not in skip
        }


def test_command_line(tmp_path, capsys):
    assert main(["--layout", "rsna", "--out", str(tmp_path), "--n", "5", "--size", "64", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "5 studies" in out and "studies/minute" in out
    assert len(list((tmp_path / "stage_2_train_images").glob("*.dcm"))) == 5
    assert main(["--layout", "rsna", "--out", str(tmp_path), "--n", "5", "--size", "64", "--preview", "4"]) == 0
    out = capsys.readouterr().out
    assert "already written" in out
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_counts_and_labels(mimic):
    labels = list(read_csv_rows(mimic.root / "mimic-cxr-2.0.0-chexpert.csv.gz"))
    assert len(labels) == mimic.n_studies
    for column in CHEXPERT_LABELS:
        values = {row[column] for row in labels}
        assert values <= {"1.0", "0.0", "-1.0", ""}
        count = sum(row[column] == "1.0" for row in labels)
        assert mimic.counts[f"label:{column}"] == count
    no_finding = [row for row in labels if row["No Finding"] == "1.0"]
    assert no_finding and all(row[c] in ("0.0", "") for row in no_finding for c in CHEXPERT_LABELS if c != "No Finding")
    assert not math.isnan(mimic.seconds)
