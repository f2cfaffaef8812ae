"""CXR preprocessing: longest-side resize, pad to square, crop, normalise; masks follow the image."""

from __future__ import annotations

import torch
from monai.data import MetaTensor

from monai_mlip.data import CXR_MEAN, CXR_STD, cxr_transforms


def _item(height: int = 120, width: int = 80) -> dict:
    image = torch.zeros(1, height, width)
    image[:, :, : width // 2] = 1.0  # left half bright
    mask = torch.zeros(1, height, width, dtype=torch.uint8)
    mask[:, 10:30, 5:25] = 1
    return {"image": MetaTensor(image), "mask": MetaTensor(mask)}


def test_eval_transforms_resize_longest_side_and_pad():
    out = cxr_transforms("image", "mask", image_size=60)(_item())
    assert tuple(out["image"].shape) == (1, 60, 60) and out["image"].dtype == torch.float32
    # 120x80 -> 60x40, padded by 10 columns each side: padding is 0 before normalisation
    padded = (0 - CXR_MEAN) / CXR_STD
    assert torch.allclose(out["image"][0, :, :10], torch.tensor(padded))
    assert torch.allclose(out["image"][0, :, 12:28], torch.tensor((1 - CXR_MEAN) / CXR_STD))
    assert set(out["mask"].unique().tolist()) == {0.0, 1.0}  # nearest: still binary
    assert out["mask"].sum() == 10 * 10  # 20x20 box halved


def test_train_transforms_are_random_and_seedable():
    transform = cxr_transforms("image", "mask", image_size=56, train=True, affine_prob=1.0)
    assert tuple(transform(_item())["image"].shape) == (1, 56, 56)
    transform.set_random_state(seed=3)
    first = transform(_item())
    transform.set_random_state(seed=3)
    second = transform(_item())
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["mask"], second["mask"])
    transform.set_random_state(seed=4)
    assert not torch.equal(transform(_item())["image"], first["image"])
    assert set(first["mask"].unique().tolist()) <= {0.0, 1.0}
