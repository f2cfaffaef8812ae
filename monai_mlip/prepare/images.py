"""Resizing one radiograph for the prepared set: fast decoding, an atomic write, resumable by construction.

JPEGs are decoded at a reduced scale in the DCT domain (Pillow's ``draft``: a 1/2, 1/4 or 1/8 scale, the
smallest that is still at least the output size, so no detail below the output is lost), then resized
with area averaging (``BOX``, the ``area`` mode the training transforms use). Other formats (DICOM
through pydicom with pylibjpeg, PNG, NIfTI) go through :func:`~monai_mlip.data.read_cxr`, which applies
the DICOM LUTs and photometric inversion.

Output: a grey PNG whose longest side is ``longest_side`` (never enlarged), 8-bit for 8-bit sources and
16-bit for deeper ones, lossless; the original ``H W`` is kept in its ``original_size`` text chunk. The
file is written under a temporary name beside its target and renamed when complete, so a file at the
target path is always whole: a killed run leaves at most a temporary file, which the next attempt of the
same image overwrites.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from monai_mlip.data import read_cxr
from monai_mlip.errors import ImageReadError

__all__ = ["ORIGINAL_SIZE_KEY", "prepare_image", "prepared_sizes", "resize_job", "resize_mask"]

ORIGINAL_SIZE_KEY = "original_size"
_JPEG_SUFFIXES = (".jpg", ".jpeg")


def _target_size(height: int, width: int, longest_side: int) -> tuple[int, int]:
    scale = min(1.0, longest_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _from_jpeg(source: Path, longest_side: int) -> tuple[Image.Image, tuple[int, int]]:
    with Image.open(source) as image:
        original = (image.height, image.width)
        height, width = _target_size(*original, longest_side)
        image.draft("L", (width, height))  # DCT-domain scaling, never below the requested size
        grey = image.convert("L") if image.mode != "L" else image.copy()
    return grey.resize((width, height), Image.Resampling.BOX) if grey.size != (width, height) else grey, original


def _from_reader(source: Path, longest_side: int) -> tuple[Image.Image, tuple[int, int]]:
    pixels, meta = read_cxr(source)
    original = tuple(int(s) for s in pixels.shape)
    height, width = _target_size(*original, longest_side)
    resized = Image.fromarray(pixels.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BOX)
    values = np.clip(np.asarray(resized), 0.0, 1.0)
    if int(meta.get("bits_stored") or 8) <= 8:
        return Image.fromarray(np.round(values * 255).astype(np.uint8)), original
    return Image.fromarray(np.round(values * 65535).astype(np.uint16)), original


def prepare_image(
    source: str | os.PathLike, target: str | os.PathLike, longest_side: int = 512
) -> dict[str, list[int]]:
    """Write ``source`` resized to ``target`` (a ``.png``) unless a finished ``target`` exists.

    Returns:
        ``{"original_size": [H, W], "size": [h, w]}``, read back from an existing target (resuming) or
        from the image just written.

    Raises:
        ImageReadError: the source cannot be read (the message names it).
    """
    source, target = Path(source), Path(target)
    if target.is_file():
        try:
            return prepared_sizes(target)
        except ImageReadError:
            pass  # not one of ours (or damaged by something else): write it again
    try:
        if source.suffix.lower() in _JPEG_SUFFIXES:
            image, original = _from_jpeg(source, longest_side)
        else:
            image, original = _from_reader(source, longest_side)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(source, f"cannot decode ({type(err).__name__}: {err})") from err
    info = PngImagePlugin.PngInfo()
    info.add_text(ORIGINAL_SIZE_KEY, f"{original[0]} {original[1]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")  # one name per image: a rerun overwrites a stale one
    # zlib level 1: a fraction of level 6's time for slightly larger files (the write is a third of the step)
    image.save(partial, format="PNG", pnginfo=info, compress_level=1)
    os.replace(partial, target)
    return {"original_size": list(original), "size": [image.height, image.width]}


def prepared_sizes(path: str | os.PathLike) -> dict[str, list[int]]:
    """The original and the prepared ``[H, W]`` of a prepared image, from its header."""
    try:
        with Image.open(path) as image:
            text = image.text.get(ORIGINAL_SIZE_KEY) if hasattr(image, "text") else None
            size = [image.height, image.width]
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(path, f"unreadable prepared image ({type(err).__name__}: {err})") from err
    try:
        original = [int(v) for v in text.split()]
    except (AttributeError, ValueError) as err:
        raise ImageReadError(path, f"no {ORIGINAL_SIZE_KEY!r} in the PNG: not written by the preparation") from err
    if len(original) != 2 or math.prod(original) <= 0:
        raise ImageReadError(path, f"bad {ORIGINAL_SIZE_KEY!r} {text!r}")
    return {"original_size": original, "size": size}


def resize_job(job: tuple[str | os.PathLike, str | os.PathLike, int]) -> dict[str, list[int]]:
    """:func:`prepare_image` of one ``(source, target, longest_side)`` job (a worker for
    :func:`~monai_mlip.prepare.common.run_jobs`)."""
    return prepare_image(*job)


def resize_mask(mask: np.ndarray, size: tuple[int, int] | list[int]) -> np.ndarray:
    """Resize a binary ``[H, W]`` mask to ``size`` ``(h, w)`` as the images are resized (area averaging).

    A prepared pixel is in the mask when at least half of its area was; a mask that would vanish that way
    (a lesion smaller than the new pixels) keeps every pixel it touches instead, so a positive image
    never becomes an empty mask.

    Returns:
        uint8 ``[h, w]`` of 0 and 1.
    """
    height, width = int(size[0]), int(size[1])
    area = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.float32)).resize((width, height), Image.Resampling.BOX))
    resized = area >= 0.5
    if not resized.any() and np.any(mask):
        resized = area > 0
    return resized.astype(np.uint8)
