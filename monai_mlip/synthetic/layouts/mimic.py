"""The MIMIC-CXR-JPG (or MIMIC-CXR DICOM) layout with its split, metadata and CheXpert CSVs, the reports,
and MS-CXR phrase boxes."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.synthetic.dicom import sample_header, write_dicom
from monai_mlip.synthetic.fields import field_bank
from monai_mlip.synthetic.identifiers import (
    dicom_uid,
    identifier_rng,
    item_rng,
    mimic_dicom_id,
    unique_integers,
)
from monai_mlip.synthetic.layouts.common import (
    MARKER,
    WriteSummary,
    cached_summary,
    finding_counts,
    finish,
    label_text,
    layout_options,
    map_jobs,
    write_csv,
    write_jpg,
)
from monai_mlip.synthetic.reports import MS_CXR_CATEGORIES
from monai_mlip.synthetic.study import render_study

__all__ = ["METADATA_COLUMNS", "MIMIC_PREFIX", "MS_CXR_COLUMNS", "MS_CXR_FILE", "mimic_subjects", "write_mimic"]

MIMIC_PREFIX = "mimic-cxr-2.0.0"
MS_CXR_FILE = "MS_CXR_Local_Alignment_v1.1.0.csv"
MS_CXR_COLUMNS = (
    "dicom_id",
    "category_name",
    "label_text",
    "path",
    "x",
    "y",
    "w",
    "h",
    "image_width",
    "image_height",
    "split",
)
METADATA_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
_VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}


@dataclass(frozen=True)
class _MimicJob:
    index: int
    seed: int
    root: str
    image_size: int
    image_format: str
    real_shapes: bool
    subject_id: str
    study_id: str
    dicom_ids: tuple[str, ...]
    split: str
    study_date: str
    study_time: str
    header_seed: int


def _study_dir(root: Path, subject_id: str, study_id: str) -> Path:
    return root / "files" / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"


def _write_image(
    path: Path, image: np.ndarray, image_format: str, header_rng: np.random.Generator, **header: Any
) -> None:
    if image_format == "jpg":
        write_jpg(path, image)
    else:
        write_dicom(path, image, sample_header(header_rng, **header))


def _mimic_item(job: _MimicJob) -> dict[str, Any]:
    study = render_study(
        item_rng(job.seed, "mimic", job.index),
        job.image_size,
        prevalence="mimic",
        lateral=len(job.dicom_ids) > 1,
        use_real_shapes=job.real_shapes,
    )
    root = Path(job.root)
    folder = _study_dir(root, job.subject_id, job.study_id)
    folder.mkdir(parents=True, exist_ok=True)
    folder.with_name(f"{folder.name}.txt").write_text(study.report.text, encoding="utf-8")
    header_rng = np.random.default_rng(job.header_seed)
    study_uid = dicom_uid(job.seed, "mimic", job.study_id, "study")
    views = [(job.dicom_ids[0], study.view, study.image)]
    if study.lateral is not None:
        views.append((job.dicom_ids[1], "LATERAL", study.lateral))
    metadata = []
    for number, (dicom_id, view, image) in enumerate(views):
        _write_image(
            folder / f"{dicom_id}.{job.image_format}",
            image,
            job.image_format,
            header_rng,
            patient_id=job.subject_id,
            patient_name="___",
            sex=study.sex,
            study_uid=study_uid,
            series_uid=dicom_uid(job.seed, "mimic", job.study_id, "series", number),
            sop_uid=dicom_uid(job.seed, "mimic", dicom_id),
            view=view,
            pixel_spacing=study.pixel_spacing,
            study_date=job.study_date,
            study_time=job.study_time,
            description=_procedure(study.view, study.lateral is not None),
        )
        metadata.append((dicom_id, view))
    grounding = []
    relative = (folder / f"{job.dicom_ids[0]}.{job.image_format}").relative_to(root).as_posix()
    for finding in study.findings:
        if finding.category not in MS_CXR_CATEGORIES:
            continue
        for x, y, w, h in finding.boxes.astype(int).tolist():
            grounding.append((job.dicom_ids[0], finding.category, finding.sentence, relative, x, y, w, h))
    return {
        "view": study.view,
        "views": metadata,
        "labels": [study.labels[c] for c in CHEXPERT_LABELS],
        "grounding": grounding,
        "findings": [f.name for f in study.findings],
    }


def _procedure(view: str, lateral: bool) -> str:
    return "CHEST (PA AND LAT)" if lateral else "CHEST (PORTABLE AP)" if view == "AP" else "CHEST (PA)"


def mimic_subjects(rng: np.random.Generator, n: int, split_fractions: Sequence[float]) -> list[tuple[str, str, str]]:
    """``(subject_id, study_id, split)`` of ``n`` studies: about 2.5 studies per subject, split by subject."""
    owners = np.cumsum(np.concatenate([[0], rng.random(n - 1) < 0.4]))
    n_subjects = int(owners[-1]) + 1
    subjects = np.sort(unique_integers(rng, 10_000_000, 20_000_000, n_subjects))
    studies = unique_integers(rng, 50_000_000, 60_000_000, n)
    bounds = np.cumsum(split_fractions) / np.sum(split_fractions)
    draws = rng.random(n_subjects)
    splits = [("train", "validate", "test")[int(np.searchsorted(bounds, d, side="right"))] for d in draws]
    return [(str(subjects[o]), str(studies[i]), splits[o]) for i, o in enumerate(owners)]


def write_mimic(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    image_size: int = 512,
    image_format: str = "jpg",
    lateral_fraction: float = 0.1,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    real_shapes: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> WriteSummary:
    """Write a MIMIC-CXR-JPG-style dataset (``image_format="dcm"``: the DICOM release's layout).

    Layout under ``out_dir``: ``files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg|.dcm``, reports
    ``files/pXX/pSUBJECT/sSTUDY.txt``, the gzipped ``mimic-cxr-2.0.0-split``, ``-metadata`` and
    ``-chexpert`` CSVs, and ``MS_CXR_Local_Alignment_v1.1.0.csv`` with one box per connected region of
    every certain, groundable finding (the phrase is its findings sentence).

    Args:
        out_dir: the dataset root (created).
        n: number of studies (each has one frontal image; some also a lateral).
        seed: run seed; the same seed and options give byte-identical files.
        image_size: side of the square images.
        image_format: ``jpg`` or ``dcm``.
        lateral_fraction: fraction of studies that also get a lateral view.
        split_fractions: train/validate/test proportions, drawn per subject.
        real_shapes: shape pneumothoraces and pneumonia with torchxrayvision's SIIM/RSNA annotations.
        workers: rendering processes (output does not depend on it).
        progress: show a progress bar.

    Returns:
        The :class:`WriteSummary`.
    """
    if image_format not in ("jpg", "dcm"):
        raise ValueError(f"image_format must be 'jpg' or 'dcm', got {image_format!r}")
    options = layout_options(
        "mimic",
        n,
        seed,
        image_size,
        real_shapes,
        image_format=image_format,
        lateral_fraction=float(lateral_fraction),
        split_fractions=[float(f) for f in split_fractions],
    )
    root = Path(out_dir)
    cached = cached_summary(root, options)
    if cached is not None:
        return cached
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    ids = identifier_rng(seed, "mimic")
    people = mimic_subjects(ids, n, split_fractions)
    jobs = []
    for index, (subject_id, study_id, split) in enumerate(people):
        lateral = bool(ids.random() < lateral_fraction)
        dicom_ids = tuple(mimic_dicom_id(ids) for _ in range(2 if lateral else 1))
        date = f"{int(ids.integers(2110, 2210))}{int(ids.integers(1, 13)):02d}{int(ids.integers(1, 29)):02d}"
        clock = f"{int(ids.integers(0, 24)):02d}{int(ids.integers(0, 60)):02d}{int(ids.integers(0, 60)):02d}"
        jobs.append(
            _MimicJob(
                index=index,
                seed=seed,
                root=str(root),
                image_size=image_size,
                image_format=image_format,
                real_shapes=real_shapes,
                subject_id=subject_id,
                study_id=study_id,
                dicom_ids=dicom_ids,
                split=split,
                study_date=date,
                study_time=f"{clock}.{int(ids.integers(0, 1000)):03d}",
                header_seed=int(ids.integers(0, 1 << 62)),
            )
        )
    results = list(map_jobs(_mimic_item, jobs, workers, progress, "MIMIC-CXR", partial(field_bank, image_size)))
    order = sorted(range(n), key=lambda i: (jobs[i].subject_id, jobs[i].study_id))
    split_rows, metadata_rows, label_rows, grounding_rows = [], [], [], []
    for i in order:
        job, result = jobs[i], results[i]
        for dicom_id, view in result["views"]:
            split_rows.append((dicom_id, job.study_id, job.subject_id, job.split))
            procedure = _procedure(result["view"], len(result["views"]) > 1)
            metadata_rows.append(
                (
                    dicom_id,
                    job.subject_id,
                    job.study_id,
                    procedure,
                    view,
                    image_size,
                    image_size,
                    job.study_date,
                    job.study_time,
                    procedure,
                    _VIEW_MEANING[view],
                    "Erect" if result["view"] == "PA" or view == "LATERAL" else "Recumbent",
                )
            )
        label_rows.append((job.subject_id, job.study_id, *(label_text(v) for v in result["labels"])))
        grounding_rows += [(*row, image_size, image_size, job.split) for row in result["grounding"]]
    write_csv(root / f"{MIMIC_PREFIX}-split.csv.gz", ("dicom_id", "study_id", "subject_id", "split"), split_rows, True)
    write_csv(root / f"{MIMIC_PREFIX}-metadata.csv.gz", METADATA_COLUMNS, metadata_rows, True)
    write_csv(root / f"{MIMIC_PREFIX}-chexpert.csv.gz", ("subject_id", "study_id", *CHEXPERT_LABELS), label_rows, True)
    write_csv(root / MS_CXR_FILE, MS_CXR_COLUMNS, grounding_rows)
    counts = finding_counts(results)
    for position, column in enumerate(CHEXPERT_LABELS):
        counts[f"label:{column}"] = sum(r["labels"][position] == 1.0 for r in results)
    summary = WriteSummary(root, "mimic", options, n, len(split_rows), dict(counts), time.perf_counter() - start)
    summary.ids = [(job.subject_id, job.study_id, *job.dicom_ids) for job in jobs]
    return finish(summary)
