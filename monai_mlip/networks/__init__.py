"""Networks: the MLIP towers and model, its presets, and conversion of the vision tower to MONAI networks."""

from monai_mlip.networks.convert import (
    adopt_patch_embedding,
    load_tower_weights,
    load_vit_weights,
    to_monai_vit,
    vit_state_dict_for_monai,
)
from monai_mlip.networks.encoder import ImageEncoder
from monai_mlip.networks.export import ENCODER_DIR, encoder_config, load_encoder, save_encoder, tower_from_config
from monai_mlip.networks.factory import (
    MODEL_CONFIG,
    PRESETS,
    MLIPConfig,
    create_mlip,
    list_presets,
    load_pretrained,
    model_config,
)
from monai_mlip.networks.mip import MaskedImageDecoder, patchify
from monai_mlip.networks.mlip import MLIP, MLIPOutput, SentenceEmbeddings, unwrap
from monai_mlip.networks.sie import SemanticIntegrityEstimator
from monai_mlip.networks.text import TextFeatures, TextTower, pool_sentences
from monai_mlip.networks.tiny_text import build_tiny_text_model
from monai_mlip.networks.vision import VisionFeatures, VisionTower, random_patch_mask

__all__ = [
    "ENCODER_DIR",
    "MLIP",
    "MODEL_CONFIG",
    "PRESETS",
    "ImageEncoder",
    "MLIPConfig",
    "MLIPOutput",
    "MaskedImageDecoder",
    "SemanticIntegrityEstimator",
    "SentenceEmbeddings",
    "TextFeatures",
    "TextTower",
    "VisionFeatures",
    "VisionTower",
    "adopt_patch_embedding",
    "build_tiny_text_model",
    "create_mlip",
    "encoder_config",
    "list_presets",
    "load_encoder",
    "load_pretrained",
    "load_tower_weights",
    "load_vit_weights",
    "model_config",
    "patchify",
    "pool_sentences",
    "random_patch_mask",
    "save_encoder",
    "to_monai_vit",
    "tower_from_config",
    "unwrap",
    "vit_state_dict_for_monai",
]
