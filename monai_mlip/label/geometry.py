"""A prediction on the network's square input mapped back onto the original radiograph's pixel grid."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

__all__ = ["invert_to_image"]


def invert_to_image(
    data: Mapping[Hashable, Any],
    preprocessing: Sequence[Callable],
    pred_key: str = "pred",
    image_key: str = "image",
) -> dict[Hashable, Any]:
    """Undo the spatial preprocessing of ``image_key`` on ``pred_key``.

    The preprocessing (:func:`~monai_mlip.data.cxr_transforms`: longest-side resize, pad to a square, crop)
    recorded its steps on the image; MONAI's ``Invertd`` replays them backwards on the prediction (crop the
    padding away, resize to the original size), so a ``[C, S, S]`` prediction becomes ``[C, H, W]`` aligned
    with the file the image was read from.

    Args:
        data: the item after inference, holding the preprocessed image and the prediction.
        preprocessing: the very transform objects that preprocessed the image (MONAI matches them by identity).
        pred_key: the prediction.
        image_key: the preprocessed image.
    """
    d = dict(data)
    if not isinstance(d[pred_key], MetaTensor):  # Invertd takes the image's recorded steps for a MetaTensor only
        d[pred_key] = MetaTensor(d[pred_key])
    invert = Invertd(keys=pred_key, transform=Compose(list(preprocessing)), orig_keys=image_key, nearest_interp=False)
    return invert(d)
