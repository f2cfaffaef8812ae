"""Real lesion geometry from the annotation files that the ``torchxrayvision`` package ships (opt-in).

``torchxrayvision/data/`` holds the SIIM-ACR pneumothorax RLE masks
(``siim-pneumothorax-train-rle.csv.gz``) and the RSNA pneumonia boxes
(``kaggle_stage_2_train_labels.csv.zip``), both on 1024 x 1024 images. They are read in place from
the installed package (never copied) and only when a caller asks for real shapes, so default output
is the same with or without ``torchxrayvision``.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import zipfile
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from monai_mlip.data.masks import rle_decode
from monai_mlip.errors import MLIPError

__all__ = ["RealShapes", "real_shapes"]

SOURCE_SIZE = 1024
SIIM_FILE = "siim-pneumothorax-train-rle.csv.gz"
RSNA_FILE = "kaggle_stage_2_train_labels.csv.zip"


def _data_dir() -> Path:
    """``torchxrayvision/data`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise MLIPError("real lesion shapes need the torchxrayvision package (pip install torchxrayvision)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _resample(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resampling of a square mask to ``size x size``."""
    index = ((np.arange(size) + 0.5) * (mask.shape[0] / size)).astype(np.int64)
    return mask[np.ix_(index, index)]


class RealShapes:
    """Positive SIIM pneumothorax masks and RSNA pneumonia boxes, sorted by their image id.

    Args:
        data_dir: the folder holding the two annotation files.
    """

    def __init__(self, data_dir: Path) -> None:
        rles: dict[str, list[str]] = defaultdict(list)
        with gzip.open(data_dir / SIIM_FILE, "rt", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for image_id, encoded in reader:
                if encoded.strip() not in ("", "-1"):
                    rles[image_id.strip()].append(encoded.strip())
        self.pneumothorax_rles = [rles[key] for key in sorted(rles)]
        boxes: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
        with zipfile.ZipFile(data_dir / RSNA_FILE) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".csv"))
            reader = csv.DictReader(io.TextIOWrapper(archive.open(name), encoding="utf-8"))
            for row in reader:
                if row["Target"].strip() == "1":
                    boxes[row["patientId"]].append(tuple(float(row[k]) for k in ("x", "y", "width", "height")))
        self.pneumonia_boxes = [np.asarray(boxes[key], np.float32) for key in sorted(boxes)]

    def pneumothorax(self, rng: np.random.Generator, size: int) -> list[np.ndarray]:
        """The regions of one random positive SIIM image: a list of uint8 ``[S, S]`` masks (one per RLE row)."""
        rows = self.pneumothorax_rles[int(rng.integers(len(self.pneumothorax_rles)))]
        masks = [_resample(rle_decode(rle, (SOURCE_SIZE, SOURCE_SIZE)), size) for rle in rows]
        return [m for m in masks if m.any()]

    def pneumonia(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """The boxes of one random positive RSNA patient, float32 ``[K, 4]`` ``(x, y, w, h)`` in ``size`` pixels."""
        boxes = self.pneumonia_boxes[int(rng.integers(len(self.pneumonia_boxes)))]
        return boxes * np.float32(size / SOURCE_SIZE)


@lru_cache(maxsize=1)
def real_shapes() -> RealShapes:
    """The shared :class:`RealShapes` (loaded once per process).

    Raises:
        MLIPError: ``torchxrayvision`` is not installed or lacks the annotation files.
    """
    data_dir = _data_dir()
    missing = [name for name in (SIIM_FILE, RSNA_FILE) if not (data_dir / name).is_file()]
    if missing:
        raise MLIPError(f"the installed torchxrayvision has no {', '.join(missing)} under {data_dir}")
    return RealShapes(data_dir)
