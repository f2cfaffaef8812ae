"""MS-CXR phrase grounding boxes (on MIMIC-CXR images), used to score sentence-to-region grounding.

``MS_CXR_Local_Alignment_v1.x.csv`` has the columns ``dicom_id, category_name, label_text, path, x, y, w, h,
image_width, image_height`` (and ``split`` from v1.1.0): one row per box, boxes in pixels of the original
image, ``path`` relative to the MIMIC-CXR root.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, Manifest, OnError, read_csv_rows
from monai_mlip.errors import BoxError, ImageReadError, ManifestError

__all__ = ["attach_reports", "build_ms_cxr_manifest"]

_COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")


def _box(row: dict[str, str], item: str) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
    try:
        x, y, w, h = (float(row[name]) for name in ("x", "y", "w", "h"))
        size = (int(float(row["image_height"])), int(float(row["image_width"])))
    except (ValueError, OverflowError) as err:  # int(float("nan")) and int(float("inf")) included
        raise ManifestError(item, f"non-numeric or non-finite box or image size ({err})") from err
    if not all(math.isfinite(v) for v in (x, y, w, h)):  # NaN would pass every comparison below
        raise BoxError(item, f"box ({x}, {y}, {w}, {h}) has a non-finite value")
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > size[1] or y + h > size[0]:
        raise BoxError(item, f"box ({x}, {y}, {w}, {h}) is empty or outside the {size[0]}x{size[1]} image")
    return (x, y, w, h), size


def build_ms_cxr_manifest(
    csv_path: str | os.PathLike,
    image_root: str | os.PathLike,
    split: str | None = None,
    image_suffix: str | None = None,
    check_files: bool = True,
    on_error: OnError = "raise",
) -> Manifest:
    """One item per (image, phrase) with all of the phrase's boxes.

    Args:
        csv_path: the MS-CXR CSV.
        image_root: the MIMIC-CXR root the ``path`` column is relative to.
        split: keep rows of this ``split`` value (v1.1.0 files), or ``None`` for all.
        image_suffix: replace the image suffix (``jpg`` for MIMIC-CXR-JPG; MS-CXR lists ``.dcm`` paths).
        check_files: require the images on disk.
        on_error: ``raise`` or ``skip`` bad rows and missing images.

    Returns:
        A :class:`Manifest` of dicts: ``image``, ``dicom_id``, ``phrase``, ``category``, ``boxes`` (float32
        ``[K, 4]`` ``(x, y, w, h)`` in original pixels), ``image_size`` (``(H, W)`` of the original image).
    """
    report = BuildReport("MS-CXR")
    policy = ErrorPolicy(on_error, report)
    root = Path(image_root)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    rows = list(read_csv_rows(csv_path, required=_COLUMNS, on_bad_row=policy.reject))
    report.found = {"boxes": len(rows)}
    for row in rows:
        if split is not None and row.get("split", split) != split:
            report.filter(f"split {row.get('split')}")
            continue
        item = f"{row['dicom_id']} ({row['label_text'][:40]})"
        parsed = policy.attempt(lambda row=row, item=item: _box(row, item))
        if parsed is None:
            continue
        box, size = parsed
        key = (row["dicom_id"], row["label_text"])
        if key not in groups:
            path = Path(row["path"])
            if image_suffix is not None:
                path = path.with_suffix(f".{image_suffix.lstrip('.')}")
            groups[key] = {
                "image": str(root / path),
                "dicom_id": row["dicom_id"],
                "phrase": row["label_text"],
                "category": row["category_name"],
                "boxes": [],
                "image_size": size,
            }
        groups[key]["boxes"].append(box)
    items = []
    for group in groups.values():
        if check_files and not Path(group["image"]).is_file():
            policy.missing("image file", group["image"], ImageReadError)
            continue
        items.append({**group, "boxes": np.asarray(group["boxes"], dtype=np.float32)})
    return Manifest(items, report)


def attach_reports(grounding: Manifest, studies: Sequence[Mapping[str, Any]]) -> Manifest:
    """Give each grounding item the ``report`` of its image, from a MIMIC-CXR manifest of the same split.

    Grounding items whose ``dicom_id`` is not in ``studies`` (another split, a lateral view) are dropped and
    counted in the returned manifest's report.

    Args:
        grounding: the output of :func:`build_ms_cxr_manifest`.
        studies: items of :func:`~monai_mlip.data.build_mimic_cxr_manifest` (``dicom_id`` and ``report``).
    """
    reports = {item["dicom_id"]: item["report"] for item in studies}
    report = BuildReport("MS-CXR with reports", found=dict(grounding.report.found))
    items = []
    for item in grounding:
        if item["dicom_id"] in reports:
            items.append({**item, "report": reports[item["dicom_id"]]})
        else:
            report.filter("image not in the studies given (other split or view)")
    return Manifest(items, report)
