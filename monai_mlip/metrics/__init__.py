"""Metrics as plain functions on tensors: retrieval recall, grounding scores, best F1 (the handlers in
:mod:`monai_mlip.handlers.metrics` wrap them for ignite)."""

from monai_mlip.metrics.classification import best_f1
from monai_mlip.metrics.grounding import flat_maps, heatmap_iou, pointing_game, random_map_scores
from monai_mlip.metrics.retrieval import retrieval_recall

__all__ = ["best_f1", "flat_maps", "heatmap_iou", "pointing_game", "random_map_scores", "retrieval_recall"]
