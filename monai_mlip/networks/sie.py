"""Semantic integrity estimation (SIE), reconstructed from MaCo.

A masked image keeps only part of its meaning. SIE scores how much survives a given mask with one
linear map ``phi`` over the binary visible-patch vector ``m`` (``P`` entries, 1 = visible):
``w = softplus(phi . m + b)``. ``phi`` starts at zero and ``b = log(e - 1)``, so ``w = 1`` for every mask at
initialisation (MaCo starts at ``softplus(0) = log 2``; 1 makes the weighted losses equal the plain
ones at the start). The loss scales the sample's contrastive logits by ``w`` and weights its terms by
``w.detach()`` (:mod:`monai_mlip.losses`), so ``phi`` learns which patches matter; :meth:`phi_map`
returns it on the patch grid for display.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SemanticIntegrityEstimator"]


class SemanticIntegrityEstimator(nn.Module):
    """``w = softplus(phi . m + b)`` over the visible-patch vector ``m``.

    Args:
        grid_size: patch grid ``(rows, columns)``; ``P = rows * columns``.
        init_weight: the value ``w`` takes for every mask at initialisation.
    """

    def __init__(self, grid_size: tuple[int, int], init_weight: float = 1.0) -> None:
        super().__init__()
        if init_weight <= 0:
            raise ValueError(f"init_weight must be positive, got {init_weight}")
        self.grid_size = tuple(grid_size)
        self.phi = nn.Linear(self.grid_size[0] * self.grid_size[1], 1)
        nn.init.zeros_(self.phi.weight)
        nn.init.constant_(self.phi.bias, math.log(math.expm1(init_weight)))  # softplus^-1(init_weight)

    def forward(self, visible: torch.Tensor) -> torch.Tensor:
        """Integrity weights.

        Args:
            visible: ``[B, P]`` bool (or 0/1), ``True`` for visible patches.

        Returns:
            ``[B]`` positive weights ``w``.
        """
        return F.softplus(self.phi(visible.to(self.phi.weight.dtype))).squeeze(-1)

    def patch_scores(self, patch_index: torch.Tensor) -> torch.Tensor:
        """``phi`` of the given patches: ``[B, N]`` long grid indices -> ``[B, N]`` values."""
        return self.phi.weight[0][patch_index]

    def phi_map(self) -> torch.Tensor:
        """``phi`` as a ``[rows, columns]`` map (a detached copy), for display."""
        return self.phi.weight.detach().reshape(self.grid_size).clone()
