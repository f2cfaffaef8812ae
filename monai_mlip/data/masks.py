"""Lesion masks from the datasets' native annotations: SIIM run-length encodings and RSNA boxes.

SIIM-ACR pneumothorax masks are *relative* run-length encodings over the column-major flattened
image: pairs ``(offset, length)`` where each offset counts from the end of the previous run; an empty
mask is ``-1``. RSNA pneumonia boxes are ``(x, y, width, height)`` in pixels with ``(x, y)`` the top
left corner.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_mlip.errors import BoxError, RLEError

__all__ = ["BoxesToMaskd", "RLEToMaskd", "box_array", "boxes_to_mask", "rle_decode", "rle_encode"]


def _parse_runs(rle: str, item: object) -> list[int]:
    try:
        return [int(value) for value in str(rle).split()]
    except ValueError as err:
        raise RLEError(item, f"RLE holds a value that is not an integer ({err})") from err


def rle_decode(rle: str, shape: tuple[int, int] = (1024, 1024), item: object = "<rle>") -> np.ndarray:
    """Decode one SIIM relative RLE string.

    Args:
        rle: ``"offset length offset length ..."``; ``"-1"`` or blank for an empty mask. Surrounding
            whitespace (the CSV's leading spaces) is ignored.
        shape: ``(H, W)`` of the image.
        item: what to name in errors (the ImageId).

    Returns:
        uint8 ``[H, W]`` mask of 0 and 1.

    Raises:
        RLEError: an odd number of values, a negative value, or a run past the end of the image.
    """
    height, width = int(shape[0]), int(shape[1])
    flat = np.zeros(height * width, dtype=np.uint8)
    text = str(rle).strip()
    if text in ("", "-1"):
        return flat.reshape(width, height).T.copy()
    runs = _parse_runs(text, item)
    if len(runs) % 2:
        raise RLEError(item, f"RLE has an odd number of values ({len(runs)})")
    position = 0
    for pair, (offset, length) in enumerate(zip(runs[0::2], runs[1::2], strict=True)):
        if offset < 0 or length <= 0:
            raise RLEError(item, f"run {pair} has offset {offset} and length {length}; both must be positive")
        position += offset
        if position + length > flat.size:
            raise RLEError(item, f"run {pair} ends at pixel {position + length}, past the {height}x{width} image")
        flat[position : position + length] = 1
        position += length
    return flat.reshape(width, height).T.copy()


def rle_encode(mask: np.ndarray) -> str:
    """Encode a ``[H, W]`` binary mask as a SIIM relative RLE string (``"-1"`` when empty)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a [H, W] mask, got shape {mask.shape}")
    padded = np.zeros(mask.size + 2, dtype=bool)
    padded[1:-1] = mask.T.reshape(-1) > 0
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    if changes.size == 0:
        return "-1"
    starts, ends = changes[0::2], changes[1::2]
    previous_ends = np.concatenate([[0], ends[:-1]])
    pairs = np.stack([starts - previous_ends, ends - starts], axis=1).reshape(-1)
    return " ".join(str(int(v)) for v in pairs)


def rle_union(rles: Iterable[str], shape: tuple[int, int] = (1024, 1024), item: object = "<rle>") -> np.ndarray:
    """Union of several RLE rows of one image (SIIM lists one row per pneumothorax)."""
    mask = np.zeros(tuple(shape), dtype=np.uint8)
    for rle in rles:
        mask |= rle_decode(rle, shape, item)
    return mask


def boxes_to_mask(
    boxes: Sequence[Sequence[float]] | np.ndarray, shape: tuple[int, int], item: object = "<boxes>"
) -> np.ndarray:
    """Fill boxes into a mask.

    Args:
        boxes: ``[K, 4]`` boxes ``(x, y, width, height)`` in pixels (``K`` may be 0).
        shape: ``(H, W)`` of the image.
        item: what to name in errors (the patient id).

    Returns:
        uint8 ``[H, W]`` mask, 1 inside any box. Fractional edges are rounded outwards.

    Raises:
        BoxError: a box with a negative corner, a non-positive size, a non-finite value or an edge past the image.
    """
    height, width = int(shape[0]), int(shape[1])
    mask = np.zeros((height, width), dtype=np.uint8)
    array = box_array(boxes, item)
    # edges past the image by a rounding error (112.00000000000001 + 112.00000000000001 > 224 after rescaling)
    # are clipped; anything further is an error
    tolerance = 1e-6 * max(height, width)
    for number, (x, y, w, h) in enumerate(array):
        if not np.isfinite([x, y, w, h]).all():
            raise BoxError(item, f"box {number} has a non-finite value: {[x, y, w, h]}")
        if x < -tolerance or y < -tolerance:
            raise BoxError(item, f"box {number} has a negative corner ({x}, {y})")
        if w <= 0 or h <= 0:
            raise BoxError(item, f"box {number} has a non-positive size {w} x {h}")
        if x + w > width + tolerance or y + h > height + tolerance:
            raise BoxError(item, f"box {number} ({x}, {y}, {w}, {h}) extends past the {height}x{width} image")
        top, left = max(int(np.floor(y)), 0), max(int(np.floor(x)), 0)
        mask[top : min(int(np.ceil(y + h)), height), left : min(int(np.ceil(x + w)), width)] = 1
    return mask


def box_array(boxes: Any, item: object = "<boxes>") -> np.ndarray:
    """``boxes`` as a float64 ``[K, 4]`` array, or a :class:`~monai_mlip.errors.BoxError` naming ``item``
    when they are not numbers in groups of four."""
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BoxError(item, f"boxes must be numbers (x, y, width, height), got {boxes!r}") from err
    if array.size == 0:
        return np.zeros((0, 4))
    if array.shape[-1] != 4 or array.ndim > 2:
        raise BoxError(item, f"boxes must have 4 values each (x, y, width, height), got shape {array.shape}")
    return array.reshape(-1, 4)


def _mask_like(image: Any, mask: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(mask)[None]
    if isinstance(image, MetaTensor):
        return MetaTensor(tensor, meta=dict(image.meta))  # the meta carries the affine
    return tensor


def _image_shape(d: Mapping[Hashable, Any], image_key: str) -> tuple[int, int]:
    return tuple(int(s) for s in d[image_key].shape[-2:])  # type: ignore[return-value]


class RLEToMaskd(MapTransform):
    """Decode SIIM RLE rows into a ``[1, H, W]`` uint8 mask of the loaded image's size.

    Args:
        keys: key holding the item's RLE rows (one per lesion, unioned): a list of strings, or one string
            with a row per line as :func:`~monai_mlip.data.build_siim_manifest` writes it.
        image_key: the loaded image whose ``[1, H, W]`` shape the mask takes.
        mask_key: where to put the mask.
        id_key: key naming the item in errors.
        allow_missing_keys: skip items without the key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        mask_key: str = "mask",
        id_key: str = "image_id",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.mask_key, self.id_key = image_key, mask_key, id_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            rles = d[key].split("\n") if isinstance(d[key], str) else list(d[key])
            mask = rle_union(rles, _image_shape(d, self.image_key), d.get(self.id_key, key))
            d[self.mask_key] = _mask_like(d[self.image_key], mask)
            del d[key]
        return d


class BoxesToMaskd(MapTransform):
    """Fill ``(x, y, width, height)`` boxes into a ``[1, H, W]`` uint8 mask of the loaded image's size.

    Args:
        keys: key holding the item's ``[K, 4]`` boxes.
        image_key: the loaded image whose ``[1, H, W]`` shape the mask takes.
        mask_key: where to put the mask.
        id_key: key naming the item in errors.
        source_size_key: key of the ``(H, W)`` the boxes were drawn on, when that differs from the loaded
            image (MS-CXR boxes are in DICOM pixels; a resized JPG needs them scaled). ``None``: the same.
        allow_missing_keys: skip items without the key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        mask_key: str = "mask",
        id_key: str = "patient_id",
        source_size_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.mask_key, self.id_key = image_key, mask_key, id_key
        self.source_size_key = source_size_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        shape = _image_shape(d, self.image_key)
        for key in self.key_iterator(d):
            boxes = box_array(d[key], d.get(self.id_key, key))
            if self.source_size_key is not None:
                source = [float(v) for v in d[self.source_size_key]]
                boxes = boxes * np.array([shape[1] / source[1], shape[0] / source[0]] * 2)
            mask = boxes_to_mask(boxes, shape, d.get(self.id_key, key))
            d[self.mask_key] = _mask_like(d[self.image_key], mask)
            del d[key]
        return d
