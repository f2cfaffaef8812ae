"""RSNA Pneumonia Detection Challenge (stage 2) manifests.

Layout: ``stage_2_train_images/<patientId>.dcm`` (1024 x 1024), ``stage_2_train_labels.csv``
(``patientId,x,y,width,height,Target``: one row per box, an empty box for ``Target`` 0) and optionally
``stage_2_detailed_class_info.csv`` (``patientId,class``). Splits are 70/15/15 by patient (MGCA, GLoRIA).
A prepared set (:func:`~monai_mlip.prepare.prepare_rsna`) has the same layout with ``<patientId>.png`` images
and boxes in their pixels, and is read the same way (it is recognised by its ``prepare_report.json``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import (
    BuildReport,
    ErrorPolicy,
    Manifest,
    OnError,
    is_prepared,
    read_csv_rows,
    sample_fraction,
    split_by_key,
)
from monai_mlip.errors import BoxError, ImageReadError, ManifestError

__all__ = [
    "RSNA_CLASSES",
    "RSNA_IMAGES",
    "RSNA_LABELS",
    "RSNA_SPLITS",
    "build_rsna_manifest",
    "parse_rsna_patient",
    "read_rsna_items",
    "read_rsna_label_rows",
]

RSNA_SPLITS = ("train", "valid", "test")
RSNA_IMAGES = "stage_2_train_images"
RSNA_LABELS = "stage_2_train_labels.csv"
RSNA_CLASSES = "stage_2_detailed_class_info.csv"
_LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


def read_rsna_label_rows(
    path: str | os.PathLike, on_bad_row: Callable[[ManifestError], None] | None = None
) -> dict[str, list[dict[str, str]]]:
    """The rows of ``stage_2_train_labels.csv`` grouped by patient, in file order (``on_bad_row``: see
    :func:`read_csv_rows`)."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in read_csv_rows(path, required=_LABEL_COLUMNS, on_bad_row=on_bad_row):
        grouped.setdefault(row["patientId"], []).append(row)
    return grouped


def parse_rsna_patient(patient_id: str, rows: Sequence[dict[str, str]]) -> tuple[int, np.ndarray]:
    """The label and boxes of one patient.

    Returns:
        ``(target, boxes)`` with boxes float32 ``[K, 4]`` as ``(x, y, width, height)`` (``K = 0`` for Target 0).

    Raises:
        ManifestError: a Target other than 0/1, conflicting Targets, or a positive row without a box.
        BoxError: a negative coordinate or a non-positive size.
    """
    targets = {row["Target"] for row in rows}
    if not targets <= {"0", "1"}:
        raise ManifestError(patient_id, f"Target must be 0 or 1, got {sorted(targets)}")
    if len(targets) != 1:
        raise ManifestError(patient_id, "rows disagree on Target")
    target = int(targets.pop())
    boxes = []
    for row in rows:
        values = [row[name] for name in ("x", "y", "width", "height")]
        if target == 0:
            if any(values):
                raise ManifestError(patient_id, f"Target 0 with a box {values}")
            continue
        try:
            x, y, w, h = (float(v) for v in values)
        except ValueError as err:
            raise ManifestError(patient_id, f"Target 1 needs a numeric box, got {values}") from err
        if not all(math.isfinite(v) for v in (x, y, w, h)):  # NaN would pass every comparison below
            raise BoxError(patient_id, f"box has a non-finite value {values}")
        if x < 0 or y < 0:
            raise BoxError(patient_id, f"box has a negative corner ({x}, {y})")
        if w <= 0 or h <= 0:
            raise BoxError(patient_id, f"box has a non-positive size {w} x {h}")
        boxes.append((x, y, w, h))
    return target, np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def read_rsna_items(root: Path, policy: ErrorPolicy) -> list[dict[str, Any]]:
    """Every patient of the label file with its parsed label and boxes (no image path yet).

    Returns:
        Dicts with ``patient_id``, ``label``, ``boxes`` and, when the detailed class file exists,
        ``class_name``; bad rows and patients go to ``policy``, the counts to ``policy.report.found``.
    """
    grouped = read_rsna_label_rows(root / RSNA_LABELS, on_bad_row=policy.reject)
    class_path = root / RSNA_CLASSES
    classes = (
        {row["patientId"]: row["class"] for row in read_csv_rows(class_path, ("patientId", "class"), policy.reject)}
        if class_path.is_file()
        else {}
    )
    policy.report.found = {"patients": len(grouped), "label rows": sum(len(rows) for rows in grouped.values())}
    items: list[dict[str, Any]] = []
    for patient_id, rows in grouped.items():
        parsed = policy.attempt(lambda patient_id=patient_id, rows=rows: parse_rsna_patient(patient_id, rows))
        if parsed is None:
            continue
        target, boxes = parsed
        item = {"patient_id": patient_id, "label": target, "boxes": boxes}
        if patient_id in classes:
            item["class_name"] = classes[patient_id]
        items.append(item)
    return items


def build_rsna_manifest(
    dataset_dir: str | os.PathLike,
    split: str = "train",
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    fraction: float = 1.0,
    seed: int = 0,
    on_error: OnError = "raise",
) -> Manifest:
    """Items of the RSNA Pneumonia training set, split by patient.

    Args:
        dataset_dir: the folder with ``stage_2_train_images/`` and ``stage_2_train_labels.csv``.
        split: ``train``, ``valid``, ``test`` (70/15/15 by patient) or ``all``.
        ratios: the train/valid/test proportions.
        split_seed: the seed of the patient split (0 as in MGCA).
        fraction: keep this fraction of the split, stratified by label (1 %, 10 %, 100 % protocol).
        seed: the fraction's seed.
        on_error: ``raise`` on a missing image or malformed rows, or ``skip`` and count them.

    Returns:
        A :class:`Manifest` of dicts: ``image`` (path), ``label`` (0 or 1), ``boxes`` (float32 ``[K, 4]``,
        ``(x, y, width, height)`` pixels), ``patient_id`` and, when the detailed class file exists,
        ``class_name``.
    """
    if split not in (*RSNA_SPLITS, "all"):
        raise ValueError(f"split must be one of {(*RSNA_SPLITS, 'all')}, got {split!r}")
    root = Path(dataset_dir)
    report = BuildReport("RSNA Pneumonia")
    policy = ErrorPolicy(on_error, report)
    items = read_rsna_items(root, policy)
    if split != "all":
        groups = split_by_key(items, "patient_id", ratios, RSNA_SPLITS, split_seed)
        report.filter("other splits", len(items) - len(groups[split]))
        items = groups[split]
    if fraction < 1:
        kept = sample_fraction(items, fraction, seed, stratify_key="label")
        report.filter(f"fraction {fraction}", len(items) - len(kept))
        items = kept

    suffix = ".png" if is_prepared(root) else ".dcm"
    manifest = []
    for item in items:
        image = root / RSNA_IMAGES / f"{item['patient_id']}{suffix}"
        if not image.is_file():
            policy.missing("image file", image, ImageReadError)
            continue
        manifest.append({"image": str(image), **item})
    return Manifest(manifest, report)
