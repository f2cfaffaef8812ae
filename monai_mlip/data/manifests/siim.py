"""SIIM-ACR Pneumothorax Segmentation manifests.

Layout: ``dicom-images-train/<StudyUID>/<SeriesUID>/<ImageId>.dcm`` and ``train-rle.csv`` with the header
``ImageId, EncodedPixels`` (note the spaces; values also start with a space, an empty mask is `` -1``).
An image with several pneumothoraces has several rows: its mask is their union. Splits are by ImageId
(MGCA split by CSV row, which leaks images with several rows across splits). A prepared set
(:func:`~monai_mlip.prepare.prepare_siim`) has the same layout with ``<ImageId>.png`` images, one RLE row per
image in their pixels and their ``image_height`` and ``image_width``, and is read the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mlip.data.manifests.common import (
    BuildReport,
    ErrorPolicy,
    Manifest,
    OnError,
    is_prepared,
    read_csv_rows,
    sample_fraction,
    split_by_key,
)
from monai_mlip.data.masks import rle_decode
from monai_mlip.errors import ImageReadError, ManifestError, RLEError

__all__ = ["SIIM_SPLITS", "build_siim_manifest", "find_image_files", "read_siim_rle", "read_siim_sizes"]

SIIM_SPLITS = ("train", "valid", "test")
SIZE_COLUMNS = ("image_height", "image_width")  # a prepared set's RLE file: the prepared image's size per ImageId


def read_siim_rle(
    path: str | os.PathLike, on_bad_row: Callable[[ManifestError], None] | None = None
) -> dict[str, list[str]]:
    """The RLE rows of ``train-rle.csv`` per ImageId: ``[]`` for an empty mask (``-1``), else one string per row
    (``on_bad_row``: see :func:`read_csv_rows`)."""
    rles: dict[str, list[str]] = {}
    for row in read_csv_rows(path, required=("ImageId", "EncodedPixels"), on_bad_row=on_bad_row):
        runs = rles.setdefault(row["ImageId"], [])
        if row["EncodedPixels"] not in ("", "-1"):
            runs.append(row["EncodedPixels"])
    return rles


def read_siim_sizes(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``ImageId -> (H, W)`` from a prepared RLE file's size columns (images that were not prepared have none)."""
    return {
        row["ImageId"]: (int(row["image_height"]), int(row["image_width"]))
        for row in read_csv_rows(path, required=("ImageId", *SIZE_COLUMNS))
        if row["image_height"] and row["image_width"]
    }


def find_image_files(root: str | os.PathLike, suffix: str = ".dcm") -> tuple[dict[str, Path], list[Path]]:
    """Find ``*<suffix>`` files under nested folders.

    Returns:
        ``(by_stem, duplicates)``: file stem (the ImageId) to path, and the paths of stems seen twice.
    """
    by_stem: dict[str, Path] = {}
    duplicates = []
    for path in sorted(Path(root).rglob(f"*{suffix}")):
        if path.stem in by_stem:
            duplicates.append(path)
        else:
            by_stem[path.stem] = path
    return by_stem, duplicates


def _check_rle(image_id: str, rles: list[str], shape: Sequence[int] | None) -> bool:
    """Decode every row once (``shape`` None: only parse the numbers and their parity)."""
    for rle in rles:
        if shape is None:
            runs = rle.split()
            if len(runs) % 2 or not all(value.isdigit() for value in runs):
                raise RLEError(image_id, "RLE must be pairs of non-negative integers")
        else:
            rle_decode(rle, (int(shape[0]), int(shape[1])), item=image_id)
    return True


def build_siim_manifest(
    dataset_dir: str | os.PathLike,
    split: str = "train",
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    fraction: float = 1.0,
    seed: int = 0,
    balance_train: bool = False,
    image_shape: Sequence[int] | None = (1024, 1024),
    images_subdir: str = "dicom-images-train",
    rle_file: str = "train-rle.csv",
    on_error: OnError = "raise",
) -> Manifest:
    """Items of the SIIM-ACR training set, split by ImageId.

    Args:
        dataset_dir: the folder holding ``dicom-images-train/`` and ``train-rle.csv``.
        split: ``train``, ``valid``, ``test`` (by ImageId) or ``all``.
        ratios: the train/valid/test proportions.
        split_seed: the split's seed.
        fraction: keep this fraction of the split, stratified by label.
        seed: the fraction's seed.
        balance_train: for ``train``, keep every positive and as many negatives (MGCA's training set).
        image_shape: ``(H, W)`` the RLE rows are checked against (every row is decoded once here, so a
            malformed row fails the build, not an epoch hours later); ``None`` checks only the syntax, and
            :class:`~monai_mlip.data.RLEToMaskd` checks the extent against each loaded image. A prepared
            set checks each row against its image's recorded size instead.
        images_subdir: the nested DICOM folder.
        rle_file: the RLE CSV.
        on_error: ``raise`` on a missing image or malformed RLE, or ``skip`` and count them.

    Returns:
        A :class:`Manifest` of dicts: ``image`` (path), ``label`` (0 or 1), ``rle`` (the image's RLE rows
        joined by newlines, ``""`` when empty; :class:`~monai_mlip.data.RLEToMaskd` decodes it) and ``image_id``.
    """
    if split not in (*SIIM_SPLITS, "all"):
        raise ValueError(f"split must be one of {(*SIIM_SPLITS, 'all')}, got {split!r}")
    root = Path(dataset_dir)
    report = BuildReport("SIIM-ACR Pneumothorax")
    policy = ErrorPolicy(on_error, report)
    rles = read_siim_rle(root / rle_file, on_bad_row=policy.reject)
    prepared = is_prepared(root)
    shapes = read_siim_sizes(root / rle_file) if prepared else dict.fromkeys(rles, image_shape)
    files, duplicates = find_image_files(root / images_subdir, ".png" if prepared else ".dcm")
    for path in duplicates:
        report.miss("unique image file (duplicate ImageId on disk)", path)
    report.found = {"images in the RLE file": len(rles), "DICOM files": len(files)}
    unlisted = len(set(files) - set(rles))
    report.filter("DICOM files without an RLE row", unlisted)

    items: list[dict[str, Any]] = []
    for image_id, runs in rles.items():
        shape = shapes.get(image_id)
        if policy.attempt(lambda image_id=image_id, runs=runs, shape=shape: _check_rle(image_id, runs, shape)) is None:
            continue
        items.append({"image_id": image_id, "label": int(bool(runs)), "rle": "\n".join(runs)})
    if split != "all":
        groups = split_by_key(items, "image_id", ratios, SIIM_SPLITS, split_seed)
        report.filter("other splits", len(items) - len(groups[split]))
        items = groups[split]
    if split == "train" and balance_train:
        negatives = [item for item in items if not item["label"]]
        n_positive = len(items) - len(negatives)
        drop = {id(negatives[i]) for i in np.random.default_rng(seed).permutation(len(negatives))[n_positive:]}
        report.filter("negatives beyond the number of positives", len(drop))
        items = [item for item in items if id(item) not in drop]
    if fraction < 1:
        kept = sample_fraction(items, fraction, seed, stratify_key="label")
        report.filter(f"fraction {fraction}", len(items) - len(kept))
        items = kept

    manifest = []
    for item in items:
        path = files.get(item["image_id"])
        if path is None:
            policy.missing("image file", root / images_subdir / f"**/{item['image_id']}.dcm", ImageReadError)
            continue
        manifest.append({"image": str(path), **item})
    return Manifest(manifest, report)
