"""Sentence-to-region grounding from the patch-sentence OT plans: a MONAI inferer that returns phrase heatmaps.

A phrase is grounded in its image through the OT plan between the image's patches and the report's
sentences, with the phrase as sentence 0 (:func:`~monai_mlip.data.grounding_sentences`): column 0 of the
plan, normalised to sum to one, is the phrase's heatmap over the patch grid. The other sentences of the
report compete for the patches, which is what makes the map selective.

The scores of the maps against boxes are in :mod:`monai_mlip.metrics.grounding`.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

from monai_mlip.losses import patch_sentence_plans
from monai_mlip.networks.mlip import unwrap

__all__ = ["GroundingInferer", "phrase_heatmaps"]


def phrase_heatmaps(plans: torch.Tensor, grid: tuple[int, int], sentence: int = 0) -> torch.Tensor:
    """``[B, P, S]`` plans (``P = rows * cols``, row-major) -> ``[B, rows, cols]`` maps of a sentence, summing to 1."""
    column = plans[..., sentence].float()
    column = column / column.sum(dim=1, keepdim=True).clamp_min(torch.finfo(column.dtype).tiny)
    return column.reshape(-1, *grid)


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
