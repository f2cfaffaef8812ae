"""What the layout writers share: the summary of a written dataset, its cache marker, image and CSV writers,
and the process pool that renders the items in order."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "MARKER",
    "WriteSummary",
    "cached_summary",
    "finding_counts",
    "finish",
    "label_text",
    "layout_options",
    "map_jobs",
    "to_uint8",
    "write_csv",
    "write_jpg",
]

MARKER = "synthetic-dataset.json"
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


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_jpg(path: Path, image: np.ndarray) -> None:
    Image.fromarray(to_uint8(image), mode="L").save(path, format="JPEG", quality=95)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], compress: bool = False) -> None:
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


def label_text(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}"


def map_jobs(
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


def cached_summary(root: Path, options: dict[str, Any]) -> WriteSummary | None:
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


def finish(summary: WriteSummary) -> WriteSummary:
    record = {
        "options": summary.options,
        "n_studies": summary.n_studies,
        "n_images": summary.n_images,
        "counts": dict(sorted(summary.counts.items())),
    }
    (summary.root / MARKER).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return summary


def layout_options(layout: str, n: int, seed: int, image_size: int, real_shapes: bool, **extra: Any) -> dict[str, Any]:
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


def finding_counts(studies: Iterable[dict[str, Any]]) -> Counter:
    counts: Counter = Counter()
    for study in studies:
        counts.update(set(study["findings"]))
    return counts
