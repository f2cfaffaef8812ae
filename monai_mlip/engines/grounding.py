"""Sentence-to-region grounding from the patch-sentence OT plans, and its scores against boxes.

A phrase is grounded in its image through the OT plan between the image's patches and the report's
sentences, with the phrase as sentence 0 (:func:`~monai_mlip.data.grounding_sentences`): column 0 of the
plan, normalised to sum to one, is the phrase's heatmap over the patch grid. The other sentences of the report compete
for the patches, which is what makes the map selective.

Scores, on the heatmap upsampled (bilinear) to the image:

- pointing game: whether the hottest pixel lies inside a ground-truth box;
- IoU: the region at or above ``threshold`` of the min-max-normalised map against the boxes' union.

A random map (uniform noise on the patch grid, upsampled the same way) gives the chance baseline. When
the phrase is its report's only sentence nothing competes: the plan column is the patch marginal itself,
a flat map (:func:`flat_maps`) that the scores leave out and count apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn
from torch.nn import functional as F

from monai_mlip.engines.zero_shot import unwrap
from monai_mlip.losses import patch_sentence_plans

__all__ = [
    "GroundingInferer",
    "flat_maps",
    "heatmap_iou",
    "phrase_heatmaps",
    "pointing_game",
    "random_map_scores",
]


def phrase_heatmaps(plans: torch.Tensor, grid: tuple[int, int], sentence: int = 0) -> torch.Tensor:
    """``[B, P, S]`` plans (``P = rows * cols``, row-major) -> ``[B, rows, cols]`` maps of a sentence, summing to 1."""
    column = plans[..., sentence].float()
    column = column / column.sum(dim=1, keepdim=True).clamp_min(torch.finfo(column.dtype).tiny)
    return column.reshape(-1, *grid)


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


class GroundingInferer(Inferer):
    """A MONAI inferer that returns phrase heatmaps from the paired patch-sentence OT plans.

    The network is an :class:`~monai_mlip.networks.MLIP` called on images and the tokenised grounding
    sentences (phrase first, :class:`~monai_mlip.data.GroundingSentencesd`) with no masking.

    Args:
        epsilon: entropic regularisation of the OT (as in training).
        max_iter: Sinkhorn iteration cap.
        sentence: the sentence whose column is the heatmap (0: the phrase).

    Returns (from ``__call__``):
        ``{"heatmap": [B, rows, cols], "plans": [B, P, S]}``.
    """

    def __init__(self, epsilon: float = 0.05, max_iter: int = 100, sentence: int = 0) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.max_iter = max_iter
        self.sentence = sentence

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        output = network(inputs, *args, mask_ratio=0.0, **kwargs)
        patches = output.patch_embeds
        plans = patch_sentence_plans(
            patches,
            torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device),
            output.sentence_embeds,
            output.sentence_mask,
            epsilon=self.epsilon,
            max_iter=self.max_iter,
        )
        grid = tuple(unwrap(network).vision.grid_size)
        return {"heatmap": phrase_heatmaps(plans, grid, self.sentence), "plans": plans}
