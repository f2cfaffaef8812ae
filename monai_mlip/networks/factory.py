"""Model presets, the :func:`create_mlip` factory, and :func:`load_pretrained`, which rebuilds a trained run.

Every preset is an :class:`MLIPConfig`; :func:`create_mlip` takes a preset name and overrides any of its
fields by keyword, so bundle configs can say ``create_mlip("paper", vision_weights="/data/vit.safetensors",
text_model="/data/Bio_ClinicalBERT")``.

Presets:

- ``paper``: timm ``vit_base_patch16_224`` (ImageNet weights from the local cache by default) at 224 px,
  ``emilyalsentzer/Bio_ClinicalBERT``, shared space of 512, mask ratio 0.5, a 2-block 512-wide decoder.
- ``tiny``: for CPU runs on small data. A 4-block ViT of width 128 with 4 heads at 128 px whose tokens
  come from the first three stages of a half-width ResNet-18 (``vit_resnet_stem_patch16``: BatchNorm,
  16 x 16 pixels a token, 8 x 8 = 64 tokens), no class token, average pooling and a final LayerNorm on
  the tokens (``fc_norm=False``): with the stem as its patch-embedding module that layout is exactly
  MONAI's ``ViT``/``UNETR`` encoder, so the converted network reproduces the tower
  (:mod:`monai_mlip.networks.convert`; ``UNETR``'s fixed 12 blocks take the 4 with identity blocks between
  them). Why 4 blocks and this stem: from scratch, in a CPU run's budget, a 12-block patch-16 ViT learned
  next to nothing even with labels, a 4-block one without a stem stayed at chance in contrastive
  pre-training, and of the three convolutional stems (:mod:`monai_mlip.networks.conv_stem`) the ResNet one
  learned the synthetic findings fastest (``docs/experiments.md`` has the runs). Random initialisation.
  Mask ratio 0.25, not the paper's 0.5: at 128 px a small lesion covers one to four of the 64 patches, so
  half-masked views often hide it while the report still names it (the lower ratio gave the better
  probes and zero-shot scores in the runs). The ResNet stem runs on the whole image anyway (hidden
  patches blanked), so masking saves this tower little time. The text model is a
  2-layer BERT of width 128 made by :func:`~monai_mlip.networks.tiny_text.build_tiny_text_model` on the
  training reports, whose directory must be passed as ``text_model``; its global embedding is the mean
  token state (a random-init [CLS] state is the same for every report). Shared space 128, a 1-block
  128-wide decoder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from monai_mlip.atomic_io import read_checkpoint
from monai_mlip.data.knowledge import load_knowledge
from monai_mlip.networks.mlip import MLIP
from monai_mlip.networks.text import TextTower
from monai_mlip.networks.vision import VisionTower

__all__ = ["MODEL_CONFIG", "PRESETS", "MLIPConfig", "create_mlip", "list_presets", "load_pretrained", "model_config"]


@dataclass(frozen=True)
class MLIPConfig:
    """Everything :func:`create_mlip` needs to build an :class:`~monai_mlip.networks.MLIP`.

    Attributes:
        vision_model: timm model name of a Vision Transformer.
        vision_weights: ``None`` (random init), a local weights file, or ``True`` (the timm model's
            default weights from the local cache).
        vision_kwargs: further ``timm.create_model`` arguments (merged with the preset's by :func:`create_mlip`).
        image_size: side of the square input.
        in_chans: image channels (1 for grey radiographs).
        text_model: a local ``save_pretrained`` directory or a hub name in the local cache.
        text_kwargs: further ``AutoModel.from_pretrained`` arguments (merged like ``vision_kwargs``).
        text_pooling: global text embedding, ``"cls"`` or ``"mean"`` (see :class:`~monai_mlip.networks.TextTower`).
        max_sentences: sentence slots ``S`` of the text tower.
        embed_dim: width ``D`` of the shared space.
        mask_ratio: fraction of patches hidden in training.
        decoder_dim: MIP decoder width.
        decoder_depth: MIP decoder blocks.
        decoder_heads: MIP decoder heads.
        logit_scale_init: initial inverse temperature of the global and local logits (MaCo: 1 / 0.03).
        max_logit_scale: upper bound of the logit scales.
        sie_init: SIE weight of every mask at initialisation.
        use_local: build the local logit scale (the patch-sentence term is on).
        use_sie: build the semantic integrity estimator.
        use_mip: build the masked-image-prediction decoder.
        use_knowledge: build the knowledge encoder over ``knowledge_file``.
        knowledge_file: a knowledge file (:func:`~monai_mlip.data.knowledge.load_knowledge`; ``None``: the
            packaged chest X-ray one).
        use_teacher: build the divergence encoder (an EMA of the towers).
        teacher_momentum: its EMA decay.
        use_mlm: build the image-supported masked-language-modelling head. The ``use_*`` switches follow
            the loss (:meth:`~monai_mlip.losses.Objective.model_heads`): a part no term uses is not built.
        mlm_entity_prob: probability of masking each entity token for MLM.
        mlm_other_prob: probability of masking each other token for MLM.
        mask_strategy: ``"random"`` or ``"attention"`` (hide the patches the report attends to most).
        attention_temperature: softmax temperature of the report-to-patch attention.
        attention_share: share of the hidden patches that attention masking chooses (the rest are random).
        contrastive_view: ``"masked"`` (the contrastive terms read the masked view) or ``"whole"``.
    """

    vision_model: str = "vit_base_patch16_224"
    vision_weights: str | os.PathLike | bool | None = True
    vision_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224
    in_chans: int = 1
    text_model: str | os.PathLike | None = "emilyalsentzer/Bio_ClinicalBERT"
    text_kwargs: dict[str, Any] = field(default_factory=dict)
    text_pooling: str = "cls"
    max_sentences: int = 16
    embed_dim: int = 512
    mask_ratio: float = 0.5
    decoder_dim: int = 512
    decoder_depth: int = 2
    decoder_heads: int = 16
    logit_scale_init: float = 1 / 0.03
    max_logit_scale: float = 100.0
    sie_init: float = 1.0
    use_local: bool = True
    use_sie: bool = True
    use_mip: bool = True
    use_knowledge: bool = False
    knowledge_file: str | os.PathLike | None = None
    use_teacher: bool = False
    teacher_momentum: float = 0.995
    use_mlm: bool = False
    mlm_entity_prob: float = 0.5
    mlm_other_prob: float = 0.0
    mask_strategy: str = "random"
    attention_temperature: float = 0.1
    attention_share: float = 1.0
    contrastive_view: str = "masked"


PRESETS: dict[str, MLIPConfig] = {
    "paper": MLIPConfig(),
    "tiny": MLIPConfig(
        vision_model="vit_resnet_stem_patch16",
        vision_weights=None,
        vision_kwargs={
            "embed_dim": 128,
            "depth": 4,
            "num_heads": 4,
            "class_token": False,
            "global_pool": "avg",
            "fc_norm": False,
        },
        image_size=128,
        text_model=None,
        text_pooling="mean",
        embed_dim=128,
        mask_ratio=0.25,
        decoder_dim=128,
        decoder_depth=1,
        decoder_heads=4,
    ),
}

_MERGED = ("vision_kwargs", "text_kwargs")


def list_presets() -> list[str]:
    """Names of the presets."""
    return sorted(PRESETS)


def create_mlip(preset: str = "tiny", **overrides: Any) -> MLIP:
    """Build an MLIP model from a preset, overriding any :class:`MLIPConfig` field by keyword.

    ``vision_kwargs`` and ``text_kwargs`` overrides are merged into the preset's dictionaries (a ``None``
    value removes a key); every other override replaces the preset's value. The resolved
    :class:`MLIPConfig` is kept as ``model.config``.

    Args:
        preset: a name from :func:`list_presets`.
        **overrides: :class:`MLIPConfig` fields.

    Raises:
        ValueError: unknown preset or field, or no text model given to a preset without one.
        PretrainedNotFoundError: pretrained weights were asked for and no local copy exists.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown MLIP preset {preset!r}; choose one of {list_presets()}")
    config = PRESETS[preset]
    names = {f.name for f in fields(MLIPConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown create_mlip argument(s) {unknown}; valid: {sorted(names)}")
    for name in _MERGED:
        if name in overrides:
            merged = {**getattr(config, name), **(overrides[name] or {})}
            overrides[name] = {k: v for k, v in merged.items() if v is not None}
    config = replace(config, **overrides)
    if config.text_model is None:
        raise ValueError(
            f"the {preset!r} preset has no text model: pass text_model=<directory>, for example one written by "
            "monai_mlip.networks.build_tiny_text_model(reports, out_dir)"
        )
    vision = VisionTower(
        config.vision_model,
        weights=config.vision_weights,
        image_size=config.image_size,
        in_chans=config.in_chans,
        **config.vision_kwargs,
    )
    text = TextTower(
        config.text_model, max_sentences=config.max_sentences, pooling=config.text_pooling, **config.text_kwargs
    )
    model = MLIP(
        vision,
        text,
        embed_dim=config.embed_dim,
        mask_ratio=config.mask_ratio,
        decoder_dim=config.decoder_dim,
        decoder_depth=config.decoder_depth,
        decoder_heads=config.decoder_heads,
        logit_scale_init=config.logit_scale_init,
        max_logit_scale=config.max_logit_scale,
        sie_init=config.sie_init,
        use_local=config.use_local,
        use_sie=config.use_sie,
        use_mip=config.use_mip,
        knowledge=load_knowledge(config.knowledge_file) if config.use_knowledge else None,
        use_teacher=config.use_teacher,
        teacher_momentum=config.teacher_momentum,
        use_mlm=config.use_mlm,
        mlm_entity_prob=config.mlm_entity_prob,
        mlm_other_prob=config.mlm_other_prob,
        mask_strategy=config.mask_strategy,
        attention_temperature=config.attention_temperature,
        attention_share=config.attention_share,
        contrastive_view=config.contrastive_view,
    )
    model.config = config
    return model


MODEL_CONFIG = "mlip_config.json"


def model_config(
    models_dir: str | os.PathLike, preset: str, text_model: str | os.PathLike, overrides: dict | None = None
) -> dict:
    """The record of how the network was built (``models/mlip_config.json``, written with the weights when
    a run completes) from which inference and zero-shot rebuild it with :func:`load_pretrained`.

    A ``text_model`` inside ``models_dir`` is stored relative to it, so the bundle folder can move.
    """
    models_dir = Path(models_dir)
    text = Path(text_model)
    inside = text.is_absolute() and models_dir.resolve() in text.resolve().parents
    return {
        "preset": preset,
        "text_model": str(text.resolve().relative_to(models_dir.resolve())) if inside else str(text_model),
        "overrides": dict(overrides or {}),
    }


def load_pretrained(
    models_dir: str | os.PathLike, weights: str | None = "model.pt", map_location: str = "cpu", **overrides: object
) -> MLIP:
    """Rebuild the pre-trained MLIP model of a bundle's ``models`` folder and load its weights.

    Args:
        models_dir: the pre-training bundle's ``models`` folder (``mlip_config.json``, ``model.pt``, the text model).
        weights: the weights file in ``models_dir`` (``None``: build without loading, random init).
        map_location: where the weights are loaded.
        overrides: :func:`~monai_mlip.networks.create_mlip` overrides on top of the recorded ones.

    Raises:
        FileNotFoundError: the folder lacks ``mlip_config.json`` or the weights: the message says which run writes them.
    """
    models_dir = Path(models_dir)
    config_path = models_dir / MODEL_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: run the pre-training bundle first "
            "(python -m monai.bundle run --config_file bundles/mlip_pretrain/configs/train.json) "
            "or point to the models folder of a finished run."
        )
    record = json.loads(config_path.read_text())
    text_model = record["text_model"]
    if (models_dir / text_model).is_dir():
        text_model = str(models_dir / text_model)
    settings = {**record.get("overrides", {}), "vision_weights": None, **overrides}
    model = create_mlip(record["preset"], text_model=text_model, **settings)
    if weights is not None:
        path = models_dir / weights
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the pre-training run writes it when it completes.")
        model.load_state_dict(read_checkpoint(path, map_location=map_location))
    return model
