"""Frozen-encoder evaluation of a pre-trained image encoder: a linear probe and a light segmentation head.

The encoder is frozen, so each image is encoded once (:func:`encode_items`) and the probes train on the
stored features, which makes evaluating many checkpoints the same way cheap enough for a CPU:

- :func:`linear_probe_auc`: logistic regression on the standardised global features (MoCo v3's and MAE's
  protocol), test ROC AUC (MONAI's ``compute_roc_auc``). scikit-learn is not a dependency of the package;
  one linear layer fitted by L-BFGS on the mean logistic loss with an L2 penalty is the same model.
- :func:`segmentation_dice`: a 1 x 1 convolution on the patch-feature grid, upsampled to the mask
  (the lightest decoder a frozen encoder can have), its bias starting at the logit of 0.01 as the
  segmentation bundles' output layer does, trained with MONAI's ``DiceFocalLoss``; test Dice by
  MONAI's ``DiceMetric`` on the prediction thresholded at 0.5 (an empty prediction on an empty mask scores 1,
  as in the segmentation bundles).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from monai.losses import DiceFocalLoss
from monai.metrics import DiceMetric, compute_roc_auc
from monai.transforms import Compose
from torch import nn
from torch.nn import functional as F

from monai_mlip.data import LoadCXRd, cxr_transforms
from monai_mlip.networks.vision import VisionTower

__all__ = ["EncodedItems", "encode_items", "linear_probe_auc", "segmentation_dice"]


class EncodedItems(NamedTuple):
    """What a frozen encoder makes of a list of items.

    Attributes:
        features: ``[N, E]`` global features.
        patches: ``[N, E, rows, cols]`` patch features on the patch grid.
        labels: ``[N]`` image labels (0/1).
        masks: ``[N, 1, H, W]`` 0/1 masks, or ``None`` without a mask transform.
    """

    features: torch.Tensor
    patches: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None


@torch.no_grad()
def encode_items(
    encoder: VisionTower,
    items: Sequence[dict[str, Any]],
    mask_transform: Callable[[], Any] | None = None,
    batch_size: int = 32,
) -> EncodedItems:
    """Load, preprocess (as the downstream bundles' validation does) and encode ``items`` (dicts with ``image``
    and ``label``, plus what ``mask_transform`` reads)."""
    mean, std = encoder.normalization
    steps = [LoadCXRd("image")]
    if mask_transform is not None:
        steps.append(mask_transform())
    mask_keys = "label" if mask_transform is not None else ()  # the mask transforms put the mask under "label"
    steps.append(cxr_transforms("image", mask_keys=mask_keys, image_size=encoder.image_size, mean=mean, std=std))
    pipeline = Compose(steps).flatten()
    encoder.eval()
    features, patches, masks = [], [], []
    rows, cols = encoder.grid_size
    for start in range(0, len(items), batch_size):
        loaded = [pipeline(dict(item)) for item in items[start : start + batch_size]]
        images = torch.stack([torch.as_tensor(item["image"]) for item in loaded]).float()
        output = encoder(images)
        features.append(output.global_features)
        patches.append(output.patch_features.transpose(1, 2).reshape(len(loaded), -1, rows, cols))
        if mask_transform is not None:
            masks.append(torch.stack([torch.as_tensor(item["label"]) for item in loaded]).float())
    labels = torch.tensor([int(item["label"]) for item in items])  # the image labels, before the masks
    return EncodedItems(torch.cat(features), torch.cat(patches), labels, torch.cat(masks) if masks else None)


def linear_probe_auc(train: EncodedItems, test: EncodedItems, l2: float = 1e-3, max_iter: int = 200) -> float:
    """Test ROC AUC of logistic regression on the standardised global features of ``train``."""
    mean, std = train.features.mean(0), train.features.std(0).clamp_min(1e-6)
    x_train, x_test = (train.features - mean) / std, (test.features - mean) / std
    y_train = train.labels.float()
    head = nn.Linear(x_train.shape[1], 1)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(head(x_train)[:, 0], y_train) + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        scores = torch.sigmoid(head(x_test)[:, 0])
    return float(compute_roc_auc(scores, test.labels))


def segmentation_dice(
    train: EncodedItems, test: EncodedItems, steps: int = 300, lr: float = 1e-2, seed: int = 0
) -> float:
    """Mean test Dice of a 1 x 1 convolution on the frozen patch features, trained on ``train``'s masks."""
    if train.masks is None or test.masks is None:
        raise ValueError("segmentation_dice needs items encoded with a mask transform")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Conv2d(train.patches.shape[1], 1, kernel_size=1)
    with torch.no_grad():  # start from near-empty masks, as the segmentation bundles' UNETR does (focal prior)
        head.bias.fill_(math.log(0.01 / 0.99))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    loss_function = DiceFocalLoss(sigmoid=True, batch=True)
    size = train.masks.shape[-2:]
    for _ in range(steps):
        batch = torch.randint(len(train.patches), (min(16, len(train.patches)),), generator=generator)
        logits = F.interpolate(head(train.patches[batch]), size=size, mode="bilinear", align_corners=False)
        optimizer.zero_grad()
        loss_function(logits, train.masks[batch]).backward()
        optimizer.step()
    with torch.no_grad():
        logits = F.interpolate(head(test.patches), size=test.masks.shape[-2:], mode="bilinear", align_corners=False)
        prediction = (torch.sigmoid(logits) > 0.5).float()
    metric = DiceMetric(include_background=True, ignore_empty=False, reduction="mean")
    return float(metric(prediction, test.masks).mean())
