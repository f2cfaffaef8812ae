"""A Vision Transformer with a convolutional stem, registered with timm as ``vit_conv_stem_patch16``.

A from-scratch ViT whose patch embedding is one 16 x 16 convolution learns slowly on little data: on the
synthetic CXR set, trained for the few hundred steps a CPU allows, it barely separated findings that a
small CNN found easily. Xiao et al. (2021, "Early convolutions help transformers see better") replace the
patchify convolution with a few stride-2 3 x 3 convolutions; the token grid, the blocks and everything
after them stay as they are. Here: four stride-2 3 x 3 convolutions (widths ``E/8, E/4, E/2, E``; the
first three followed by a GroupNorm of 4 groups (so any width divisible by 32 works) and ReLU), so a
token sits on the same 16 x 16 pixel grid as in ``vit_*_patch16`` models (its receptive field reaches a
few pixels into the neighbouring patches: :class:`~monai_mlip.networks.VisionTower` blanks hidden patches
before the stem so that masking still hides them). GroupNorm rather than BatchNorm: it normalises each
image on its own, so the stem computes the same function in training and evaluation, on masked and whole
images, in a frozen encoder that a downstream bundle trains around, and in every DDP process. In a
4-epoch global-loss run of the tiny preset on the synthetic set a stem with 8-group GroupNorm also
learned faster than one with BatchNorm (global loss 3.21 against 3.28).

The model is timm's own ``VisionTransformer`` with timm's ``HybridEmbed`` around timm's ``ConvStem``; only
the entry point is ours. :mod:`monai_mlip.networks.convert` carries the stem into MONAI's ``ViT`` and
``UNETR`` as their patch-embedding module.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from timm.layers import HybridEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer_hybrid import ConvStem
from torch import nn

__all__ = ["vit_conv_stem_patch16"]

# read by ``register_model`` (so timm knows the model has no published weights and says nothing about it)
default_cfgs = generate_default_cfgs(
    {"vit_conv_stem_patch16": {"first_conv": "patch_embed.backbone.0.conv", "classifier": "head"}}
)


@register_model
def vit_conv_stem_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT with a four-layer convolutional stem (a token per 16 x 16 pixels); ViT-B shape by default.

    Args:
        pretrained: must be ``False``: no weights are published for this model.
        **kwargs: ``VisionTransformer`` arguments (``img_size``, ``in_chans``, ``embed_dim``, ``depth``, ...).
    """
    embed_dim = kwargs.setdefault("embed_dim", 768)
    kwargs.setdefault("depth", 12)
    kwargs.setdefault("num_heads", 12)
    stem = ConvStem(
        in_chans=kwargs.get("in_chans", 3),
        depth=4,
        channels=(embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim),
        stride=(2, 2, 2, 2),
        norm_layer=partial(nn.GroupNorm, num_groups=4),
    )
    embed_layer = partial(HybridEmbed, backbone=stem, proj=False)
    return build_model_with_cfg(
        VisionTransformer, "vit_conv_stem_patch16", pretrained, embed_layer=embed_layer, patch_size=1, **kwargs
    )
