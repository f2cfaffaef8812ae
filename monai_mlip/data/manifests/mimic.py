"""MIMIC-CXR (DICOM release) and MIMIC-CXR-JPG manifests for pre-training.

Layout (PhysioNet releases 2.0.0): images ``files/p10/p10000032/s50414267/<dicom_id>.dcm|.jpg``, reports
``files/p10/p10000032/s50414267.txt`` (shipped with MIMIC-CXR, so ``reports_dir`` may differ from the
image root), and gzipped CSVs ``mimic-cxr-2.0.0-split.csv.gz``, ``-metadata.csv.gz`` and
``-chexpert.csv.gz`` at the root.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, Manifest, OnError, read_csv_rows, sample_fraction
from monai_mlip.data.reports import read_report_sections, report_text
from monai_mlip.errors import ImageReadError, ManifestError, MLIPDataError, ReportError

__all__ = ["CHEXPERT_LABELS", "MIMIC_SPLITS", "build_mimic_cxr_manifest", "mimic_image_path", "mimic_report_path"]

CHEXPERT_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
MIMIC_SPLITS = ("train", "validate", "test")
_PREFIX = "mimic-cxr-2.0.0"


def _study_dir(root: Path, subject_id: str, study_id: str) -> Path:
    return root / "files" / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"


def mimic_image_path(root: str | os.PathLike, subject_id: str, study_id: str, dicom_id: str, suffix: str) -> Path:
    """``root/files/pXX/pSUBJECT/sSTUDY/DICOM_ID.suffix``."""
    return _study_dir(Path(root), subject_id, study_id) / f"{dicom_id}.{suffix.lstrip('.')}"


def mimic_report_path(root: str | os.PathLike, subject_id: str, study_id: str) -> Path:
    """``root/files/pXX/pSUBJECT/sSTUDY.txt``."""
    study = _study_dir(Path(root), subject_id, study_id)
    return study.with_name(f"{study.name}.txt")


def _find_index(root: Path, name: str) -> Path | None:
    candidates = (root / f"{_PREFIX}-{name}{suffix}" for suffix in (".csv.gz", ".csv"))
    return next((path for path in candidates if path.is_file()), None)


def _index_file(root: Path, name: str) -> Path:
    path = _find_index(root, name)
    if path is None:
        raise ManifestError(root / f"{_PREFIX}-{name}.csv.gz", f"the MIMIC-CXR {name} index is missing")
    return path


def _label_value(text: str, item: str) -> float:
    if text.lower() in ("", "nan"):  # blank, or "nan" as a pandas export writes it: unmentioned
        return math.nan
    try:
        value = float(text)
    except ValueError as err:
        raise ManifestError(item, f"CheXpert label {text!r} is not a number") from err
    if value not in (1.0, 0.0, -1.0):
        raise ManifestError(item, f"CheXpert label {value} is not 1, 0, -1 or blank")
    return value


def _read_labels(path: Path, policy: ErrorPolicy) -> dict[tuple[str, str], np.ndarray]:
    """CheXpert labels per ``(subject, study)``; a bad row is raised or skipped (its study then has none)."""
    labels = {}
    for row in read_csv_rows(path, ("subject_id", "study_id", *CHEXPERT_LABELS), policy.reject):
        item = f"{path.name} study {row['study_id']}"
        values = policy.attempt(lambda row=row, item=item: [_label_value(row[name], item) for name in CHEXPERT_LABELS])
        if values is not None:
            labels[(row["subject_id"], row["study_id"])] = np.array(values, dtype=np.float32)
    return labels


def select_mimic_rows(
    rows: Sequence[dict[str, Any]],
    views_of: dict[str, str],
    splits: set[str],
    views: Sequence[str] | None,
    one_per_study: bool,
    fraction: float,
    seed: int,
    report: BuildReport,
) -> list[dict[str, Any]]:
    """The image rows (``dicom_id``, ``study_id``, ``split``...) of the wanted splits and views, with ``view``
    set from ``views_of``; optionally one image per study (the first view in ``views`` order) and a
    reproducible fraction of the studies. Every row dropped is counted in ``report.filtered``."""
    selected = []
    for row in rows:
        if row["split"] not in splits:
            report.filter(f"split {row['split']}")
            continue
        view = views_of.get(row["dicom_id"], "")
        if views is not None and view not in views:
            report.filter(f"view {view or 'unknown'}")
            continue
        selected.append({**row, "view": view})
    if one_per_study:
        rank = {view: order for order, view in enumerate(views or ())}
        first: dict[str, dict[str, Any]] = {}
        for row in selected:
            kept = first.get(row["study_id"])
            if kept is None or rank.get(row["view"], len(rank)) < rank.get(kept["view"], len(rank)):
                first[row["study_id"]] = row
        report.filter("other images of the study", len(selected) - len(first))
        keep_ids = {id(row) for row in first.values()}
        selected = [row for row in selected if id(row) in keep_ids]
    if fraction < 1:
        studies = sample_fraction([{"study_id": s} for s in sorted({r["study_id"] for r in selected})], fraction, seed)
        keep = {s["study_id"] for s in studies}
        report.filter(f"fraction {fraction}", sum(r["study_id"] not in keep for r in selected))
        selected = [r for r in selected if r["study_id"] in keep]
    return selected


def _study_report(
    path: Path, sections: Sequence[str], policy: ErrorPolicy
) -> tuple[str, dict[str, str]] | MLIPDataError:
    """The report text of a study and its parsed sections, or (under ``on_error="skip"``) the error that
    makes it unusable; a missing report file is also counted as a missing file."""
    if not path.is_file():
        policy.missing("report file", path, ReportError)
        return ReportError(path, "report file not found")
    try:
        parsed = read_report_sections(path)
        return report_text(parsed, use=sections, item=path), parsed
    except MLIPDataError as error:
        if policy.on_error == "raise":
            raise
        return error


def _image_suffix(root: Path, image_format: str, first: dict[str, str] | None) -> str:
    if image_format in ("jpg", "dcm"):
        return image_format
    if image_format != "auto":
        raise ValueError(f"image_format must be 'auto', 'jpg' or 'dcm', got {image_format!r}")
    if first is not None:
        for suffix in ("jpg", "dcm"):
            if mimic_image_path(root, first["subject_id"], first["study_id"], first["dicom_id"], suffix).is_file():
                return suffix
    return "jpg"


def build_mimic_cxr_manifest(
    dataset_dir: str | os.PathLike,
    split: str | Sequence[str] | None = "train",
    reports_dir: str | os.PathLike | None = None,
    image_format: str = "auto",
    views: Sequence[str] | None = ("PA", "AP"),
    sections: Sequence[str] = ("impression", "findings"),
    with_labels: bool = True,
    one_per_study: bool = False,
    fraction: float = 1.0,
    seed: int = 0,
    on_error: OnError = "raise",
    with_sections: bool = False,
) -> Manifest:
    """Image-report items of MIMIC-CXR(-JPG).

    Args:
        dataset_dir: the release root holding ``files/`` and the ``mimic-cxr-2.0.0-*.csv.gz`` files.
        split: ``train``, ``validate``, ``test``, several of them, or ``None`` for all.
        reports_dir: the root of ``files/.../sSTUDY.txt`` reports (default ``dataset_dir``).
        image_format: ``jpg``, ``dcm`` or ``auto`` (whichever the first listed image is on disk as).
        views: keep these ``ViewPosition`` values (frontal by default); ``None`` keeps every view.
        sections: report sections whose cleaned text becomes ``report`` (in this order).
        with_labels: attach the CheXpert labels when ``-chexpert.csv.gz`` exists.
        one_per_study: keep one image per study (the first in ``views`` order, then file order), so that
            every report appears once, as retrieval evaluation wants.
        fraction: keep this fraction of the studies (seeded), for data-efficiency runs.
        seed: the fraction's seed.
        on_error: ``raise`` on a missing file or bad report, or ``skip`` it and count it in ``Manifest.report``.
        with_sections: also give each item its report's parsed ``sections`` (:func:`~monai_mlip.data.parse_report`).

    Returns:
        A :class:`Manifest` of dicts: ``image`` (path), ``report`` (text), ``subject_id``, ``study_id``,
        ``dicom_id``, ``view``, ``split``, with labels ``labels`` (float32 ``[14]`` in
        :data:`CHEXPERT_LABELS` order: 1, 0, -1 uncertain, NaN unmentioned) and with sections ``sections``.
    """
    root = Path(dataset_dir)
    reports_root = Path(reports_dir) if reports_dir is not None else root
    if not root.is_dir():
        raise ManifestError(root, "the MIMIC-CXR directory does not exist")
    wanted = {split} if isinstance(split, str) else set(split) if split is not None else set(MIMIC_SPLITS)
    unknown = wanted - set(MIMIC_SPLITS)
    if unknown:
        raise ValueError(f"unknown MIMIC-CXR split(s) {sorted(unknown)}; choose from {MIMIC_SPLITS}")
    report = BuildReport("MIMIC-CXR")
    policy = ErrorPolicy(on_error, report)

    split_rows = list(
        read_csv_rows(_index_file(root, "split"), ("dicom_id", "study_id", "subject_id", "split"), policy.reject)
    )
    bad_split_rows = report.n_skipped
    views_of = {
        row["dicom_id"]: row["ViewPosition"].upper()
        for row in read_csv_rows(_index_file(root, "metadata"), ("dicom_id", "ViewPosition"), policy.reject)
    }
    labels = {}
    if with_labels:
        labels_path = _find_index(root, "chexpert")
        if labels_path is None:
            report.miss("CheXpert label index", root / f"{_PREFIX}-chexpert.csv.gz")
        else:
            labels = _read_labels(labels_path, policy)
    images = len(split_rows) + bad_split_rows  # a malformed split row is a listed image, counted as skipped
    report.found = {"images": images, "studies": len({r["study_id"] for r in split_rows})}

    rows = select_mimic_rows(split_rows, views_of, wanted, views, one_per_study, fraction, seed, report)
    suffix = _image_suffix(root, image_format, rows[0] if rows else None)
    texts: dict[str, tuple[str, dict[str, str]] | MLIPDataError] = {}
    items: list[dict[str, Any]] = []
    for row in rows:
        subject, study, dicom = row["subject_id"], row["study_id"], row["dicom_id"]
        image = mimic_image_path(root, subject, study, dicom, suffix)
        if not image.is_file():
            policy.missing("image file", image, ImageReadError)
            continue
        if study not in texts:
            texts[study] = _study_report(mimic_report_path(reports_root, subject, study), sections, policy)
        if isinstance(texts[study], MLIPDataError):
            # every image of a study without a usable report is counted, not only the first
            error = texts[study]
            report.skip(MLIPDataError(f"{image} (report {error.item})", f"its study's report: {error.reason}"))
            continue
        text, parsed = texts[study]
        item = {
            "image": str(image),
            "report": text,
            "subject_id": subject,
            "study_id": study,
            "dicom_id": dicom,
            "view": row["view"],
            "split": row["split"],
        }
        if labels:
            key = (subject, study)
            item["labels"] = labels.get(key, np.full(len(CHEXPERT_LABELS), np.nan, dtype=np.float32))
        if with_sections:
            item["sections"] = parsed
        items.append(item)
    return Manifest(items, report)
