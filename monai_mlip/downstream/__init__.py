"""Downstream use of the pre-trained encoder: classification (zero-shot, linear probe, fine-tuning), segmentation."""

from monai_mlip.downstream.classification import (
    INITS,
    MODES,
    CXRClassifier,
    ZeroShotLogits,
    build_classifier,
    check_trainable,
    classifier_from_pretrained,
)
from monai_mlip.downstream.segmentation import SEGMENTATION_INITS, unetr_from_pretrained

__all__ = [
    "INITS",
    "MODES",
    "SEGMENTATION_INITS",
    "CXRClassifier",
    "ZeroShotLogits",
    "build_classifier",
    "check_trainable",
    "classifier_from_pretrained",
    "unetr_from_pretrained",
]
