"""Downstream use of the pre-trained encoder: image-level classification (zero-shot, linear probe, fine-tuning)."""

from monai_mlip.downstream.classification import (
    INITS,
    MODES,
    CXRClassifier,
    ZeroShotLogits,
    build_classifier,
    check_trainable,
    classifier_from_pretrained,
)

__all__ = [
    "INITS",
    "MODES",
    "CXRClassifier",
    "ZeroShotLogits",
    "build_classifier",
    "check_trainable",
    "classifier_from_pretrained",
]
