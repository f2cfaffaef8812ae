"""The manifest of a prepared MIMIC-CXR set (:mod:`monai_mlip.prepare`), read from its index alone.

The index (``index.jsonl.gz``: one JSON line per study) holds everything the manifest needs, so
building it touches no image. At 377,000 images a manifest of Python dicts would cost about a gigabyte
and tens of seconds, and every loader worker touching an item would copy the page it lives on
(reference counts are writes). So the index is held as flat NumPy columns (ids, split, view, path,
sizes, labels, and the report texts of the chosen sections in one UTF-8 buffer):
:func:`read_prepared_columns` builds them from the JSON lines, the preparation saves them as
``index_columns.npz`` so a run only loads them, and :class:`ColumnManifest` selects rows with array
operations and builds an item's dict only when the dataset asks for it. The items are those of
:func:`~monai_mlip.data.build_mimic_cxr_manifest` (the same keys, the report text from the chosen
sections), plus ``original_size`` and ``image_size`` (``[H, W]`` before and after preparation).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, OnError, logger, sample_fraction
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS, MIMIC_SPLITS
from monai_mlip.data.reports import report_text
from monai_mlip.errors import ManifestError, ReportError

__all__ = [
    "COLUMNS_NAME",
    "PREPARED_INDEX",
    "ColumnManifest",
    "build_prepared_manifest",
    "load_prepared_columns",
    "read_prepared_columns",
]

PREPARED_INDEX = "index.jsonl.gz"
COLUMNS_NAME = "index_columns.npz"
_TEXT_COLUMNS = ("study_id", "subject_id", "dicom_id", "view", "split", "image")
_SHARED = ("report_text", "report_sections")  # whole-index arrays, not one entry per image


def _studies(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise ManifestError(
            path, "no prepared index here: run python -m monai_mlip.prepare mimic --dataset_dir ... --out_dir ... first"
        )
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{number}", f"not a JSON line ({err})") from err
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ManifestError(path, f"unreadable prepared index ({type(err).__name__}: {err})") from err


def _study_text(study: dict[str, Any], sections: list[str]) -> str:
    """The text the preparation stored for these sections, else rebuilt from the parsed sections; ``""``
    when they hold none (such studies are raised or skipped when a manifest selects them)."""
    ready = study.get("report") or {}
    if ready.get("sections") == sections and ready.get("text"):
        return ready["text"]
    try:
        return report_text(study["sections"], use=sections)
    except ReportError:
        return ""


def read_prepared_columns(
    prepared_dir: str | os.PathLike, sections: Sequence[str] = ("impression", "findings")
) -> dict[str, np.ndarray]:
    """The prepared index as columns, one entry per image, with the report texts of ``sections``.

    Raises:
        ManifestError: the index is missing or malformed.
    """
    root, chosen = Path(prepared_dir), list(sections)
    columns: dict[str, list[Any]] = {name: [] for name in (*_TEXT_COLUMNS, "original_size", "size", "labels")}
    texts, spans = bytearray(), []
    for study in _studies(root / PREPARED_INDEX):
        text = _study_text(study, chosen).encode("utf-8")
        span = (len(texts), len(texts) + len(text))
        texts += text
        labels = study.get("labels") or [None] * len(CHEXPERT_LABELS)
        for image in study["images"]:
            for name in ("study_id", "subject_id", "split"):
                columns[name].append(study[name])
            for name in ("dicom_id", "view", "image", "original_size", "size"):
                columns[name].append(image[name])
            columns["labels"].append([math.nan if v is None else v for v in labels])
            spans.append(span)
    arrays = {name: np.array(columns[name], dtype=np.bytes_) for name in _TEXT_COLUMNS}
    arrays.update(
        original_size=np.array(columns["original_size"], dtype=np.int32).reshape(-1, 2),
        size=np.array(columns["size"], dtype=np.int32).reshape(-1, 2),
        labels=np.array(columns["labels"], dtype=np.float32).reshape(-1, len(CHEXPERT_LABELS)),
        report_span=np.array(spans, dtype=np.int64).reshape(-1, 2),
        report_text=np.frombuffer(bytes(texts), dtype=np.uint8),
        report_sections=np.array(chosen, dtype=np.bytes_),
    )
    return arrays


def load_prepared_columns(
    prepared_dir: str | os.PathLike, sections: Sequence[str] = ("impression", "findings")
) -> dict[str, np.ndarray]:
    """The saved ``index_columns.npz`` when it is newer than the index and holds ``sections``' text, else
    :func:`read_prepared_columns` (a pass over the JSON lines)."""
    root = Path(prepared_dir)
    path, index = root / COLUMNS_NAME, root / PREPARED_INDEX
    if path.is_file() and not (index.is_file() and path.stat().st_mtime_ns < index.stat().st_mtime_ns):
        with np.load(path, allow_pickle=False) as archive:
            columns = {name: archive[name] for name in archive.files}
        if [s.decode() for s in columns["report_sections"]] == list(sections):
            return columns
    return read_prepared_columns(root, sections)


class ColumnManifest(Sequence):
    """The rows ``rows`` of a prepared index's columns; item ``i`` is built as a dict on access.

    Attributes:
        report: the :class:`~monai_mlip.data.BuildReport` of the selection.
    """

    def __init__(
        self, root: Path, columns: dict[str, np.ndarray], rows: np.ndarray, report: BuildReport, labels: bool
    ) -> None:
        self.prefix = f"{root}{os.sep}"
        self.columns = {name: array[rows] for name, array in columns.items() if name not in _SHARED}
        self.report_text = columns["report_text"]
        self.with_labels = labels
        self.report = report
        report.kept = len(rows)

    def __len__(self) -> int:
        return len(self.columns["dicom_id"])

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        columns = self.columns
        start, end = columns["report_span"][index]
        item = {name: columns[name][index].decode("utf-8") for name in _TEXT_COLUMNS}
        item.update(
            image=self.prefix + item["image"],
            report=self.report_text[start:end].tobytes().decode("utf-8"),
            original_size=tuple(int(v) for v in columns["original_size"][index]),
            image_size=tuple(int(v) for v in columns["size"][index]),
        )
        if self.with_labels:
            item["labels"] = columns["labels"][index].copy()
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))


def _select(
    columns: dict[str, np.ndarray],
    splits: set[str],
    views: Sequence[str] | None,
    one_per_study: bool,
    fraction: float,
    seed: int,
    policy: ErrorPolicy,
    index: Path,
) -> np.ndarray:
    """Row numbers of the wanted splits and views (one per study, a fraction of the studies), counting what
    each filter drops as :func:`~monai_mlip.data.manifests.mimic.select_mimic_rows` does; images of studies
    without text in the chosen sections are raised or skipped."""
    report = policy.report
    rows = np.arange(len(columns["dicom_id"]))
    for name, allowed in (("split", splits), ("view", views)):
        if allowed is None:
            continue
        values = columns[name][rows]
        keep = np.isin(values, np.array(sorted(allowed), dtype=np.bytes_))
        dropped, counts = np.unique(values[~keep], return_counts=True)
        for value, count in zip(dropped, counts, strict=True):
            report.filter(f"{name} {value.decode() or 'unknown'}", int(count))
        rows = rows[keep]
    spans = columns["report_span"][rows]
    empty = spans[:, 1] == spans[:, 0]
    sections = [s.decode() for s in columns["report_sections"]]
    for study in columns["study_id"][rows[empty]]:
        policy.reject(ReportError(f"{index} study {study.decode()}", f"no text in the sections {sections}"))
    rows = rows[~empty]
    if one_per_study and len(rows):
        rank = {view.encode(): order for order, view in enumerate(views or ())}
        ranks = np.array([rank.get(v, len(rank)) for v in columns["view"][rows]])
        order = np.lexsort((np.arange(len(rows)), ranks, columns["study_id"][rows]))
        _, first = np.unique(columns["study_id"][rows][order], return_index=True)
        chosen = np.sort(order[first])
        report.filter("other images of the study", len(rows) - len(chosen))
        rows = rows[chosen]
    if fraction < 1:
        studies = sorted({s.decode() for s in columns["study_id"][rows]})
        kept = {
            item["study_id"].encode() for item in sample_fraction([{"study_id": s} for s in studies], fraction, seed)
        }
        keep = np.array([s in kept for s in columns["study_id"][rows]], dtype=bool)
        report.filter(f"fraction {fraction}", int((~keep).sum()))
        rows = rows[keep]
    return rows


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
) -> ColumnManifest:
    """Build a MIMIC-CXR manifest from a prepared set.

    Args:
        prepared_dir: the ``out_dir`` of :func:`~monai_mlip.prepare.prepare_mimic_cxr`.
        split, views, sections, one_per_study, fraction, seed, with_labels, on_error: as for
            :func:`~monai_mlip.data.build_mimic_cxr_manifest` (a study whose chosen sections hold no text
            is raised or skipped).

    Returns:
        A :class:`ColumnManifest` of dicts: ``image``, ``report``, ``subject_id``, ``study_id``, ``dicom_id``,
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
    columns = load_prepared_columns(root, sections)
    report = BuildReport("MIMIC-CXR (prepared)")
    report.found = {"images": len(columns["dicom_id"]), "studies": len(np.unique(columns["study_id"]))}
    rows = _select(
        columns, wanted, views, one_per_study, fraction, seed, ErrorPolicy(on_error, report), root / PREPARED_INDEX
    )
    manifest = ColumnManifest(root, columns, rows, report, with_labels)
    logger.info(report.summary())
    return manifest
