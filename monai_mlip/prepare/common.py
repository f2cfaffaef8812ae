"""What every dataset's preparation shares: running a worker over many images in parallel processes with
a progress bar, and writing the index files and the report atomically.

A worker gets one job and returns a result; a data error (:class:`~monai_mlip.errors.MLIPDataError`) is
returned, not raised, so one bad image never stops the pool, and the caller skips or raises it by its
``on_error`` policy.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from monai_mlip.atomic_io import write_atomic, write_json_atomic
from monai_mlip.data.manifests.common import PREPARED_REPORT, BuildReport, ErrorPolicy
from monai_mlip.errors import MLIPDataError

__all__ = ["accept", "run_jobs", "write_csv_atomic", "write_prepare_report"]

Job = TypeVar("Job")
logger = logging.getLogger("monai_mlip.prepare")


def _guarded(worker: Callable[[Any], Any], job: Any) -> Any:
    try:
        return worker(job)
    except MLIPDataError as error:  # picklable: it goes back to the parent as a value
        return error


def run_jobs(
    worker: Callable[[Job], Any],
    jobs: Sequence[Job],
    num_workers: int | None = None,
    progress: bool = True,
    desc: str = "prepare",
) -> list[Any]:
    """``[worker(job) or its MLIPDataError for job in jobs]``, in order.

    Args:
        worker: a module-level function (it is pickled to the worker processes).
        jobs: its arguments, one per image.
        num_workers: processes (``None``: every CPU); 0 or 1 runs in this process.
        progress: show a progress bar.
        desc: the bar's label.
    """
    guarded = functools.partial(_guarded, worker)
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    with tqdm(total=len(jobs), desc=desc, disable=not progress) as bar:
        if workers <= 1:
            results = []
            for job in jobs:
                results.append(guarded(job))
                bar.update()
            return results
        chunksize = max(1, min(64, len(jobs) // (8 * workers)))
        with ProcessPoolExecutor(workers) as pool:
            results = []
            for result in pool.map(guarded, jobs, chunksize=chunksize):
                results.append(result)
                bar.update()
            return results


def accept(result: Any, policy: ErrorPolicy) -> bool:
    """Whether ``result`` is a worker's output; a returned data error goes to ``policy`` (raised, or counted
    in its report with its name)."""
    if not isinstance(result, MLIPDataError):
        return True
    policy.reject(result)
    return False


def write_csv_atomic(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV with ``header`` under a temporary name and rename it to ``path`` when complete."""

    def write(handle: Any) -> None:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)

    write_atomic(path, write, "w")


def write_prepare_report(out_dir: str | os.PathLike, report: BuildReport, longest_side: int, source: object) -> None:
    """Write ``prepare_report.json`` (what was found, filtered, skipped, with names) last: its presence marks
    a finished set, which the manifests then read as prepared
    (:func:`~monai_mlip.data.manifests.common.is_prepared`)."""
    write_json_atomic(
        Path(out_dir) / PREPARED_REPORT, {**asdict(report), "longest_side": longest_side, "source": str(source)}
    )
    logger.info("%s: prepared %d images into %s", report.dataset, report.kept, out_dir)
