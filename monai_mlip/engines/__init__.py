"""Engines: the MLIP trainer."""

from monai_mlip.engines.trainer import MLIPTrainer

__all__ = ["MLIPTrainer"]
