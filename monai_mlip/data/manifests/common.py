"""What every dataset manifest builder shares: the build report, error policy, CSV reading, splits, fractions."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from monai_mlip.errors import ManifestError, MLIPDataError

__all__ = [
    "PREPARED_REPORT",
    "BuildReport",
    "Manifest",
    "OnError",
    "is_prepared",
    "read_csv_rows",
    "sample_fraction",
    "split_by_key",
]

logger = logging.getLogger("monai_mlip.data")

OnError = Literal["raise", "skip"]
_EXAMPLES_KEPT = 5
PREPARED_REPORT = "prepare_report.json"  # written last by monai_mlip.prepare: its presence marks a finished set


def is_prepared(root: str | os.PathLike) -> bool:
    """Whether ``root`` is a set written by :mod:`monai_mlip.prepare` (PNG images in the native layout)."""
    return (Path(root) / PREPARED_REPORT).is_file()


@dataclass
class BuildReport:
    """What a manifest builder found, what was missing, what it filtered out and what it skipped.

    Attributes:
        dataset: the dataset's name.
        found: counts of what the index files list (``{"images": 1200, "studies": 500}``).
        kept: the number of items in the manifest.
        filtered: items dropped by a requested filter (view, split, fraction), by reason.
        missing: files the index lists that are not on disk, by kind, with up to five examples each.
        skipped: bad items skipped under ``on_error="skip"``, by reason, with up to five examples each.

    Every image an index lists is accounted for once: kept, filtered, missing (its file) or skipped (a bad
    index row, a bad label, or a study whose report is missing or unusable: then each of its images is a
    skip, while the report file itself is also listed under ``missing``). ``skipped`` also counts malformed
    rows of secondary indexes (metadata, labels), which are not images.
    """

    dataset: str
    found: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def filter(self, reason: str, count: int = 1) -> None:
        """Count ``count`` items dropped by a requested filter."""
        if count:
            self.filtered[reason] = self.filtered.get(reason, 0) + count

    def _note(self, table: dict[str, int], key: str, item: object) -> None:
        table[key] = table.get(key, 0) + 1
        examples = self.examples.setdefault(key, [])
        if len(examples) < _EXAMPLES_KEPT:
            examples.append(str(item))

    def miss(self, kind: str, item: object) -> None:
        """Record a file of ``kind`` listed by the index but absent."""
        self._note(self.missing, kind, item)

    def skip(self, error: MLIPDataError) -> None:
        """Record a bad item skipped under ``on_error="skip"``."""
        self._note(self.skipped, error.reason, error.item)

    @property
    def n_missing(self) -> int:
        return sum(self.missing.values())

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A human-readable multi-line summary."""
        lines = [f"{self.dataset}: kept {self.kept} items"]
        if self.found:
            lines.append("  found: " + ", ".join(f"{v} {k}" for k, v in self.found.items()))
        for title, table in (("filtered", self.filtered), ("missing", self.missing), ("skipped", self.skipped)):
            for reason, count in table.items():
                shown = self.examples.get(reason) if table is not self.filtered else None
                suffix = f" (e.g. {', '.join(shown)})" if shown else ""
                lines.append(f"  {title}: {count} - {reason}{suffix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class Manifest(list):
    """A list of item dicts, usable as ``data`` of any MONAI dataset, with the :class:`BuildReport`."""

    def __init__(self, items: Iterable[dict[str, Any]], report: BuildReport) -> None:
        super().__init__(items)
        report.kept = len(self)
        self.report = report
        logger.info(report.summary())


class ErrorPolicy:
    """Raise data errors, or count them in the build report and go on (``on_error="skip"``)."""

    def __init__(self, on_error: OnError, report: BuildReport) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.report = report

    def missing(self, kind: str, path: Path, error_type: type[MLIPDataError]) -> None:
        """Handle a file listed by the index but absent."""
        if self.on_error == "raise":
            raise error_type(path, f"{kind} not found")
        self.report.miss(kind, path)

    def reject(self, error: MLIPDataError) -> None:
        """Raise ``error``, or count it as a skipped item."""
        if self.on_error == "raise":
            raise error
        self.report.skip(error)

    def attempt(self, build: Callable[[], Any]) -> Any | None:
        """Run ``build``; on a data error raise it or count it and return ``None``."""
        try:
            return build()
        except MLIPDataError as error:
            self.reject(error)
            return None


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if n.endswith(".csv")]
        if len(names) != 1:
            raise ManifestError(path, f"expected one CSV inside the zip, found {names}")
        return io.TextIOWrapper(archive.open(names[0]), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_csv_rows(
    path: str | os.PathLike,
    required: Sequence[str] = (),
    on_bad_row: Callable[[ManifestError], None] | None = None,
) -> Iterator[dict[str, str]]:
    """Yield the rows of a CSV (plain, ``.gz`` or a one-CSV ``.zip``) as dicts.

    Header names and values are stripped of surrounding whitespace (SIIM writes ``ImageId, EncodedPixels``
    and values with a leading space).

    Args:
        path: the CSV.
        required: columns the header must have.
        on_bad_row: called with the error of a row whose number of values differs from the header's (for
            example :meth:`ErrorPolicy.reject`, which raises it or counts it); ``None`` raises it.

    Raises:
        ManifestError: the file is missing, not UTF-8 text, or lacks a ``required`` column; a malformed row
            (unless ``on_bad_row`` takes it).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, "index file not found")
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            absent = [name for name in required if name not in header]
            if absent:
                raise ManifestError(path, f"missing column(s) {absent}; the header is {header}")
            for number, row in enumerate(reader, start=2):
                if not row or not any(value.strip() for value in row):
                    continue
                if len(row) != len(header):
                    error = ManifestError(f"{path}:{number}", f"{len(row)} values for {len(header)} columns")
                    if on_bad_row is None:
                        raise error
                    on_bad_row(error)
                    continue
                yield {name: value.strip() for name, value in zip(header, row, strict=True)}
    except (UnicodeDecodeError, gzip.BadGzipFile, zipfile.BadZipFile, EOFError) as err:
        raise ManifestError(path, f"unreadable index file ({type(err).__name__}: {err})") from err


def split_by_key(
    items: Sequence[dict[str, Any]],
    key: str,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    names: Sequence[str] = ("train", "valid", "test"),
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Split items into groups by the unique values of ``key`` (a patient never spans two groups).

    The unique values are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut by ``ratios``.

    Returns:
        ``{name: items}`` for every name, preserving the input order inside each group.
    """
    if len(ratios) != len(names) or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios {ratios} must be non-negative, one per name {names}, and sum to 1")
    values = sorted({item[key] for item in items})
    order = np.random.default_rng(seed).permutation(len(values))
    bounds = np.round(np.cumsum([0.0, *ratios]) * len(values)).astype(int)
    group_of: dict[Hashable, str] = {}
    for name, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True):
        for position in order[lo:hi]:
            group_of[values[position]] = name
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for item in items:
        groups[group_of[item[key]]].append(item)
    return groups


def sample_fraction(
    items: Sequence[dict[str, Any]], fraction: float, seed: int = 0, stratify_key: str | None = None
) -> list[dict[str, Any]]:
    """Draw a reproducible fraction of the items (the 1 / 10 / 100 % few-shot protocol).

    Args:
        items: the training items.
        fraction: in ``(0, 1]``; at least one item (one per stratum) is kept.
        seed: the draw's seed; the same seed gives the same subset, and a smaller fraction's subset is
            contained in a larger one's.
        stratify_key: keep the proportion of each value of this key (for example ``label``).

    Returns:
        The selected items in their original order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(items)
    strata: dict[Hashable, list[int]] = {}
    for index, item in enumerate(items):
        strata.setdefault(item[stratify_key] if stratify_key else None, []).append(index)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for value in sorted(strata, key=str):
        members = strata[value]
        count = max(1, round(fraction * len(members)))
        chosen.extend(members[i] for i in rng.permutation(len(members))[:count])
    return [items[i] for i in sorted(chosen)]
