"""Prepare MIMIC-CXR (JPG or DICOM) once: resized images and one index, for training at real size.

:func:`prepare_mimic_cxr` lists the images with :func:`~monai_mlip.data.build_mimic_cxr_manifest` (split,
view, CheXpert labels, the report check; bad items skipped and counted), resizes every image in parallel
processes (:func:`~monai_mlip.prepare.images.prepare_image`; finished images are kept, so a killed run
continues where it stopped), and writes ``index.jsonl.gz`` (one JSON line per study: ids, split, labels,
the parsed report sections and the report text of the chosen ones, and per image its view, prepared
path, original and prepared size) and
``prepare_report.json`` (what was found, filtered, skipped, with names) into ``out_dir``, with the index
as columns (``index_columns.npz``) for a manifest that stays small at real size.
:func:`~monai_mlip.data.build_prepared_manifest` reads the index back without touching the images.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.atomic_io import write_atomic
from monai_mlip.data import build_mimic_cxr_manifest
from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy
from monai_mlip.data.manifests.prepared import COLUMNS_NAME, PREPARED_INDEX, read_prepared_columns
from monai_mlip.prepare.common import accept, run_jobs, write_prepare_report
from monai_mlip.prepare.images import resize_job

__all__ = ["prepare_mimic_cxr", "write_prepared_columns"]


def prepare_mimic_cxr(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    reports_dir: str | os.PathLike | None = None,
    image_format: str = "auto",
    views: Sequence[str] | None = ("PA", "AP"),
    longest_side: int = 512,
    num_workers: int | None = None,
    on_error: str = "skip",
    progress: bool = True,
    sections: Sequence[str] = ("impression", "findings"),
) -> BuildReport:
    """Resize MIMIC-CXR's images into ``out_dir`` and write its index (see the module docstring).

    Args:
        dataset_dir: MIMIC-CXR-JPG 2.x or MIMIC-CXR 2.0.0 (DICOM) root, with the split / metadata / CheXpert CSVs.
        out_dir: where ``files/pXX/.../<dicom_id>.png``, the index and the report go.
        reports_dir: root of the report files when they are not under ``dataset_dir``.
        image_format: ``"auto"``, ``"jpg"`` or ``"dcm"``.
        views: view positions to prepare (``None``: all).
        longest_side: longest side of the prepared images (smaller images are kept as they are).
        num_workers: processes (default: every CPU); 0 or 1 runs in this process.
        on_error: ``"skip"`` bad images, reports and rows (counted with names) or ``"raise"`` the first.
        progress: show a progress bar.
        sections: the report sections whose cleaned text the index also stores ready-made (the manifest
            takes it as it is when asked for the same sections, and rebuilds it from the parsed sections
            otherwise).

    Returns:
        The build report (also written to ``prepare_report.json``).
    """
    out = Path(out_dir)
    manifest = build_mimic_cxr_manifest(
        dataset_dir,
        split=None,
        reports_dir=reports_dir,
        image_format=image_format,
        views=views,
        sections=sections,
        on_error=on_error,
        with_sections=True,
    )
    report = manifest.report
    policy = ErrorPolicy(on_error, report)
    jobs = [(item["image"], _prepared_path(out, item), longest_side) for item in manifest]
    results = run_jobs(resize_job, jobs, num_workers, progress, desc="prepare MIMIC-CXR")
    studies: dict[str, dict[str, Any]] = {}
    for item, result in zip(manifest, results, strict=True):
        if not accept(result, policy):
            continue
        study = studies.get(item["study_id"])
        if study is None:
            study = studies[item["study_id"]] = _study_record(item, sections)
        study["images"].append(
            {
                "dicom_id": item["dicom_id"],
                "view": item["view"],
                "image": _prepared_path(Path(), item).as_posix(),
                **result,
            }
        )
    report.kept = sum(len(study["images"]) for study in studies.values())
    write_atomic(out / PREPARED_INDEX, lambda handle: _write_index(handle, studies.values()), "wb")
    write_prepared_columns(out, sections)
    write_prepare_report(out, report, longest_side, dataset_dir)
    return report


def write_prepared_columns(
    prepared_dir: str | os.PathLike, sections: Sequence[str] = ("impression", "findings")
) -> Path:
    """Save the index as columns (``index_columns.npz``, atomically), so a run loads them instead of parsing
    every JSON line (:func:`~monai_mlip.data.manifests.prepared.load_prepared_columns`)."""
    path = Path(prepared_dir) / COLUMNS_NAME
    columns = read_prepared_columns(prepared_dir, sections)
    write_atomic(path, lambda handle: np.savez(handle, **columns), "wb")
    return path


def _prepared_path(root: Path, item: dict[str, Any]) -> Path:
    subject, study = item["subject_id"], item["study_id"]
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{item['dicom_id']}.png"


def _study_record(item: dict[str, Any], sections: Sequence[str]) -> dict[str, Any]:
    labels = item.get("labels")
    return {
        "subject_id": item["subject_id"],
        "study_id": item["study_id"],
        "split": item["split"],
        "labels": None if labels is None else [None if math.isnan(v) else float(v) for v in labels.tolist()],
        "sections": item["sections"],
        "report": {"sections": list(sections), "text": item["report"]},
        "images": [],
    }


def _write_index(handle: Any, studies: Any) -> None:
    with gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as archive:
        for study in studies:
            archive.write((json.dumps(study, separators=(",", ":")) + "\n").encode("utf-8"))
