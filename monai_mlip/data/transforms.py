"""Chest X-ray preprocessing composed from MONAI dictionary transforms.

The recipe follows MGCA / MaCo: resize the longest side (area interpolation), pad to a square, crop
(random for training, centre for evaluation), then normalise. Training augmentation is MaCo's
``RandomAffine(20 deg, scale 0.8-1.2)`` plus optional horizontal flips. Flips are off by default for
image-report pre-training because they swap the laterality that report sentences ("left lower lobe")
describe; switch them on for image-only tasks.

Masks (``mask_keys``) follow every spatial step of the images with nearest-neighbour interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.transforms import (
    CenterSpatialCropd,
    Compose,
    EnsureTyped,
    NormalizeIntensityd,
    RandAffined,
    RandFlipd,
    RandSpatialCropd,
    Resized,
    SpatialPadd,
)

__all__ = ["CXR_MEAN", "CXR_STD", "cxr_transforms"]

# Mean and standard deviation of MIMIC-CXR-JPG images in [0, 1] (as used by MGCA, 0.5 / 0.5 rounds them).
CXR_MEAN = 0.5
CXR_STD = 0.25


def cxr_transforms(
    image_keys: str | Sequence[str] = "image",
    mask_keys: str | Sequence[str] = (),
    image_size: int = 224,
    resize_to: int | None = None,
    train: bool = False,
    rotate_degrees: float = 20.0,
    scale_range: float = 0.2,
    affine_prob: float = 0.5,
    flip_prob: float = 0.0,
    mean: float = CXR_MEAN,
    std: float = CXR_STD,
) -> Compose:
    """Spatial and intensity preprocessing for loaded ``[1, H, W]`` radiographs in ``[0, 1]``.

    Args:
        image_keys: keys of images (bilinear/area interpolation, normalised).
        mask_keys: keys of ``[1, H, W]`` masks that follow the images (nearest interpolation, not normalised).
        image_size: side of the square output.
        resize_to: longest side after resizing; defaults to ``image_size * 8 / 7`` (256 for 224) when
            ``train`` is true, else ``image_size`` (the centre crop then keeps the whole padded image).
        train: random crop and affine augmentation instead of a centre crop.
        rotate_degrees: the affine rotation range, +/- degrees.
        scale_range: the affine zoom range, +/- fraction.
        affine_prob: probability of the affine augmentation.
        flip_prob: probability of a left-right flip (keep 0 when text mentions laterality).
        mean: intensity mean subtracted from images.
        std: intensity divisor for images.

    Returns:
        A MONAI ``Compose`` mapping ``[1, H, W]`` to ``[1, image_size, image_size]`` float32 tensors.
    """
    image_keys = [image_keys] if isinstance(image_keys, str) else list(image_keys)
    mask_keys = [mask_keys] if isinstance(mask_keys, str) else list(mask_keys)
    keys = image_keys + mask_keys
    if resize_to is None:
        resize_to = math.ceil(image_size * 8 / 7) if train else image_size
    if resize_to < image_size:
        raise ValueError(f"resize_to ({resize_to}) must be at least image_size ({image_size})")
    modes = ["area"] * len(image_keys) + ["nearest"] * len(mask_keys)
    steps = [
        Resized(keys, spatial_size=resize_to, size_mode="longest", mode=modes),
        SpatialPadd(keys, spatial_size=(resize_to, resize_to), mode="constant"),
    ]
    if train:
        steps.append(RandSpatialCropd(keys, roi_size=(image_size, image_size), random_size=False))
        if affine_prob > 0:
            affine_modes = ["bilinear"] * len(image_keys) + ["nearest"] * len(mask_keys)
            steps.append(
                RandAffined(
                    keys,
                    prob=affine_prob,
                    rotate_range=math.radians(rotate_degrees),
                    scale_range=(scale_range, scale_range),
                    mode=affine_modes,
                    padding_mode="zeros",
                )
            )
        if flip_prob > 0:
            steps.append(RandFlipd(keys, prob=flip_prob, spatial_axis=1))
    else:
        steps.append(CenterSpatialCropd(keys, roi_size=(image_size, image_size)))
    steps.append(NormalizeIntensityd(image_keys, subtrahend=mean, divisor=std))
    steps.append(EnsureTyped(keys, dtype="float32", track_meta=True))
    return Compose(steps)
