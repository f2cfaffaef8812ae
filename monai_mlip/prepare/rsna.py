"""Prepare the RSNA Pneumonia training set once: PNG images in the native layout, boxes in their pixels.

``out_dir`` gets ``stage_2_train_images/<patientId>.png`` (:func:`~monai_mlip.prepare.images.prepare_image`),
``stage_2_train_labels.csv`` with every patient the source lists (boxes scaled to the prepared image, plus
``original_height, original_width, image_height, image_width``), the detailed class file when the source has
one, and ``prepare_report.json``. :func:`~monai_mlip.data.build_rsna_manifest` reads it as it reads the source, with
the same patient split: a patient whose image could not be prepared keeps its source row (no size) and is
counted as a missing image, exactly as a missing DICOM is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, OnError
from monai_mlip.data.manifests.rsna import RSNA_CLASSES, RSNA_IMAGES, RSNA_LABELS, read_rsna_items
from monai_mlip.errors import ImageReadError
from monai_mlip.prepare.common import accept, run_jobs, write_csv_atomic, write_prepare_report
from monai_mlip.prepare.images import resize_job

__all__ = ["prepare_rsna"]

_SIZE_COLUMNS = ("original_height", "original_width", "image_height", "image_width")
_HEADER = ("patientId", "x", "y", "width", "height", "Target", *_SIZE_COLUMNS)


def _rows(item: dict[str, Any], sizes: dict[str, list[int]] | None) -> list[tuple[object, ...]]:
    """The label rows of one patient, boxes scaled from the original to the prepared pixels."""
    size_columns = ("", "", "", "") if sizes is None else (*sizes["original_size"], *sizes["size"])
    if not item["label"]:
        return [(item["patient_id"], "", "", "", "", 0, *size_columns)]
    scale_y, scale_x = (1.0, 1.0)
    if sizes is not None:
        scale_y, scale_x = (new / old for new, old in zip(sizes["size"], sizes["original_size"], strict=True))
    return [
        (item["patient_id"], x * scale_x, y * scale_y, w * scale_x, h * scale_y, 1, *size_columns)
        for x, y, w, h in item["boxes"].tolist()
    ]


def prepare_rsna(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    longest_side: int = 512,
    num_workers: int | None = None,
    on_error: OnError = "skip",
    progress: bool = True,
) -> BuildReport:
    """Resize the RSNA Pneumonia images into ``out_dir`` and write its label files (see the module docstring).

    Args:
        dataset_dir: the folder with ``stage_2_train_images/`` and ``stage_2_train_labels.csv``.
        out_dir: the prepared set's root.
        longest_side: longest side of the prepared images (the challenge's are 1024 x 1024).
        num_workers: processes (default: every CPU); 0 or 1 runs in this process.
        on_error: ``"skip"`` bad images and rows (counted with names) or ``"raise"`` the first.
        progress: show a progress bar.

    Returns:
        The build report (also written to ``prepare_report.json``).
    """
    root, out = Path(dataset_dir), Path(out_dir)
    report = BuildReport("RSNA Pneumonia (prepare)")
    policy = ErrorPolicy(on_error, report)
    items = read_rsna_items(root, policy)
    sources = {item["patient_id"]: root / RSNA_IMAGES / f"{item['patient_id']}.dcm" for item in items}
    present = []
    for item in items:  # one stat per image: kept, or counted as missing
        if sources[item["patient_id"]].is_file():
            present.append(item)
        else:
            policy.missing("image file", sources[item["patient_id"]], ImageReadError)
    jobs = [(sources[i["patient_id"]], out / RSNA_IMAGES / f"{i['patient_id']}.png", longest_side) for i in present]
    results = run_jobs(resize_job, jobs, num_workers, progress, desc="prepare RSNA")
    sizes = {item["patient_id"]: r for item, r in zip(present, results, strict=True) if accept(r, policy)}
    report.kept = len(sizes)
    rows = (row for item in items for row in _rows(item, sizes.get(item["patient_id"])))
    write_csv_atomic(out / RSNA_LABELS, _HEADER, rows)
    if any("class_name" in item for item in items):
        classes = ((item["patient_id"], item["class_name"]) for item in items if "class_name" in item)
        write_csv_atomic(out / RSNA_CLASSES, ("patientId", "class"), classes)
    write_prepare_report(out, report, longest_side, root)
    return report
