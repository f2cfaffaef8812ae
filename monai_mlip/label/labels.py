"""What a MONAI Label datastore label file means to a downstream bundle.

A datastore keeps one ``final`` label file per image (``labels/final/<image id>.<ext>``, put there by a viewer
or by ``PUT /datastore/label``). The app reads it two ways:

- **a label image** (PNG, NIfTI, ...; the masks a viewer saves and the segmentation model predicts): a
  segmentation bundle trains on it as the mask; for a classification bundle the image is positive when
  any pixel is non-zero, negative when the mask is empty;
- **a JSON file** ``{"label": 1}`` (finding present) or ``{"label": 0}`` (absent): an image-level label
  for the classification bundles only; segmentation training leaves such images out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from monai_mlip.errors import LabelFileError
from monai_mlip.label.masks import read_mask

__all__ = ["class_datalist", "is_class_file", "mask_datalist", "read_image_label"]


def is_class_file(path: str | os.PathLike) -> bool:
    """Whether a label file is an image-level (JSON) label rather than a label image."""
    return str(path).lower().endswith(".json")


def read_image_label(path: str | os.PathLike) -> int:
    """The image-level class, 0 or 1, of a datastore label file (see the module docstring).

    Raises:
        LabelFileError: a JSON label is not ``{"label": 0|1}`` (``true``/``false`` are accepted).
        ImageReadError: a label image is unreadable.
    """
    if not is_class_file(path):
        return int(read_mask(path).any())
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise LabelFileError(path, f"unreadable JSON label ({type(err).__name__}: {err})") from err
    value = record.get("label") if isinstance(record, dict) else None
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return int(value)
    raise LabelFileError(path, f'an image-level label is {{"label": 0}} or {{"label": 1}}, got {record!r}')


def class_datalist(datalist: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"image": path, "label": label file}]`` -> ``[{"image": path, "label": 0|1}]`` for classification."""
    return [{"image": item["image"], "label": read_image_label(item["label"])} for item in datalist]


def mask_datalist(datalist: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items whose label is a label image (JSON image-level labels left out), for segmentation."""
    return [{"image": item["image"], "label": item["label"]} for item in datalist if not is_class_file(item["label"])]
