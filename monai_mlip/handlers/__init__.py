"""Ignite/MONAI handlers: validation metrics, metrics JSON, atomic checkpoints, reseeding, heatmap and phi plots."""

from monai_mlip.handlers.inference import EmbeddingWriter
from monai_mlip.handlers.io import (
    AtomicCheckpointSaver,
    EpochReseed,
    FinalModelSaver,
    MetricsWriter,
    latest_checkpoint,
    save_atomic,
    write_json_atomic,
)
from monai_mlip.handlers.metrics import GroundingMetric, RetrievalMetric, ZeroShotAUCMetric, metric_key
from monai_mlip.handlers.plots import GroundingHeatmapSaver, PhiMapSaver

__all__ = [
    "AtomicCheckpointSaver",
    "EmbeddingWriter",
    "EpochReseed",
    "FinalModelSaver",
    "GroundingHeatmapSaver",
    "GroundingMetric",
    "MetricsWriter",
    "PhiMapSaver",
    "RetrievalMetric",
    "ZeroShotAUCMetric",
    "latest_checkpoint",
    "metric_key",
    "save_atomic",
    "write_json_atomic",
]
