"""The term names a recipe may list, and the class that implements each (open_clip's loss factory keys)."""

from __future__ import annotations

from monai_mlip.losses.divergence import DivergenceDistillation
from monai_mlip.losses.knowledge import KnowledgeCategoryContrast, TokenKnowledgePatch
from monai_mlip.losses.mlm import EntityMLM
from monai_mlip.losses.terms import GlobalContrastive, MaskedImagePrediction, ObjectiveTerm, PatchSentenceOT

__all__ = ["TERM_TYPES", "WEIGHTING"]

TERM_TYPES: dict[str, type[ObjectiveTerm]] = {
    term.name: term
    for term in (
        GlobalContrastive,
        PatchSentenceOT,
        MaskedImagePrediction,
        DivergenceDistillation,
        TokenKnowledgePatch,
        KnowledgeCategoryContrast,
        EntityMLM,
    )
}
# the settings key of the SIE weighting, which is not a loss term (its recipe switch is ``Recipe.sie``)
WEIGHTING = "sie"
