"""Prepare CheXpert once: PNG images under their relative paths and the label CSV pointing at them.

``out_dir`` gets each frontal image of ``csv_path`` at its ``Path`` with a ``.png`` suffix, a copy of the CSV
(same name, uncompressed) whose ``Path`` column names the prepared images and which adds
``original_height, original_width, image_height, image_width``, and ``prepare_report.json``.
:func:`~monai_mlip.data.build_chexpert_5x200_manifest` on the copy and ``out_dir`` draws the same images as on
the source: a row whose image could not be prepared is kept (no size) and counted as a missing image.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, OnError, read_csv_rows
from monai_mlip.errors import ImageReadError
from monai_mlip.prepare.common import accept, run_jobs, write_csv_atomic, write_prepare_report
from monai_mlip.prepare.images import resize_job

__all__ = ["prepare_chexpert"]

_SIZE_COLUMNS = ("original_height", "original_width", "image_height", "image_width")


def prepare_chexpert(
    csv_path: str | os.PathLike,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    longest_side: int = 512,
    frontal_only: bool = True,
    path_column: str = "Path",
    num_workers: int | None = None,
    on_error: OnError = "skip",
    progress: bool = True,
) -> BuildReport:
    """Resize the images a CheXpert CSV lists into ``out_dir`` (see the module docstring).

    Args:
        csv_path: CheXpert's ``train.csv`` or ``valid.csv`` (``.gz`` allowed).
        image_root: the folder the ``Path`` column is relative to (the one holding ``CheXpert-v1.0/``).
        out_dir: the prepared set's root (the CSV copy goes there too).
        longest_side: longest side of the prepared images.
        frontal_only: prepare and list only ``Frontal`` rows (all that the 5x200 protocol reads).
        path_column: the column with relative image paths.
        num_workers: processes (default: every CPU); 0 or 1 runs in this process.
        on_error: ``"skip"`` bad images and rows (counted with names) or ``"raise"`` the first.
        progress: show a progress bar.

    Returns:
        The build report (also written to ``prepare_report.json``).
    """
    root, out, csv_path = Path(image_root), Path(out_dir), Path(csv_path)
    report = BuildReport("CheXpert (prepare)")
    policy = ErrorPolicy(on_error, report)
    rows = list(read_csv_rows(csv_path, (path_column, "Frontal/Lateral"), policy.reject))
    report.found = {"rows": len(rows)}
    if frontal_only:
        report.filter("lateral view", sum(row["Frontal/Lateral"] != "Frontal" for row in rows))
        rows = [row for row in rows if row["Frontal/Lateral"] == "Frontal"]
    present = []
    for row in rows:
        if (root / row[path_column]).is_file():
            present.append(row)
        else:
            policy.missing("image file", root / row[path_column], ImageReadError)
    targets = {row[path_column]: PurePosixPath(row[path_column]).with_suffix(".png").as_posix() for row in rows}
    jobs = [(root / row[path_column], out / targets[row[path_column]], longest_side) for row in present]
    results = run_jobs(resize_job, jobs, num_workers, progress, desc="prepare CheXpert")
    sizes = {row[path_column]: r for row, r in zip(present, results, strict=True) if accept(r, policy)}
    report.kept = len(sizes)
    header = [*(rows[0] if rows else {path_column: ""}), *_SIZE_COLUMNS]
    listed = []
    for row in rows:
        size = sizes.get(row[path_column])
        values = {**row, path_column: targets[row[path_column]]}
        prepared = ["", "", "", ""] if size is None else [*size["original_size"], *size["size"]]
        values.update(zip(_SIZE_COLUMNS, prepared, strict=True))
        listed.append([values.get(name, "") for name in header])
    write_csv_atomic(out / csv_path.name.removesuffix(".gz"), header, listed)
    write_prepare_report(out, report, longest_side, csv_path)
    return report
