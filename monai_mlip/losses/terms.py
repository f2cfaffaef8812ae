"""The terms of a training objective, each a module with its own settings and its own log key.

A term reads the model's :class:`~monai_mlip.networks.MLIPOutput` and returns its loss and detached
statistics (:class:`TermOutput`); :class:`~monai_mlip.losses.Objective` weights and sums the terms a
recipe lists. A term names the model parts it needs (:data:`PARTS`), so the model factory builds only
those (a term that is off costs nothing) and a model built without one fails with a message that says so.

- :class:`GlobalContrastive` (``global``): symmetric InfoNCE between image and report embeddings over the
  global batch (ConVIRT / CLIP).
- :class:`PatchSentenceOT` (``local``): symmetric InfoNCE over the patch-sentence OT similarities
  ``S_ij`` (:func:`~monai_mlip.losses.patch_sentence_similarity`) scaled by the local logit scale.
- :class:`MaskedImagePrediction` (``mip``): MSE of the decoder on the hidden patches.
- :class:`SemanticIntegrityWeighting` (``sie``): not a loss; the SIE's integrity ``w`` of each
  masked view weights the contrastive terms it lists (MaCo's scheme), and its statistics are logged.

Distributed: each term gathers what it needs from every process (embeddings, sentence masks, SIE
weights) with gradients (:func:`~monai_mlip.losses.gather_batch`), so every process reports the loss of
the whole global batch and DDP's averaging gives the gradients of one process on the concatenated batch.
The OT term solves this process's images against all reports (``B/W x B`` problems) and gathers the rows.
Contrastive terms are computed in float32 outside autocast.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
from monai.utils import str2bool
from torch import nn

from monai_mlip.losses.contrastive import (
    DEFAULT_WEIGHT_RANGE,
    contrastive_loss,
    gather_batch,
    relative_weights,
    similarity_logits,
)
from monai_mlip.losses.mip import masked_patch_loss
from monai_mlip.losses.ot import patch_sentence_similarity

__all__ = [
    "PARTS",
    "GlobalContrastive",
    "MaskedImagePrediction",
    "ObjectiveTerm",
    "PatchSentenceOT",
    "SampleWeights",
    "SemanticIntegrityWeighting",
    "TermOutput",
]

# model part -> (the create_mlip switch that builds it, the MLIPOutput field it fills)
PARTS: dict[str, tuple[str, str]] = {
    "local": ("use_local", "local_logit_scale"),
    "sie": ("use_sie", "integrity"),
    "mip": ("use_mip", "mip_pred"),
    "knowledge": ("use_knowledge", "knowledge_embeds"),
    "teacher": ("use_teacher", "teacher_image_embeds"),
    "mlm": ("use_mlm", "mlm_logits"),
}


class TermOutput(NamedTuple):
    """``loss``: the term's scalar loss; ``stats``: detached scalars to log."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor]


class SampleWeights(NamedTuple):
    """``weights`` ``[B]`` (the global batch) positive per-sample weights and the ``weight_range`` that bounds
    them relative to the batch (:func:`~monai_mlip.losses.relative_weights`)."""

    weights: torch.Tensor
    weight_range: tuple[float, float]


class ObjectiveTerm(nn.Module):
    """A term of a training objective: ``forward(output, sample_weights)`` -> :class:`TermOutput`.

    Attributes:
        name: the term's name in recipes; its loss is logged as ``loss_<name>``.
        parts: the model parts (:data:`PARTS`) the term needs.
        takes_unpaired: the term handles a batch with reports that have no image (``output.has_image``);
            the objective refuses such a batch for a term that does not.
    """

    name: ClassVar[str]
    parts: tuple[str, ...] = ()
    takes_unpaired: ClassVar[bool] = False

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        raise NotImplementedError


def with_image(output: Any) -> torch.Tensor | None:
    """``[B]`` bool over the global batch, the samples that have an image; ``None`` when all have one."""
    has_image = getattr(output, "has_image", None)
    if has_image is None:
        return None
    has_image = gather_batch(has_image.bool())
    return None if bool(has_image.all()) else has_image


def _weighted_contrastive(logits: torch.Tensor, sample_weights: SampleWeights | None) -> torch.Tensor:
    if sample_weights is None:
        return contrastive_loss(logits)
    return contrastive_loss(logits, sample_weights.weights, sample_weights.weight_range)


class GlobalContrastive(ObjectiveTerm):
    """Image-report InfoNCE over the global batch: ``[B, D]`` image and text embeddings -> a scalar.

    Reports without an image (``output.has_image``) are left out of the logits.
    """

    name = "global"
    takes_unpaired = True

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        logits = similarity_logits(
            gather_batch(output.image_embeds), gather_batch(output.text_embeds), output.logit_scale
        )
        keep = with_image(output)
        if keep is not None:
            logits = logits[keep][:, keep]
            if sample_weights is not None:
                sample_weights = sample_weights._replace(weights=sample_weights.weights[keep])
        return TermOutput(_weighted_contrastive(logits, sample_weights), {"logit_scale": output.logit_scale.detach()})


class PatchSentenceOT(ObjectiveTerm):
    """InfoNCE over the patch-sentence OT similarities: ``[B, N, D]`` patches, ``[B, S, D]`` sentences -> a scalar.

    Args:
        epsilon: entropic regularisation of the OT.
        max_iter: Sinkhorn iteration cap.
        tol: Sinkhorn marginal tolerance.
        plan_grad: ``"detach"`` (default: plan constant, exact envelope gradient), ``"last_step"`` or
            ``"autodiff"``; see :mod:`monai_mlip.losses.ot`.
        method: ``"auto"``, ``"sinkhorn"`` (scaling domain) or ``"log_sinkhorn"``.
        sie_patch_marginal: the patch marginal is ``softmax(phi)`` over the visible patches instead of
            uniform (needs the SIE).
    """

    name = "local"

    def __init__(
        self,
        epsilon: float = 0.05,
        max_iter: int = 100,
        tol: float = 1e-5,
        plan_grad: str = "detach",
        method: str = "auto",
        sie_patch_marginal: bool = False,
    ) -> None:
        super().__init__()
        self.epsilon, self.max_iter, self.tol = float(epsilon), int(max_iter), float(tol)
        self.plan_grad, self.method = plan_grad, method
        # str2bool: a command-line override arrives as the string "false"
        self.sie_patch_marginal = str2bool(sie_patch_marginal)
        self.parts = ("local", "sie") if self.sie_patch_marginal else ("local",)

    def similarity(self, output: Any) -> torch.Tensor:
        """``[B_local, B]`` OT similarities of this process's images with the reports of the global batch."""
        patches = output.patch_embeds
        patch_mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
        weights = output.patch_scores.detach().softmax(dim=1) if self.sie_patch_marginal else None
        return patch_sentence_similarity(
            patches,
            patch_mask,
            gather_batch(output.sentence_embeds),
            gather_batch(output.sentence_mask),
            epsilon=self.epsilon,
            max_iter=self.max_iter,
            tol=self.tol,
            patch_weights=weights,
            plan_grad=self.plan_grad,
            method=self.method,
        )

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        logits = output.local_logit_scale.float() * gather_batch(self.similarity(output))
        stats = {"local_logit_scale": output.local_logit_scale.detach()}
        return TermOutput(_weighted_contrastive(logits, sample_weights), stats)


class MaskedImagePrediction(ObjectiveTerm):
    """MSE of the decoder's ``[B, M, K]`` predictions of the hidden patches (MAE with ``norm_pix_loss``), over
    the samples that have an image."""

    name = "mip"
    parts = ("mip",)
    takes_unpaired = True

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        pred, target = gather_batch(output.mip_pred), gather_batch(output.mip_target)
        keep = with_image(output)
        if keep is not None:
            pred, target = pred[keep], target[keep]
        return TermOutput(masked_patch_loss(pred, target), {})


class SemanticIntegrityWeighting(nn.Module):
    """The SIE's per-sample integrity ``w`` ``[B]`` of the masked view, to weight contrastive terms.

    Not a loss: ``forward(output)`` returns the :class:`SampleWeights` of the global batch and detached
    statistics; its gradient reaches ``phi`` through the terms it weights.

    Args:
        weight_range: bounds of the relative weight ``w / mean(w)`` that scales a sample's logits.
        weighted_terms: the terms it weights (default: both contrastive terms, which compare the same masked
            image whose loss of meaning ``w`` estimates; MaCo, where SIE comes from, weights its global term only).
    """

    name = "sie"
    parts = ("sie",)

    def __init__(
        self,
        weight_range: tuple[float, float] = DEFAULT_WEIGHT_RANGE,
        weighted_terms: tuple[str, ...] = ("global", "local"),
    ) -> None:
        super().__init__()
        self.weight_range = (float(weight_range[0]), float(weight_range[1]))
        relative_weights(torch.ones(1), self.weight_range)  # validates the range
        self.weighted_terms = tuple(weighted_terms)

    def forward(self, output: Any) -> tuple[SampleWeights, dict[str, torch.Tensor]]:
        weights = gather_batch(output.integrity)
        relative = relative_weights(weights.detach(), self.weight_range)
        stats = {
            "integrity": weights.detach().mean(),
            "sie_weight_min": relative.min(),
            "sie_weight_max": relative.max(),
        }
        return SampleWeights(weights, self.weight_range), stats
