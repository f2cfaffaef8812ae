"""Stock MONAI ``UNETR`` (2D) whose ViT encoder starts from the pre-trained vision tower."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from monai.networks.nets import UNETR

from monai_mlip.networks.convert import adopt_patch_embedding, load_tower_weights, monai_vit_shape
from monai_mlip.networks.export import ENCODER_DIR, SAVED, encoder_config, load_encoder
from monai_mlip.networks.vision import VisionTower

__all__ = ["SEGMENTATION_INITS", "FrozenEncoderUNETR", "unetr_from_pretrained", "unetr_from_tower"]

SEGMENTATION_INITS = ("mlip", "random", "timm")


class FrozenEncoderUNETR(UNETR):
    """MONAI's ``UNETR`` whose ViT encoder stays in evaluation mode while the decoder trains.

    For the frozen-encoder mode: without it, ``train()`` would put the encoder's BatchNorm layers (the
    tiny preset's ResNet stem) back on batch statistics and update their running statistics, so a
    "frozen" encoder would still change, and dropout or stochastic depth would act in it. The modules and
    the state-dict keys are ``UNETR``'s own, so its checkpoints load into a plain ``UNETR``.
    """

    def train(self, mode: bool = True) -> FrozenEncoderUNETR:
        super().train(mode)
        self.vit.eval()
        return self


def unetr_from_pretrained(
    models_dir: str | os.PathLike,
    init: str = "mlip",
    out_channels: int = 1,
    feature_size: int = 16,
    freeze_encoder: bool = False,
    timm_weights: str | os.PathLike | bool = True,
    foreground_prior: float | None = 0.01,
) -> UNETR:
    """A 2D ``UNETR`` shaped like the pre-training run's image encoder, its encoder initialised from it.

    Args:
        models_dir: the pre-training bundle's ``models`` folder (its ``encoder`` gives the shapes and
            weights; no text tower is built).
        init: ``mlip`` (the pre-trained tower), ``random`` (MONAI's initialisation: the baseline) or
            ``timm`` (the timm model's ImageNet weights from a local file or the local cache, see
            ``timm_weights``).
        out_channels: segmentation channels.
        feature_size: UNETR decoder width.
        freeze_encoder: frozen-encoder mode: the ViT gets no gradient and stays in evaluation mode
            (:class:`FrozenEncoderUNETR`); the decoder trains.
        timm_weights: for ``init="timm"``: a local weights file, or ``True`` for the timm cache.
        foreground_prior: the foreground probability every pixel starts at: the output layer's bias is
            set to its logit (Lin et al. 2017, the focal loss's prior initialisation), so training starts
            from near-empty masks. With MONAI's initialisation pixels start around 0.5, many above the
            threshold, which marks every lesion-free image wrong until training has pushed all of its
            pixels down. ``None`` keeps MONAI's initialisation.

    Raises:
        ValueError: an unknown ``init``, a ``foreground_prior`` outside (0, 1), or pre-trained weights that
            leave part of the encoder unset (the message lists the keys).
    """
    if init not in SEGMENTATION_INITS:
        raise ValueError(f"init must be one of {SEGMENTATION_INITS}, got {init!r}")
    if foreground_prior is not None and not 0.0 < foreground_prior < 1.0:
        raise ValueError(f"foreground_prior must be in (0, 1), got {foreground_prior}")
    weights = {"mlip": SAVED, "random": None, "timm": timm_weights}[init]
    tower = load_encoder(Path(models_dir) / ENCODER_DIR, weights=weights)
    return unetr_from_tower(tower, init != "random", out_channels, feature_size, freeze_encoder, foreground_prior)


def unetr_from_tower(
    tower: VisionTower,
    copy_weights: bool = True,
    out_channels: int = 1,
    feature_size: int = 16,
    freeze_encoder: bool = False,
    foreground_prior: float | None = 0.01,
) -> UNETR:
    """A 2D ``UNETR`` shaped like ``tower``, its encoder holding the tower's weights (``copy_weights``) or
    MONAI's initialisation with the tower's stem architecture; the other arguments as in
    :func:`unetr_from_pretrained`. The network's ``rebuild_config`` rebuilds the same architecture
    (:func:`~monai_mlip.downstream.saved.network_config`)."""
    unetr = (FrozenEncoderUNETR if freeze_encoder else UNETR)(
        in_channels=1,
        out_channels=out_channels,
        feature_size=feature_size,
        proj_type="conv",
        spatial_dims=2,
        **monai_vit_shape(tower),
    )
    if not copy_weights:
        adopt_patch_embedding(unetr.vit, tower)  # a conv-stem tower's stem: the same architecture as the others
    else:
        result = load_tower_weights(unetr.vit, tower)
        if result.missing_keys:
            raise ValueError(f"the pre-trained tower left these UNETR encoder weights unset: {result.missing_keys}")
    if foreground_prior is not None:
        with torch.no_grad():
            unetr.out.conv.conv.bias.fill_(math.log(foreground_prior / (1.0 - foreground_prior)))
    unetr.vit.requires_grad_(not freeze_encoder)
    unetr.normalization = tower.normalization  # (mean, std) of the grey input the encoder was trained on
    unetr.rebuild_config = {
        "network": "unetr",
        "encoder": encoder_config(tower),
        "out_channels": out_channels,
        "feature_size": feature_size,
        "freeze_encoder": freeze_encoder,
    }
    return unetr
