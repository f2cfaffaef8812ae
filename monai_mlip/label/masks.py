"""2D label images in and out: a mask file read on the same pixel grid as its radiograph, and written back.

Masks are read with the radiograph reader (:func:`~monai_mlip.data.read_cxr`), so a PNG, TIFF, DICOM or
NIfTI mask is rows-first exactly like the image it belongs to; any non-zero pixel is foreground. Masks are
written as uint8 0/1 label images: PNG (rows first) or NIfTI (stored column-first with the pixel spacing,
as :func:`~monai_mlip.data.read_cxr` reads NIfTI back).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_mlip.data import read_cxr
from monai_mlip.errors import ImageReadError

__all__ = ["MASK_SUFFIXES", "LoadMaskd", "mask_extension", "read_mask", "write_mask"]

MASK_SUFFIXES = (".png", ".nii.gz", ".nii")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A label image as a uint8 ``[H, W]`` 0/1 mask (1 where the file has any non-zero value).

    Raises:
        ImageReadError: the file is missing, unreadable or not 2D.
    """
    pixels, _ = read_cxr(path)
    return (pixels > 0).astype(np.uint8)


class LoadMaskd(MapTransform):
    """Replace mask file paths with ``[1, H, W]`` uint8 0/1 masks on the loaded image's pixel grid.

    Args:
        keys: keys holding mask file paths.
        image_key: the loaded ``[1, H, W]`` image the mask belongs to (its size is checked, its meta copied).
        allow_missing_keys: skip items without the key.

    Raises:
        ImageReadError: a mask is unreadable or not the size of its image.
    """

    def __init__(self, keys: KeysCollection, image_key: str = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.image_key]
        for key in self.key_iterator(d):
            mask = read_mask(d[key])
            if mask.shape != tuple(image.shape[-2:]):
                size = f"{image.shape[-2]}x{image.shape[-1]}"
                raise ImageReadError(d[key], f"the mask is {mask.shape[0]}x{mask.shape[1]}, its image {size}")
            tensor = torch.from_numpy(mask)[None]
            d[key] = MetaTensor(tensor, meta=dict(image.meta)) if isinstance(image, MetaTensor) else tensor
        return d


def mask_extension(image_path: str | os.PathLike | None, requested: str | None = None) -> str:
    """The file extension of a predicted mask: ``requested`` when given, else NIfTI for a NIfTI image and PNG
    for everything else (DICOM, PNG, JPG).

    Raises:
        ValueError: ``requested`` is not one of :data:`MASK_SUFFIXES`.
    """
    if requested:
        if requested not in MASK_SUFFIXES:
            raise ValueError(f"a 2D mask is written as one of {MASK_SUFFIXES}, not {requested!r}")
        return requested
    name = str(image_path or "").lower()
    return ".nii.gz" if name.endswith((".nii", ".nii.gz")) else ".png"


def write_mask(
    mask: np.ndarray | torch.Tensor, path: str | os.PathLike, pixel_spacing: Sequence[float] | None = None
) -> str:
    """Write a ``[H, W]`` (or ``[1, H, W]``) mask as a uint8 0/1 label image.

    Args:
        mask: foreground where non-zero.
        path: ``.png``, ``.nii.gz`` or ``.nii``.
        pixel_spacing: ``(row, column)`` spacing in mm for NIfTI (``None`` or non-finite values: 1 mm).

    Returns:
        ``path`` as a string.
    """
    values = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    values = np.squeeze(values)
    if values.ndim != 2:
        raise ValueError(f"a 2D mask is expected, got shape {tuple(np.shape(mask))}")
    values = (values > 0).astype(np.uint8)
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".png"):
        from PIL import Image

        Image.fromarray(values).save(path)
    elif name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        spacing = [float(s) for s in pixel_spacing] if pixel_spacing is not None else [1.0, 1.0]
        row, column = (s if np.isfinite(s) and s > 0 else 1.0 for s in spacing)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(values.T), np.diag([column, row, 1.0, 1.0])), path)
    else:
        raise ValueError(f"{path}: a 2D mask is written as one of {MASK_SUFFIXES}")
    return str(path)
