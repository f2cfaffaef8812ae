"""Losses: global contrastive (distributed-aware), patch-sentence OT, SIE weighting, masked image prediction."""

from monai_mlip.losses.contrastive import (
    DEFAULT_WEIGHT_RANGE,
    contrastive_loss,
    gather_batch,
    global_contrastive_loss,
    relative_weights,
    similarity_logits,
)
from monai_mlip.losses.mip import masked_patch_loss
from monai_mlip.losses.mlip_loss import MLIPLoss
from monai_mlip.losses.ot import patch_sentence_plans, patch_sentence_similarity

__all__ = [
    "DEFAULT_WEIGHT_RANGE",
    "MLIPLoss",
    "contrastive_loss",
    "gather_batch",
    "global_contrastive_loss",
    "masked_patch_loss",
    "patch_sentence_plans",
    "patch_sentence_similarity",
    "relative_weights",
    "similarity_logits",
]
