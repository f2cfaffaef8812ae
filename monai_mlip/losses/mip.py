"""Masked image prediction loss: mean squared error on the hidden patches only."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["masked_patch_loss"]


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between predicted and target pixels of the hidden patches (MAE with ``norm_pix_loss``).

    Args:
        pred: ``[B, M, K]`` predictions for the ``M`` hidden patches of each sample.
        target: ``[B, M, K]`` per-patch-normalised target pixels of the same patches.

    Returns:
        The mean over patches of the per-patch mean squared error; zero (still attached to ``pred``) when
        nothing was hidden.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.numel() == 0:
        return pred.sum()
    return F.mse_loss(pred.float(), target.float())
