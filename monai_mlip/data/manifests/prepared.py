"""The manifest of a prepared MIMIC-CXR set (:mod:`monai_mlip.prepare`), read from its index alone.

The index (``index.jsonl.gz``) already holds everything the manifest needs, so building it reads one
file and touches no image. The preparation also writes the index as columns (``index_columns.npz``,
:mod:`~monai_mlip.data.manifests.prepared_columns`); when they hold the chosen report sections the
manifest is a :class:`~monai_mlip.data.manifests.prepared_columns.ColumnManifest` over them (seconds and
a few hundred bytes per image at real size), else a list of dicts built from the JSON lines. The items are those
of :func:`~monai_mlip.data.build_mimic_cxr_manifest` (the same keys, the report text from the chosen
sections), plus ``original_size`` and ``image_size`` (``[H, W]`` before and after preparation).
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

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, Manifest, OnError, logger
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS, MIMIC_SPLITS, select_mimic_rows
from monai_mlip.data.manifests.prepared_columns import COLUMNS_NAME, ColumnManifest, select_columns
from monai_mlip.data.reports import report_text
from monai_mlip.errors import ManifestError

__all__ = ["PREPARED_INDEX", "build_prepared_manifest"]

PREPARED_INDEX = "index.jsonl.gz"


def _read_index(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ManifestError(
            path, "no prepared index here: run python -m monai_mlip.prepare mimic --dataset_dir ... --out_dir ... first"
        )
    studies = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    studies.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{number}", f"not a JSON line ({err})") from err
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ManifestError(path, f"unreadable prepared index ({type(err).__name__}: {err})") from err
    return studies


def _report(study: dict[str, Any], sections: list[str], index: Path, policy: ErrorPolicy) -> str | None:
    """The study's report text: the one the preparation stored for these sections, else rebuilt."""
    ready = study.get("report") or {}
    if ready.get("sections") == sections and ready.get("text"):
        return ready["text"]
    item = f"{index} study {study['study_id']}"
    return policy.attempt(lambda: report_text(study["sections"], use=sections, item=item))


def _load_columns(root: Path, sections: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The index's columns when they exist, are newer than the index and hold the chosen sections' text."""
    path, index = root / COLUMNS_NAME, root / PREPARED_INDEX
    if not path.is_file() or (index.is_file() and path.stat().st_mtime_ns < index.stat().st_mtime_ns):
        return None
    with np.load(path, allow_pickle=False) as archive:
        columns = {name: archive[name] for name in archive.files}
    if [s.decode() for s in columns["report_sections"]] != list(sections):
        return None
    return columns


def build_prepared_manifest(
    prepared_dir: str | os.PathLike,
    split: str | Sequence[str] | None = "train",
    views: Sequence[str] | None = ("PA", "AP"),
    sections: Sequence[str] = ("impression", "findings"),
    one_per_study: bool = False,
    fraction: float = 1.0,
    seed: int = 0,
    with_labels: bool = True,
    on_error: OnError = "raise",
) -> Manifest:
    """Build a MIMIC-CXR manifest from a prepared set.

    Args:
        prepared_dir: the ``out_dir`` of :func:`~monai_mlip.prepare.prepare_mimic_cxr`.
        split, views, sections, one_per_study, fraction, seed, with_labels, on_error: as for
            :func:`~monai_mlip.data.build_mimic_cxr_manifest` (a study whose chosen sections hold no text
            is raised or skipped).

    Returns:
        A :class:`Manifest` of dicts: ``image``, ``report``, ``subject_id``, ``study_id``, ``dicom_id``,
        ``view``, ``split``, ``original_size``, ``image_size`` and, with labels, ``labels`` (float32, NaN
        for unmentioned).

    Raises:
        ManifestError: the index is missing or malformed.
    """
    root = Path(prepared_dir)
    wanted = {split} if isinstance(split, str) else set(split) if split is not None else set(MIMIC_SPLITS)
    unknown = wanted - set(MIMIC_SPLITS)
    if unknown:
        raise ValueError(f"unknown MIMIC-CXR split(s) {sorted(unknown)}; choose from {MIMIC_SPLITS}")
    columns = _load_columns(root, sections)
    if columns is not None:
        report = BuildReport("MIMIC-CXR (prepared)")
        report.found = {"images": len(columns["dicom_id"]), "studies": len(np.unique(columns["study_id"]))}
        rows = select_columns(columns, wanted, views, one_per_study, fraction, seed, report)
        manifest = ColumnManifest(root, columns, rows, report, with_labels)
        logger.info(report.summary())
        return manifest
    studies = _read_index(root / PREPARED_INDEX)
    report = BuildReport("MIMIC-CXR (prepared)")
    policy = ErrorPolicy(on_error, report)
    rows, views_of, by_study = [], {}, {}
    for study in studies:
        by_study[study["study_id"]] = study
        for image in study["images"]:
            rows.append(
                {**image, "study_id": study["study_id"], "subject_id": study["subject_id"], "split": study["split"]}
            )
            views_of[image["dicom_id"]] = image["view"]
    report.found = {"images": len(rows), "studies": len(studies)}
    rows = select_mimic_rows(rows, views_of, wanted, views, one_per_study, fraction, seed, report)
    texts: dict[str, str | None] = {}
    items = []
    prefix = f"{root}{os.sep}"  # plain string joins: pathlib per item costs seconds at 377,000 images
    chosen, index = list(sections), root / PREPARED_INDEX
    for row in rows:
        study_id = row["study_id"]
        study = by_study[study_id]
        if study_id not in texts:
            texts[study_id] = _report(study, chosen, index, policy)
        if texts[study_id] is None:
            report.filter("study without text in the chosen sections")
            continue
        entry = {
            "image": prefix + row["image"],
            "report": texts[study_id],
            "subject_id": row["subject_id"],
            "study_id": study_id,
            "dicom_id": row["dicom_id"],
            "view": row["view"],
            "split": row["split"],
            "original_size": tuple(row["original_size"]),
            "image_size": tuple(row["size"]),
        }
        if with_labels:
            labels = study.get("labels") or [None] * len(CHEXPERT_LABELS)
            entry["labels"] = np.array([math.nan if v is None else v for v in labels], dtype=np.float32)
        items.append(entry)
    return Manifest(items, report)
