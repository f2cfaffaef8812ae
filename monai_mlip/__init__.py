"""monai_mlip: MLIP (Medical Language-Image Pre-training with Masked Local Representation Learning) for MONAI."""

__version__ = "0.1.0"
