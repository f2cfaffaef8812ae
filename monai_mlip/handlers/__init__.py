"""Ignite/MONAI handlers: metrics, metrics JSON, atomic checkpoints, reseeding, unmasked tuning, plots."""

from monai_mlip.handlers.inference import EmbeddingWriter, ScoresCSVSaver
from monai_mlip.handlers.io import (
    AtomicCheckpointSaver,
    EpochReseed,
    FinalModelSaver,
    MetricsWriter,
    latest_checkpoint,
)
from monai_mlip.handlers.metrics import (
    BinaryClassificationMetric,
    GroundingMetric,
    RetrievalMetric,
    ZeroShotAUCMetric,
    metric_key,
)
from monai_mlip.handlers.model_card import encoder_card
from monai_mlip.handlers.plots import GroundingHeatmapSaver, PhiMapSaver, SegmentationOverlaySaver, save_roc_curve
from monai_mlip.handlers.schedule import UnmaskedTuning

__all__ = [
    "AtomicCheckpointSaver",
    "BinaryClassificationMetric",
    "EmbeddingWriter",
    "EpochReseed",
    "FinalModelSaver",
    "GroundingHeatmapSaver",
    "GroundingMetric",
    "MetricsWriter",
    "PhiMapSaver",
    "RetrievalMetric",
    "ScoresCSVSaver",
    "SegmentationOverlaySaver",
    "UnmaskedTuning",
    "ZeroShotAUCMetric",
    "encoder_card",
    "latest_checkpoint",
    "metric_key",
    "save_roc_curve",
]
