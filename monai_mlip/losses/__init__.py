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
from monai_mlip.losses.recipes import RECIPES, TERMS, Recipe, get_recipe, list_recipes

__all__ = [
    "DEFAULT_WEIGHT_RANGE",
    "RECIPES",
    "TERMS",
    "MLIPLoss",
    "Recipe",
    "contrastive_loss",
    "gather_batch",
    "get_recipe",
    "global_contrastive_loss",
    "list_recipes",
    "masked_patch_loss",
    "patch_sentence_plans",
    "patch_sentence_similarity",
    "relative_weights",
    "similarity_logits",
]
