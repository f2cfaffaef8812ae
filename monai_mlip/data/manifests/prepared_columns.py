"""A prepared MIMIC-CXR index as columns (``index_columns.npz``): a manifest that stays small at real size.

At 377,000 images a manifest of Python dicts costs about a gigabyte and tens of seconds to build, and
every loader worker that touches an item copies the page it lives on (reference counts are writes).
:func:`write_prepared_columns` turns ``index.jsonl.gz`` into flat NumPy columns (ids, split, view, path,
sizes, labels, and the report texts of the chosen sections in one UTF-8 buffer); :class:`ColumnManifest`
selects rows with array operations and builds an item's dict only when the dataset asks for it, so the
manifest holds a few hundred bytes per image in a handful of arrays.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import BuildReport, sample_fraction
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.errors import ManifestError

__all__ = ["COLUMNS_NAME", "ColumnManifest", "select_columns", "write_prepared_columns"]

COLUMNS_NAME = "index_columns.npz"
_TEXT_COLUMNS = ("study_id", "subject_id", "dicom_id", "view", "split", "image")
_SHARED = ("report_text", "report_sections")  # whole-index arrays, not one entry per image


def write_prepared_columns(prepared_dir: str | os.PathLike) -> Path:
    """Write ``index_columns.npz`` beside ``index.jsonl.gz`` (atomically); returns its path."""
    from monai_mlip.handlers.io import write_atomic

    root = Path(prepared_dir)
    columns: dict[str, list[Any]] = {name: [] for name in (*_TEXT_COLUMNS, "original_size", "size", "labels")}
    texts, spans, sections = bytearray(), [], None
    with gzip.open(root / "index.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            study = json.loads(line)
            ready = study.get("report") or {}
            sections = sections or ready.get("sections")
            if ready.get("sections") != sections:
                raise ManifestError(root, "the index's studies were prepared with different report sections")
            text = (ready.get("text") or "").encode("utf-8")
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
        report_sections=np.array(sections or [], dtype=np.bytes_),
    )

    def save(handle: io.BufferedWriter) -> None:
        np.savez(handle, **arrays)

    write_atomic(root / COLUMNS_NAME, save, "wb")
    return root / COLUMNS_NAME


class ColumnManifest(Sequence):
    """The rows ``rows`` of a prepared index's columns; item ``i`` is built as a dict on access.

    Items have the keys of :func:`~monai_mlip.data.build_prepared_manifest`'s.

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


def select_columns(
    columns: dict[str, np.ndarray],
    splits: set[str],
    views: Sequence[str] | None,
    one_per_study: bool,
    fraction: float,
    seed: int,
    report: BuildReport,
) -> np.ndarray:
    """Row numbers of the wanted splits and views (one per study, a fraction of the studies), counting in
    ``report`` what each filter drops, as :func:`~monai_mlip.data.manifests.mimic.select_mimic_rows` does."""
    rows = np.arange(len(columns["dicom_id"]))
    for name, allowed, label in (("split", splits, "split"), ("view", views, "view")):
        if allowed is None:
            continue
        values = columns[name][rows]
        keep = np.isin(values, np.array(sorted(allowed), dtype=np.bytes_))
        dropped, counts = np.unique(values[~keep], return_counts=True)
        for value, count in zip(dropped, counts, strict=True):
            report.filter(f"{label} {value.decode() or 'unknown'}", int(count))
        rows = rows[keep]
    texts = columns["report_span"][rows]
    empty = texts[:, 1] == texts[:, 0]
    report.filter("study without text in the chosen sections", int(empty.sum()))
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
