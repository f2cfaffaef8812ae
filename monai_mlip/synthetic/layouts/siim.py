"""The SIIM-ACR Pneumothorax Segmentation layout."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.masks import rle_encode
from monai_mlip.synthetic.dicom import sample_header, write_dicom
from monai_mlip.synthetic.fields import field_bank
from monai_mlip.synthetic.identifiers import (
    identifier_rng,
    item_rng,
    rsna_patient_id,
    siim_uids,
    unique_integers,
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

__all__ = ["write_siim"]


@dataclass(frozen=True)
class _SiimJob:
    index: int
    seed: int
    root: str
    image_size: int
    real_shapes: bool
    uids: tuple[str, str, str]
    patient_id: str
    header_seed: int


def _siim_item(job: _SiimJob) -> dict[str, Any]:
    study = render_study(
        item_rng(job.seed, "siim", job.index), job.image_size, prevalence="siim", use_real_shapes=job.real_shapes
    )
    study_uid, series_uid, image_id = job.uids
    folder = Path(job.root) / "dicom-images-train" / study_uid / series_uid
    folder.mkdir(parents=True, exist_ok=True)
    header = sample_header(
        np.random.default_rng(job.header_seed),
        patient_id=job.patient_id,
        patient_name=job.patient_id,
        sex=study.sex,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=image_id,
        view=study.view,
        pixel_spacing=study.pixel_spacing,
    )
    write_dicom(folder / f"{image_id}.dcm", study.image, header)
    regions = [region for f in study.findings if f.name == "pneumothorax" for region in f.components()]
    return {"rles": [rle_encode(region) for region in regions], "findings": [f.name for f in study.findings]}


def write_siim(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    image_size: int = 512,
    real_shapes: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> WriteSummary:
    """Write a SIIM-ACR-Pneumothorax-style dataset.

    Layout under ``out_dir``: ``dicom-images-train/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm``
    and ``train-rle.csv`` with the original header ``ImageId, EncodedPixels``, values with a leading space,
    `` -1`` for an image without pneumothorax and one row per connected pneumothorax region (column-major
    relative RLE at the image size). About 35 % are positive.

    Args: as :func:`write_rsna`.
    """
    options = layout_options("siim", n, seed, image_size, real_shapes)
    root = Path(out_dir)
    cached = cached_summary(root, options)
    if cached is not None:
        return cached
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    ids = identifier_rng(seed, "siim")
    numbers = unique_integers(ids, 1, max(32_000, 2 * n), n)
    jobs = [
        _SiimJob(
            i,
            seed,
            str(root),
            image_size,
            real_shapes,
            siim_uids(int(numbers[i]), ids),
            rsna_patient_id(ids),
            int(ids.integers(0, 1 << 62)),
        )
        for i in range(n)
    ]
    results = list(map_jobs(_siim_item, jobs, workers, progress, "SIIM-ACR", partial(field_bank, image_size)))
    rows = []
    for job, result in zip(jobs, results, strict=True):
        image_id = job.uids[2]
        rows += [(image_id, f" {rle}") for rle in result["rles"]] or [(image_id, " -1")]
    write_csv(root / "train-rle.csv", ("ImageId", " EncodedPixels"), rows)
    counts = finding_counts(results)
    counts["label:Pneumothorax"] = sum(bool(r["rles"]) for r in results)
    summary = WriteSummary(root, "siim", options, n, n, dict(counts), time.perf_counter() - start)
    summary.ids = [job.uids for job in jobs]
    return finish(summary)
