"""Writers of the native dataset layouts: MIMIC-CXR-JPG (or DICOM) with MS-CXR boxes, RSNA, SIIM.

Each writer renders ``n`` studies (item ``i`` from its own seed stream, so the output is byte-identical
whatever ``workers`` is), writes the image files (and reports) in worker processes, then writes the
index files in the main process in a fixed order. Identifiers come from a separate stream of the seed.
A finished dataset records its options in ``synthetic-dataset.json``; calling a writer again with the
same options returns at once (the dataset is cached), other options regenerate it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from monai_mlip.data.masks import rle_encode
from monai_mlip.data.synthetic.dicom import sample_header, write_dicom
from monai_mlip.data.synthetic.fields import field_bank
from monai_mlip.data.synthetic.identifiers import (
    dicom_uid,
    identifier_rng,
    item_rng,
    mimic_dicom_id,
    rsna_patient_id,
    siim_uids,
    unique_integers,
)
from monai_mlip.data.synthetic.reports import CHEXPERT_COLUMNS, MS_CXR_CATEGORIES
from monai_mlip.data.synthetic.study import render_study

__all__ = ["LAYOUTS", "WriteSummary", "write_layout", "write_mimic", "write_rsna", "write_siim"]

LAYOUTS = ("mimic", "rsna", "siim")
MARKER = "synthetic-dataset.json"
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
# bumped whenever the rendering changes, so a cached dataset is regenerated
# (2: severity floor; 3: pneumonia and pneumothorax sized by severity, denser and darker)
_VERSION = 3


@dataclass
class WriteSummary:
    """What a writer produced.

    Attributes:
        root: the dataset folder.
        layout: ``mimic``, ``rsna`` or ``siim``.
        options: the options the dataset was made with (seed, n, image size, ...).
        n_studies: studies (patients) written; n_images: image files written.
        counts: studies with each finding drawn, and with each positive label of the layout's index.
        seconds: generation time (0 when the cached dataset was reused).
        cached: the dataset already existed with these options.
        ids: per item, in generation order, the identifiers it was written under (MIMIC:
            ``(subject_id, study_id, frontal dicom_id[, lateral dicom_id])``; RSNA: ``(patientId,)``;
            SIIM: ``(StudyInstanceUID, SeriesInstanceUID, ImageId)``); empty when ``cached``.
    """

    root: Path
    layout: str
    options: dict[str, Any]
    n_studies: int
    n_images: int
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False
    ids: list[tuple[str, ...]] = field(default_factory=list)


# --- shared helpers ------------------------------------------------------------------------------------


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _write_jpg(path: Path, image: np.ndarray) -> None:
    Image.fromarray(_to_uint8(image), mode="L").save(path, format="JPEG", quality=95)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], compress: bool = False) -> None:
    """Write a CSV with ``\\n`` line ends; gzipped with a zero timestamp and no file name when ``compress``."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    if compress:
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def _label_text(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}"


def _map(
    function: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int,
    progress: bool,
    desc: str,
    prepare: Callable[[], Any] | None = None,
) -> Iterator[Any]:
    """``function`` over ``jobs`` in order, in ``workers`` processes, with an optional progress bar.

    ``prepare`` (e.g. building the texture bank) runs in this process before forking, so workers share it.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress)
    try:
        if workers <= 1 or len(jobs) < 2:
            for job in jobs:
                yield function(job)
                bar.update()
            return
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        if context.get_start_method() == "fork" and prepare is not None:
            prepare()  # built once here, inherited by every forked worker
        with context.Pool(min(workers, len(jobs))) as pool:
            for result in pool.imap(function, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
                yield result
                bar.update()
    finally:
        bar.close()


def _cached(root: Path, options: dict[str, Any]) -> WriteSummary | None:
    marker = root / MARKER
    if not marker.is_file():
        return None
    try:
        saved = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("options") != options:
        return None
    return WriteSummary(
        root=root,
        layout=options["layout"],
        options=options,
        n_studies=saved["n_studies"],
        n_images=saved["n_images"],
        counts=saved["counts"],
        cached=True,
    )


def _finish(summary: WriteSummary) -> WriteSummary:
    record = {
        "options": summary.options,
        "n_studies": summary.n_studies,
        "n_images": summary.n_images,
        "counts": dict(sorted(summary.counts.items())),
    }
    (summary.root / MARKER).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return summary


def _options(layout: str, n: int, seed: int, image_size: int, real_shapes: bool, **extra: Any) -> dict[str, Any]:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    return {
        "layout": layout,
        "version": _VERSION,
        "n": int(n),
        "seed": int(seed),
        "image_size": int(image_size),
        "real_shapes": bool(real_shapes),
        **extra,
    }


def _finding_counts(studies: Iterable[dict[str, Any]]) -> Counter:
    counts: Counter = Counter()
    for study in studies:
        counts.update(set(study["findings"]))
    return counts


# --- MIMIC-CXR-JPG -----------------------------------------------------------------------------------


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
        _write_jpg(path, image)
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
        "labels": [study.labels[c] for c in CHEXPERT_COLUMNS],
        "grounding": grounding,
        "findings": [f.name for f in study.findings],
    }


def _procedure(view: str, lateral: bool) -> str:
    return "CHEST (PA AND LAT)" if lateral else "CHEST (PORTABLE AP)" if view == "AP" else "CHEST (PA)"


def _mimic_subjects(rng: np.random.Generator, n: int, split_fractions: Sequence[float]) -> list[tuple[str, str, str]]:
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
    options = _options(
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
    cached = _cached(root, options)
    if cached is not None:
        return cached
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    ids = identifier_rng(seed, "mimic")
    people = _mimic_subjects(ids, n, split_fractions)
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
    results = list(_map(_mimic_item, jobs, workers, progress, "MIMIC-CXR", partial(field_bank, image_size)))
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
        label_rows.append((job.subject_id, job.study_id, *(_label_text(v) for v in result["labels"])))
        grounding_rows += [(*row, image_size, image_size, job.split) for row in result["grounding"]]
    _write_csv(root / f"{MIMIC_PREFIX}-split.csv.gz", ("dicom_id", "study_id", "subject_id", "split"), split_rows, True)
    _write_csv(root / f"{MIMIC_PREFIX}-metadata.csv.gz", METADATA_COLUMNS, metadata_rows, True)
    _write_csv(
        root / f"{MIMIC_PREFIX}-chexpert.csv.gz", ("subject_id", "study_id", *CHEXPERT_COLUMNS), label_rows, True
    )
    _write_csv(root / MS_CXR_FILE, MS_CXR_COLUMNS, grounding_rows)
    counts = _finding_counts(results)
    for position, column in enumerate(CHEXPERT_COLUMNS):
        counts[f"label:{column}"] = sum(r["labels"][position] == 1.0 for r in results)
    summary = WriteSummary(root, "mimic", options, n, len(split_rows), dict(counts), time.perf_counter() - start)
    summary.ids = [(job.subject_id, job.study_id, *job.dicom_ids) for job in jobs]
    return _finish(summary)


# --- RSNA Pneumonia --------------------------------------------------------------------------------------


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
    options = _options("rsna", n, seed, image_size, real_shapes)
    root = Path(out_dir)
    cached = _cached(root, options)
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
    results = list(_map(_rsna_item, jobs, workers, progress, "RSNA", partial(field_bank, image_size)))
    label_rows, class_rows = [], []
    for job, result in zip(jobs, results, strict=True):
        if result["boxes"]:
            label_rows += [(job.patient_id, *(f"{v:.1f}" for v in box), 1) for box in result["boxes"]]
        else:
            label_rows.append((job.patient_id, "", "", "", "", 0))
        class_rows += [(job.patient_id, result["class"])] * max(len(result["boxes"]), 1)
    _write_csv(root / "stage_2_train_labels.csv", ("patientId", "x", "y", "width", "height", "Target"), label_rows)
    _write_csv(root / "stage_2_detailed_class_info.csv", ("patientId", "class"), class_rows)
    counts = _finding_counts(results)
    counts["label:Target"] = sum(bool(r["boxes"]) for r in results)
    summary = WriteSummary(root, "rsna", options, n, n, dict(counts), time.perf_counter() - start)
    summary.ids = [(job.patient_id,) for job in jobs]
    return _finish(summary)


# --- SIIM-ACR Pneumothorax ------------------------------------------------------------------------------


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
    options = _options("siim", n, seed, image_size, real_shapes)
    root = Path(out_dir)
    cached = _cached(root, options)
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
    results = list(_map(_siim_item, jobs, workers, progress, "SIIM-ACR", partial(field_bank, image_size)))
    rows = []
    for job, result in zip(jobs, results, strict=True):
        image_id = job.uids[2]
        rows += [(image_id, f" {rle}") for rle in result["rles"]] or [(image_id, " -1")]
    _write_csv(root / "train-rle.csv", ("ImageId", " EncodedPixels"), rows)
    counts = _finding_counts(results)
    counts["label:Pneumothorax"] = sum(bool(r["rles"]) for r in results)
    summary = WriteSummary(root, "siim", options, n, n, dict(counts), time.perf_counter() - start)
    summary.ids = [job.uids for job in jobs]
    return _finish(summary)


def write_layout(layout: str, out_dir: str | os.PathLike, n: int, **options: Any) -> WriteSummary:
    """Dispatch to :func:`write_mimic`, :func:`write_rsna` or :func:`write_siim` by ``layout`` name."""
    writers = {"mimic": write_mimic, "rsna": write_rsna, "siim": write_siim}
    if layout not in writers:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return writers[layout](out_dir, n, **options)
