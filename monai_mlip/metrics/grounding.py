"""Scores of phrase heatmaps (:class:`~monai_mlip.inferers.GroundingInferer`) against ground-truth boxes.

Scores, on the heatmap upsampled (bilinear) to the image:

- pointing game: whether the hottest pixel lies inside a ground-truth box;
- IoU: the region at or above ``threshold`` of the min-max-normalised map against the boxes' union.

A random map (uniform noise on the patch grid, upsampled the same way) gives the chance baseline. When
the phrase is its report's only sentence nothing competes: the plan column is the patch marginal itself,
a flat map (:func:`flat_maps`) that the scores leave out and count apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

__all__ = ["flat_maps", "heatmap_iou", "pointing_game", "random_map_scores"]


def flat_maps(maps: torch.Tensor, rtol: float = 1e-4) -> torch.Tensor:
    """``[B, rows, cols]`` maps -> ``[B]`` bool, true where a map is constant to ``rtol`` of its largest value."""
    flat = maps.flatten(1).float()
    spread = flat.max(dim=1).values - flat.min(dim=1).values
    return spread <= rtol * flat.abs().max(dim=1).values.clamp_min(torch.finfo(flat.dtype).tiny)


def _upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def pointing_game(maps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B, rows, cols]`` maps and ``[B, H, W]`` boolean targets -> ``[B]`` bool hits."""
    upsampled = _upsample(maps, targets.shape[-2:]).flatten(1)
    hottest = upsampled.argmax(dim=1)
    return targets.flatten(1).bool().gather(1, hottest[:, None])[:, 0]


def heatmap_iou(maps: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``[B, rows, cols]`` maps and ``[B, H, W]`` boolean targets -> ``[B]`` IoU of the thresholded maps."""
    upsampled = _upsample(maps, targets.shape[-2:]).flatten(1)
    low, high = upsampled.min(dim=1, keepdim=True).values, upsampled.max(dim=1, keepdim=True).values
    region = (upsampled - low) >= threshold * (high - low).clamp_min(1e-12)
    truth = targets.flatten(1).bool()
    union = (region | truth).sum(dim=1).clamp_min(1)
    return (region & truth).sum(dim=1) / union


def random_map_scores(
    targets: torch.Tensor, grid: tuple[int, int], draws: int = 20, threshold: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointing-game hit rate and IoU of uniform random maps: ``[B]`` each, averaged over ``draws`` maps."""
    generator = torch.Generator().manual_seed(seed)
    hits = torch.zeros(len(targets))
    ious = torch.zeros(len(targets))
    for _ in range(draws):
        maps = torch.rand(len(targets), *grid, generator=generator).to(targets.device)
        hits += pointing_game(maps, targets).float().cpu()
        ious += heatmap_iou(maps, targets, threshold).cpu()
    return hits / draws, ious / draws
