"""Training objectives: named terms (global contrastive, patch-sentence OT, masked image prediction, SIE
weighting), the recipes that assemble them, and the distributed-aware functions they are made of."""

from monai_mlip.losses.contrastive import (
    DEFAULT_WEIGHT_RANGE,
    contrastive_loss,
    gather_batch,
    global_contrastive_loss,
    relative_weights,
    similarity_logits,
)
from monai_mlip.losses.mip import masked_patch_loss
from monai_mlip.losses.objective import Objective, build_objective
from monai_mlip.losses.ot import patch_sentence_plans, patch_sentence_similarity
from monai_mlip.losses.recipes import RECIPES, Recipe, get_recipe, list_recipes
from monai_mlip.losses.registry import TERM_TYPES
from monai_mlip.losses.terms import (
    PARTS,
    GlobalContrastive,
    MaskedImagePrediction,
    ObjectiveTerm,
    PatchSentenceOT,
    SampleWeights,
    SemanticIntegrityWeighting,
    TermOutput,
)

__all__ = [
    "DEFAULT_WEIGHT_RANGE",
    "PARTS",
    "RECIPES",
    "TERM_TYPES",
    "GlobalContrastive",
    "MaskedImagePrediction",
    "Objective",
    "ObjectiveTerm",
    "PatchSentenceOT",
    "Recipe",
    "SampleWeights",
    "SemanticIntegrityWeighting",
    "TermOutput",
    "build_objective",
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
