"""The RSNA Pneumonia Detection Challenge (stage 2 training) layout."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.synthetic.dicom import sample_header, write_dicom
from monai_mlip.synthetic.fields import field_bank
from monai_mlip.synthetic.identifiers import (
    dicom_uid,
    identifier_rng,
    item_rng,
    rsna_patient_id,
)
from monai_mlip.synthetic.layouts.common import (
    MARKER,
    WriteSummary,
    cached_summary,
    finding_counts,
    finish,
    layout_options,
    map_jobs,
    write_csv,
)
from monai_mlip.synthetic.study import render_study

__all__ = ["write_rsna"]


@dataclass(frozen=True)
class _RsnaJob:
    index: int
    seed: int
    root: str
    image_size: int
    real_shapes: bool
    patient_id: str
    header_seed: int


def _rsna_item(job: _RsnaJob) -> dict[str, Any]:
    study = render_study(
        item_rng(job.seed, "rsna", job.index), job.image_size, prevalence="rsna", use_real_shapes=job.real_shapes
    )
    path = Path(job.root) / "stage_2_train_images" / f"{job.patient_id}.dcm"
    header = sample_header(
        np.random.default_rng(job.header_seed),
        patient_id=job.patient_id,
        patient_name=job.patient_id,
        sex=study.sex,
        study_uid=dicom_uid(job.seed, "rsna", job.patient_id, "study"),
        series_uid=dicom_uid(job.seed, "rsna", job.patient_id, "series"),
        sop_uid=dicom_uid(job.seed, "rsna", job.patient_id, "image"),
        view=study.view,
        pixel_spacing=study.pixel_spacing,
        description="Cxr",
    )
    write_dicom(path, study.image, header)
    boxes = [f.boxes for f in study.findings if f.name == "pneumonia"]
    others = [f.name for f in study.findings if f.name != "pneumonia"]
    return {
        "boxes": np.concatenate(boxes).tolist() if boxes else [],
        "class": "Lung Opacity" if boxes else "No Lung Opacity / Not Normal" if others else "Normal",
        "findings": [f.name for f in study.findings],
    }


def write_rsna(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    image_size: int = 512,
    real_shapes: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> WriteSummary:
    """Write an RSNA-Pneumonia-style dataset (stage 2 training layout).

    Layout under ``out_dir``: ``stage_2_train_images/<patientId>.dcm``, ``stage_2_train_labels.csv``
    (``patientId,x,y,width,height,Target``: one row per box of every connected pneumonia region, one row
    with an empty box and Target 0 for the others) and ``stage_2_detailed_class_info.csv``
    (``Lung Opacity``, ``Normal`` or ``No Lung Opacity / Not Normal``). About 35 % are positive.

    Args: as :func:`write_mimic` (no image format or lateral views: RSNA is DICOM and frontal).
    """
    options = layout_options("rsna", n, seed, image_size, real_shapes)
    root = Path(out_dir)
    cached = cached_summary(root, options)
    if cached is not None:
        return cached
    start = time.perf_counter()
    (root / "stage_2_train_images").mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    ids = identifier_rng(seed, "rsna")
    jobs = [
        _RsnaJob(i, seed, str(root), image_size, real_shapes, rsna_patient_id(ids), int(ids.integers(0, 1 << 62)))
        for i in range(n)
    ]
    results = list(map_jobs(_rsna_item, jobs, workers, progress, "RSNA", partial(field_bank, image_size)))
    label_rows, class_rows = [], []
    for job, result in zip(jobs, results, strict=True):
        if result["boxes"]:
            label_rows += [(job.patient_id, *(f"{v:.1f}" for v in box), 1) for box in result["boxes"]]
        else:
            label_rows.append((job.patient_id, "", "", "", "", 0))
        class_rows += [(job.patient_id, result["class"])] * max(len(result["boxes"]), 1)
    write_csv(root / "stage_2_train_labels.csv", ("patientId", "x", "y", "width", "height", "Target"), label_rows)
    write_csv(root / "stage_2_detailed_class_info.csv", ("patientId", "class"), class_rows)
    counts = finding_counts(results)
    counts["label:Target"] = sum(bool(r["boxes"]) for r in results)
    summary = WriteSummary(root, "rsna", options, n, n, dict(counts), time.perf_counter() - start)
    summary.ids = [(job.patient_id,) for job in jobs]
    return finish(summary)
