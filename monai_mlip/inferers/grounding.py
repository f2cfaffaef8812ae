"""Sentence-to-region grounding: a MONAI inferer that returns phrase heatmaps, by OT plan or by attention.

A phrase is grounded in its image with the phrase as sentence 0 of its report
(:func:`~monai_mlip.data.grounding_sentences`). ``method="ot"`` (MLIP's map): column 0 of the OT plan
between the image's patches and the report's sentences, normalised to sum to one; the other sentences
compete for the patches, which is what makes the map selective. ``method="attention"`` (the map of the
recipes that learn patch attention instead of OT: ``mlip_kg``'s knowledge-guided patch attention,
``mmclip``'s report-to-patch attention): the softmax over the patches of the phrase's cosine similarity
with each patch at ``temperature``. Each recipe names its map (:attr:`~monai_mlip.losses.Recipe.grounding`).

The scores of the maps against boxes are in :mod:`monai_mlip.metrics.grounding`.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

from monai_mlip.losses import patch_sentence_plans
from monai_mlip.networks.mlip import unwrap

__all__ = ["GroundingInferer", "attention_plans", "phrase_heatmaps"]


def attention_plans(
    patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """``[B, P, D]`` patches, ``[B, S, D]`` sentences -> ``[B, P, S]`` per-sentence softmax over the patches
    (zero columns for absent sentences)."""
    attention = torch.einsum("bpd,bsd->bps", patches.float(), sentences.float()).div(temperature).softmax(dim=1)
    return attention * sentence_mask[:, None, :].to(attention.dtype)


def phrase_heatmaps(plans: torch.Tensor, grid: tuple[int, int], sentence: int = 0) -> torch.Tensor:
    """``[B, P, S]`` plans (``P = rows * cols``, row-major) -> ``[B, rows, cols]`` maps of a sentence, summing to 1."""
    column = plans[..., sentence].float()
    column = column / column.sum(dim=1, keepdim=True).clamp_min(torch.finfo(column.dtype).tiny)
    return column.reshape(-1, *grid)


class GroundingInferer(Inferer):
    """A MONAI inferer that returns phrase heatmaps of whole images.

    The network is an :class:`~monai_mlip.networks.MLIP`; its ``encode_image_patches`` and
    ``encode_sentences`` read the images and the tokenised grounding sentences (phrase first,
    :class:`~monai_mlip.data.GroundingSentencesd`; ``input_ids``, ``attention_mask`` and
    ``sentence_index`` by keyword).

    Args:
        method: ``"ot"`` (the OT plan's column) or ``"attention"`` (the phrase's softmax over the patches).
        epsilon: entropic regularisation of the OT (as in training).
        max_iter: Sinkhorn iteration cap.
        temperature: the attention map's softmax temperature.
        sentence: the sentence whose column is the heatmap (0: the phrase).

    Returns (from ``__call__``):
        ``{"heatmap": [B, rows, cols], "plans": [B, P, S]}``.
    """

    def __init__(
        self,
        method: str = "ot",
        epsilon: float = 0.05,
        max_iter: int = 100,
        temperature: float = 0.1,
        sentence: int = 0,
    ) -> None:
        super().__init__()
        if method not in ("ot", "attention"):
            raise ValueError(f"method must be 'ot' or 'attention', got {method!r}")
        self.method = method
        self.temperature = temperature
        self.epsilon = epsilon
        self.max_iter = max_iter
        self.sentence = sentence

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        model = unwrap(network)
        patches = model.encode_image_patches(inputs)
        sentences = model.encode_sentences(kwargs["input_ids"], kwargs["attention_mask"], kwargs["sentence_index"])
        if self.method == "attention":
            plans = attention_plans(patches, sentences.embeds, sentences.mask, self.temperature)
        else:
            plans = patch_sentence_plans(
                patches,
                torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device),
                sentences.embeds,
                sentences.mask,
                epsilon=self.epsilon,
                max_iter=self.max_iter,
            )
        grid = tuple(model.vision.grid_size)
        return {"heatmap": phrase_heatmaps(plans, grid, self.sentence), "plans": plans}
