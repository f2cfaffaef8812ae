"""Vision Transformers with a convolutional stem, registered with timm as ``vit_conv_stem_patch16`` and
``vit_pooled_stem_patch16``.

A from-scratch ViT whose patch embedding is one 16 x 16 convolution learns slowly on little data. Xiao et
al. (2021, "Early convolutions help transformers see better") replace the patchify convolution with a few
stride-2 3 x 3 convolutions; the token grid, the blocks and everything after them stay as they are. Each
stem here keeps the 16 x 16 pixel token grid of ``vit_*_patch16`` models (a token's receptive field reaches
a few pixels into its neighbours: :class:`~monai_mlip.networks.VisionTower` blanks hidden patches before
the stem so that masking still hides them). The runs that compared them are in ``docs/experiments.md``.

- ``vit_conv_stem_patch16``: four stride-2 3 x 3 convolutions (widths ``E/8, E/4, E/2, E``; the first three
  followed by a 4-group GroupNorm and ReLU). GroupNorm normalises each image on its own, so the stem
  computes the same function in training and evaluation, on masked and whole images, and in every DDP
  process.
- ``vit_pooled_stem_patch16``: a 2 x 2 average pooling, then six 3 x 3 convolutions of strides 2, 1, 2, 1,
  2, 1 (widths ``E/4, E/4, E/2, E/2, E, E``), each followed by an 8-group GroupNorm and GELU: the image at
  half resolution through twice the depth.
- ``vit_resnet_stem_patch16`` (the ``tiny`` preset's tower): the first three stages of a half-width
  ResNet-18 (a 7 x 7 stride-2 convolution of width ``E/4`` with BatchNorm and ReLU, a 3 x 3 stride-2 max
  pooling, two of timm's ``BasicBlock`` a stage at widths ``E/4, E/2, E``, strides 1, 2, 2). It learned the
  synthetic findings fastest of the three, BatchNorm being part of why; the price is batch statistics in
  training, so a frozen encoder must be kept in evaluation mode (the downstream linear probe and
  frozen-encoder segmentation do) and several GPU processes want ``SyncBatchNorm`` (the pre-training
  bundle's ``multi_gpu_train.json`` converts it). In masked pre-training the stem sees images whose hidden
  patches are blanked, so its running statistics are those of masked images; full fine-tuning on whole
  images adapts them.

The other two are kept as named ablation baselines of the stem (no preset uses them).

The models are timm's own ``VisionTransformer`` with timm's ``HybridEmbed`` around timm's ``ConvStem`` (or
timm's ResNet ``BasicBlock``); only the entry points are ours. :mod:`monai_mlip.networks.convert` carries
the stem into MONAI's ``ViT`` and ``UNETR`` as their patch-embedding module.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from timm.layers import HybridEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, make_blocks
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer_hybrid import ConvStem
from torch import nn

__all__ = ["vit_conv_stem_patch16", "vit_pooled_stem_patch16", "vit_resnet_stem_patch16"]

# read by ``register_model`` (so timm knows the models have no published weights and says nothing about them)
default_cfgs = generate_default_cfgs(
    {
        "vit_conv_stem_patch16": {"first_conv": "patch_embed.backbone.0.conv", "classifier": "head"},
        "vit_pooled_stem_patch16": {"first_conv": "patch_embed.backbone.1.0.conv", "classifier": "head"},
        "vit_resnet_stem_patch16": {"first_conv": "patch_embed.backbone.0", "classifier": "head"},
    }
)


def _vit_with_stem(name: str, stem: nn.Module, pretrained: bool, **kwargs: Any) -> VisionTransformer:
    """timm's ``VisionTransformer`` whose patch embedding is ``stem`` (one token per output pixel)."""
    embed_layer = partial(HybridEmbed, backbone=stem, proj=False)
    return build_model_with_cfg(VisionTransformer, name, pretrained, embed_layer=embed_layer, patch_size=1, **kwargs)


def _vit_b_defaults(kwargs: dict[str, Any]) -> int:
    """Fill in ViT-B's depth and heads where ``kwargs`` does not set them; returns the width."""
    kwargs.setdefault("depth", 12)
    kwargs.setdefault("num_heads", 12)
    return kwargs.setdefault("embed_dim", 768)


@register_model
def vit_conv_stem_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT with a four-layer convolutional stem (a token per 16 x 16 pixels); ViT-B shape by default.

    Args:
        pretrained: must be ``False``: no weights are published for this model.
        **kwargs: ``VisionTransformer`` arguments (``img_size``, ``in_chans``, ``embed_dim``, ``depth``, ...).
    """
    embed_dim = _vit_b_defaults(kwargs)
    stem = ConvStem(
        in_chans=kwargs.get("in_chans", 3),
        depth=4,
        channels=(embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim),
        stride=(2, 2, 2, 2),
        norm_layer=partial(nn.GroupNorm, num_groups=4),
    )
    return _vit_with_stem("vit_conv_stem_patch16", stem, pretrained, **kwargs)


@register_model
def vit_pooled_stem_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT whose stem pools 2 x 2 pixels, then runs six convolutions (a token per 16 x 16 input pixels);
    ViT-B shape by default (widths must be divisible by 32).

    Args:
        pretrained: must be ``False``: no weights are published for this model.
        **kwargs: ``VisionTransformer`` arguments (``img_size``, ``in_chans``, ``embed_dim``, ``depth``, ...).
    """
    embed_dim = _vit_b_defaults(kwargs)
    widths = (embed_dim // 4, embed_dim // 4, embed_dim // 2, embed_dim // 2, embed_dim, embed_dim)
    stem = ConvStem(
        in_chans=kwargs.get("in_chans", 3),
        depth=len(widths),
        channels=widths,
        stride=(2, 1, 2, 1, 2, 1),
        norm_layer=partial(nn.GroupNorm, num_groups=8),
        act_layer=nn.GELU,
    )
    return _vit_with_stem("vit_pooled_stem_patch16", nn.Sequential(nn.AvgPool2d(2), stem), pretrained, **kwargs)


@register_model
def vit_resnet_stem_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT behind the first three stages of a ResNet-18 at ``E/4, E/2, E`` widths (a token per 16 x 16 input
    pixels); ViT-B shape by default (widths must be divisible by 4).

    Args:
        pretrained: must be ``False``: no weights are published for this model.
        **kwargs: ``VisionTransformer`` arguments (``img_size``, ``in_chans``, ``embed_dim``, ``depth``, ...).
    """
    embed_dim = _vit_b_defaults(kwargs)
    quarter = embed_dim // 4
    # timm's ResNet stages: two BasicBlocks each, strides 1, 2, 2, a 1 x 1 shortcut where the shape changes
    stages, _ = make_blocks((BasicBlock,) * 3, (quarter, embed_dim // 2, embed_dim), (2, 2, 2), inplanes=quarter)
    stem = nn.Sequential(
        nn.Conv2d(kwargs.get("in_chans", 3), quarter, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(quarter),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        *(stage for _, stage in stages),
    )
    return _vit_with_stem("vit_resnet_stem_patch16", stem, pretrained, **kwargs)
