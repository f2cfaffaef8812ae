"""Engines: the MLIP trainer, zero-shot classification, retrieval and grounding."""

from monai_mlip.engines.grounding import (
    GroundingInferer,
    heatmap_iou,
    phrase_heatmaps,
    pointing_game,
    random_map_scores,
)
from monai_mlip.engines.prompts import PROMPTS, PromptSet, prompts_for
from monai_mlip.engines.retrieval import retrieval_recall
from monai_mlip.engines.trainer import MLIPTrainer
from monai_mlip.engines.zero_shot import ZeroShotClassifier, tokenize_texts, unwrap

__all__ = [
    "PROMPTS",
    "GroundingInferer",
    "MLIPTrainer",
    "PromptSet",
    "ZeroShotClassifier",
    "heatmap_iou",
    "phrase_heatmaps",
    "pointing_game",
    "prompts_for",
    "random_map_scores",
    "retrieval_recall",
    "tokenize_texts",
    "unwrap",
]
