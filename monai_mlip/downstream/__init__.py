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
from monai_mlip.downstream.datasets import DATASETS, DownstreamDataset, downstream_dataset
from monai_mlip.downstream.saved import NETWORK_CONFIG, PublishBestModel, load_trained_network, network_config
from monai_mlip.downstream.segmentation import (
    SEGMENTATION_INITS,
    FrozenEncoderUNETR,
    unetr_from_pretrained,
    unetr_from_tower,
)
from monai_mlip.downstream.training import epochs_for_steps

__all__ = [
    "DATASETS",
    "INITS",
    "MODES",
    "NETWORK_CONFIG",
    "SEGMENTATION_INITS",
    "CXRClassifier",
    "DownstreamDataset",
    "FrozenEncoderUNETR",
    "PublishBestModel",
    "ZeroShotLogits",
    "build_classifier",
    "check_trainable",
    "classifier_from_pretrained",
    "downstream_dataset",
    "epochs_for_steps",
    "load_trained_network",
    "network_config",
    "unetr_from_pretrained",
    "unetr_from_tower",
]
