"""MIMIC-CXR-JPG at its real image size and any number of studies, for testing the real-size path here.

:func:`write_real_size_mimic` renders a small pool of synthetic studies (:func:`write_mimic`), enlarges
each frontal image to MIMIC-CXR-JPG's typical 2,544 x 3,056 pixels (bicubic, plus two grey levels of film
noise, JPEG quality 95: files of 1.5-2 MB like the real ones), and writes the native layout for
``studies`` studies whose images and reports are hard links to the pool's files (a copy where the file
system has no hard links), with the pool's MS-CXR boxes scaled to the new size for every study that links
a pool study with boxes. A 240,000-study layout thus costs the pool's disk plus its directories, and
every file a reader opens is a real-size JPG.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from monai_mlip.data.manifests.common import read_csv_rows
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.synthetic.identifiers import mimic_dicom_id
from monai_mlip.synthetic.layouts.common import write_csv
from monai_mlip.synthetic.layouts.mimic import (
    METADATA_COLUMNS,
    MIMIC_PREFIX,
    MS_CXR_COLUMNS,
    MS_CXR_FILE,
    mimic_subjects,
    write_mimic,
)

__all__ = ["REAL_SIZE", "write_real_size_mimic"]

REAL_SIZE = (2544, 3056)  # rows x columns of a typical MIMIC-CXR-JPG image


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # no hard links on this file system
        shutil.copyfile(source, target)


def _enlarge(source: Path, target: Path, size: tuple[int, int], rng: np.random.Generator) -> None:
    with Image.open(source) as image:
        large = np.asarray(image.convert("L").resize((size[1], size[0]), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = np.clip(large + rng.normal(0.0, 2.0, large.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(target, quality=95)


def write_real_size_mimic(
    out_dir: str | os.PathLike, studies: int, pool: int = 16, seed: int = 0, size: tuple[int, int] = REAL_SIZE
) -> Path:
    """Write a MIMIC-CXR-JPG layout of ``studies`` one-image studies at ``size`` (see the module docstring).

    Args:
        out_dir: the dataset root (created); the pool goes in its ``_pool`` folder.
        studies: studies in the layout's index (any number).
        pool: distinct rendered studies the layout's files link to.
        seed: run seed.
        size: ``(rows, columns)`` of the images.

    Returns:
        ``out_dir``, ready for :func:`~monai_mlip.data.build_mimic_cxr_manifest` and
        :func:`~monai_mlip.prepare.prepare_mimic_cxr`.
    """
    root = Path(out_dir)
    pool_dir = root / "_pool"
    write_mimic(pool_dir, pool, seed=seed, image_size=256, lateral_fraction=0.0)
    views = {r["dicom_id"]: r["ViewPosition"] for r in read_csv_rows(pool_dir / f"{MIMIC_PREFIX}-metadata.csv.gz")}
    labels = {r["study_id"]: r for r in read_csv_rows(pool_dir / f"{MIMIC_PREFIX}-chexpert.csv.gz")}
    boxes: dict[str, list[dict[str, str]]] = {}
    for box in read_csv_rows(pool_dir / MS_CXR_FILE):
        boxes.setdefault(box["dicom_id"], []).append(box)
    rng = np.random.default_rng(seed)
    members = []
    for row in read_csv_rows(pool_dir / f"{MIMIC_PREFIX}-split.csv.gz"):
        folder = pool_dir / "files" / f"p{row['subject_id'][:2]}" / f"p{row['subject_id']}" / f"s{row['study_id']}"
        large = pool_dir / "large" / f"{row['dicom_id']}.jpg"
        large.parent.mkdir(exist_ok=True)
        if not large.is_file():
            _enlarge(folder / f"{row['dicom_id']}.jpg", large, size, rng)
        report = folder.with_name(f"{folder.name}.txt")
        members.append((large, report, views[row["dicom_id"]], labels[row["study_id"]], boxes.get(row["dicom_id"], [])))
    ids = np.random.default_rng([seed, len(members)])
    split_rows, metadata_rows, label_rows, grounding_rows = [], [], [], []
    for number, (subject, study, split) in enumerate(mimic_subjects(ids, studies, (0.8, 0.1, 0.1))):
        image, report, view, label, pool_boxes = members[number % len(members)]
        dicom = mimic_dicom_id(ids)
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        _link(image, folder / f"{dicom}.jpg")
        _link(report, folder.with_name(f"{folder.name}.txt"))
        path = (folder / f"{dicom}.dcm").relative_to(root).as_posix()  # MS-CXR lists the DICOM paths
        grounding_rows.extend(_scaled_box(box, dicom, path, split, size) for box in pool_boxes)
        split_rows.append((dicom, study, subject, split))
        metadata = {"dicom_id": dicom, "subject_id": subject, "study_id": study, "ViewPosition": view}
        metadata.update(Rows=size[0], Columns=size[1])
        metadata_rows.append(tuple(metadata.get(column, "") for column in METADATA_COLUMNS))
        label_rows.append((subject, study, *(label[column] for column in CHEXPERT_LABELS)))
    write_csv(root / f"{MIMIC_PREFIX}-split.csv.gz", ("dicom_id", "study_id", "subject_id", "split"), split_rows, True)
    write_csv(root / f"{MIMIC_PREFIX}-metadata.csv.gz", METADATA_COLUMNS, metadata_rows, True)
    write_csv(root / f"{MIMIC_PREFIX}-chexpert.csv.gz", ("subject_id", "study_id", *CHEXPERT_LABELS), label_rows, True)
    write_csv(root / MS_CXR_FILE, MS_CXR_COLUMNS, grounding_rows)
    return root


def _scaled_box(box: dict[str, str], dicom: str, path: str, split: str, size: tuple[int, int]) -> tuple[object, ...]:
    """A pool MS-CXR row for the linked study: its ids and path, the box in the enlarged image's pixels."""
    scale_x, scale_y = size[1] / float(box["image_width"]), size[0] / float(box["image_height"])
    x, y, w, h = (float(box[name]) for name in ("x", "y", "w", "h"))
    values = {**box, "dicom_id": dicom, "path": path, "split": split, "image_width": size[1], "image_height": size[0]}
    left, top = round(x * scale_x), round(y * scale_y)  # corners rounded, so the box stays inside the image
    values.update(x=left, y=top, w=round((x + w) * scale_x) - left, h=round((y + h) * scale_y) - top)
    return tuple(values[column] for column in MS_CXR_COLUMNS)
