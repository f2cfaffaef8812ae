"""Prepare the SIIM-ACR Pneumothorax training set once: PNG images in the native layout, masks in their pixels.

``out_dir`` gets ``dicom-images-train/<ImageId>.png`` and ``train-rle.csv`` with one row per image the source
lists: the union of its pneumothoraces decoded on the original grid, resized with the image
(:func:`~monai_mlip.prepare.images.resize_mask`) and encoded again, plus ``original_height, original_width,
image_height, image_width``; and ``prepare_report.json``. :func:`~monai_mlip.data.build_siim_manifest` reads it as it
reads the source, with the same split: an image that could not be prepared keeps its source RLE (no size)
and is counted as a missing image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monai_mlip.data.manifests.common import BuildReport, ErrorPolicy, OnError
from monai_mlip.data.manifests.siim import find_image_files, read_siim_rle
from monai_mlip.data.masks import rle_encode, rle_union
from monai_mlip.errors import ImageReadError
from monai_mlip.prepare.common import accept, run_jobs, write_csv_atomic, write_prepare_report
from monai_mlip.prepare.images import prepare_image, resize_mask

__all__ = ["prepare_siim"]

_HEADER = ("ImageId", "EncodedPixels", "original_height", "original_width", "image_height", "image_width")


def _prepare_siim_image(job: tuple[str, Path, Path, int, list[str]]) -> dict[str, Any]:
    """Worker: the resized image, and its mask's RLE at the prepared size."""
    image_id, source, target, longest_side, rles = job
    sizes = prepare_image(source, target, longest_side)
    mask = rle_union(rles, tuple(sizes["original_size"]), item=image_id)
    return {**sizes, "rle": rle_encode(resize_mask(mask, sizes["size"]))}


def prepare_siim(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    longest_side: int = 512,
    images_subdir: str = "dicom-images-train",
    rle_file: str = "train-rle.csv",
    num_workers: int | None = None,
    on_error: OnError = "skip",
    progress: bool = True,
) -> BuildReport:
    """Resize the SIIM-ACR images and their masks into ``out_dir`` (see the module docstring).

    Args:
        dataset_dir: the folder holding ``dicom-images-train/`` and ``train-rle.csv``.
        out_dir: the prepared set's root.
        longest_side: longest side of the prepared images (the challenge's are 1024 x 1024).
        images_subdir: the nested DICOM folder (the prepared images go to a flat folder of the same name).
        rle_file: the RLE CSV (the prepared one has the same name).
        num_workers: processes (default: every CPU); 0 or 1 runs in this process.
        on_error: ``"skip"`` bad images, RLE rows and duplicates (counted with names) or ``"raise"`` the first.
        progress: show a progress bar.

    Returns:
        The build report (also written to ``prepare_report.json``).
    """
    root, out = Path(dataset_dir), Path(out_dir)
    report = BuildReport("SIIM-ACR Pneumothorax (prepare)")
    policy = ErrorPolicy(on_error, report)
    rles = read_siim_rle(root / rle_file, on_bad_row=policy.reject)
    files, duplicates = find_image_files(root / images_subdir)
    for path in duplicates:
        report.miss("unique image file (duplicate ImageId on disk)", path)
    report.found = {"images in the RLE file": len(rles), "DICOM files": len(files)}
    for image_id in rles.keys() - files.keys():
        policy.missing("image file", root / images_subdir / f"**/{image_id}.dcm", ImageReadError)
    present = [image_id for image_id in rles if image_id in files]
    jobs = [(i, files[i], out / images_subdir / f"{i}.png", longest_side, rles[i]) for i in present]
    results = run_jobs(_prepare_siim_image, jobs, num_workers, progress, desc="prepare SIIM")
    done = {image_id: r for image_id, r in zip(present, results, strict=True) if accept(r, policy)}
    report.kept = len(done)
    rows = []
    for image_id, runs in rles.items():
        if image_id in done:
            result = done[image_id]
            rows.append((image_id, result["rle"], *result["original_size"], *result["size"]))
        else:  # not prepared: the source rows, no size (read as a missing image)
            rows.extend((image_id, rle, "", "", "", "") for rle in runs or ["-1"])
    write_csv_atomic(out / rle_file, _HEADER, rows)
    write_prepare_report(out, report, longest_side, root)
    return report
