"""The CheXpert 5x200 zero-shot classification set (GLoRIA's protocol)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, Manifest, OnError, read_csv_rows
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.errors import ImageReadError, ManifestError

__all__ = ["CHEXPERT_5X200_CLASSES", "build_chexpert_5x200_manifest"]

CHEXPERT_5X200_CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
_DISEASES = tuple(name for name in CHEXPERT_LABELS if name != "No Finding")


def _value(text: str, item: str) -> float:
    if text.lower() in ("", "nan"):  # blank, or "nan" as a pandas export writes it: unmentioned
        return 0.0  # unmentioned counts as negative here
    try:
        return float(text)
    except ValueError as err:
        raise ManifestError(item, f"label {text!r} is not a number") from err


def build_chexpert_5x200_manifest(
    csv_path: str | os.PathLike,
    image_root: str | os.PathLike,
    per_class: int = 200,
    seed: int = 0,
    path_column: str = "Path",
    check_files: bool = True,
    on_error: OnError = "raise",
) -> Manifest:
    """Draw CheXpert 5x200: frontal images positive for exactly one of five classes.

    For each class of :data:`CHEXPERT_5X200_CLASSES`, rows with that label 1 and all 12 other disease labels
    exactly 0 (blank counts as 0, uncertain -1 excludes the row); ``per_class`` of them drawn with ``seed``.

    Args:
        csv_path: CheXpert's ``train.csv`` (or any CSV with its columns, ``.gz`` allowed).
        image_root: the folder the ``Path`` column is relative to.
        per_class: images per class (fewer when fewer qualify; the report says so).
        seed: the draw's seed.
        path_column: the column with relative image paths.
        check_files: require the images on disk.
        on_error: ``raise`` or ``skip`` a missing image.

    Returns:
        A :class:`Manifest` of dicts: ``image``, ``label`` (class index), ``class_name``.
    """
    report = BuildReport("CheXpert 5x200")
    policy = ErrorPolicy(on_error, report)
    root = Path(image_root)
    rows = list(read_csv_rows(csv_path, (path_column, "Frontal/Lateral", *_DISEASES), policy.reject))
    report.found = {"rows": len(rows)}
    candidates: dict[str, list[str]] = {name: [] for name in CHEXPERT_5X200_CLASSES}
    for row in rows:
        if row["Frontal/Lateral"] != "Frontal":
            report.filter("lateral view")
            continue
        values = policy.attempt(lambda row=row: {name: _value(row[name], row[path_column]) for name in _DISEASES})
        if values is None:
            continue
        positives = [name for name, value in values.items() if value == 1.0]
        others_zero = all(value == 0.0 for value in values.values() if value != 1.0)
        if len(positives) == 1 and positives[0] in candidates and others_zero:
            candidates[positives[0]].append(row[path_column])
        else:
            report.filter("not positive for exactly one class with every other label 0")
    rng = np.random.default_rng(seed)
    items: list[dict[str, Any]] = []
    for label, name in enumerate(CHEXPERT_5X200_CLASSES):
        pool = candidates[name]
        if len(pool) < per_class:
            report.found[f"{name} rows (fewer than {per_class})"] = len(pool)
        chosen = sorted(rng.permutation(len(pool))[:per_class])
        report.filter(f"{name}: qualifying rows not drawn", len(pool) - len(chosen))
        for index in chosen:
            image = root / pool[index]
            if check_files and not image.is_file():
                policy.missing("image file", image, ImageReadError)
                continue
            items.append({"image": str(image), "label": label, "class_name": name})
    return Manifest(items, report)
