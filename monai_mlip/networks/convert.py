"""Conversion of the trained vision tower into stock MONAI networks (2D ``ViT`` and the encoder of ``UNETR``).

A timm ViT block and a MONAI ``TransformerBlock`` compute the same function (pre-norm attention and
MLP, exact GELU, fused ``qkv`` laid out as (q|k|v, head, head_dim)), so the weights map key by key:

=====================================  ==========================================
timm (``VisionTower.trunk``)           MONAI ``ViT``
=====================================  ==========================================
``patch_embed.proj.{weight,bias}``     ``patch_embedding.patch_embeddings.*``
``patch_embed.backbone.*`` (conv stem)  ``patch_embedding.patch_embeddings.*``
``pos_embed`` (patch part)             ``patch_embedding.position_embeddings``
``cls_token`` + ``pos_embed[:, :1]``   ``cls_token`` (MONAI adds no position to it)
``blocks.i.norm1`` / ``norm2``         ``blocks.i.norm1`` / ``norm2``
``blocks.i.attn.qkv``                  ``blocks.i.attn.qkv``
``blocks.i.attn.proj``                 ``blocks.i.attn.out_proj``
``blocks.i.mlp.fc1`` / ``fc2``         ``blocks.i.mlp.linear1`` / ``linear2``
``norm``                               ``norm``
=====================================  ==========================================

A tower shallower than the target (the tiny preset's 4 blocks into ``UNETR``'s fixed 12) is spread over
the target's blocks by :func:`block_places`; the blocks left over get zero output projections, which
makes a pre-norm block the identity, so the converted network still computes the tower's function.

A tower with a convolutional stem (:mod:`monai_mlip.networks.conv_stem`) has no single patchify
convolution: :func:`adopt_patch_embedding` gives the MONAI network a copy of the stem as its
``patch_embedding.patch_embeddings`` module (MONAI's ``PatchEmbeddingBlock`` flattens whatever
``[B, E, H/16, W/16]`` map that module returns), and the stem's weights then load like the others.

Details: MONAI's LayerNorms default to ``eps=1e-5`` and timm's to ``1e-6``; the converter sets the
target's ``eps`` to the source's. A 3-channel patch embedding converted to a 1-channel network is summed
over the colour channels (timm's ``adapt_input_conv``), which equals feeding the grey image replicated to
three channels. Position embeddings of another grid size are resampled (timm's ``resample_abs_pos_embed``).
``UNETR`` builds its ``ViT`` without a class token: a tower with one loses it (``cls_token`` is reported
unexpected and the patch features are no longer identical). LayerScale, QK-norm, pre-norm (``norm_pre``),
register tokens and a pooled-feature norm (``fc_norm``, timm's default for average pooling, in place of the
token ``norm`` MONAI always applies) have no MONAI counterpart: they are reported as unexpected keys
(hence the tiny preset's ``fc_norm=False``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from monai.networks.nets import ViT
from timm.layers import HybridEmbed, resample_abs_pos_embed
from timm.models._manipulate import adapt_input_conv
from torch import nn

from monai_mlip.networks.vision import VisionTower

__all__ = [
    "LoadResult",
    "adopt_patch_embedding",
    "block_places",
    "load_tower_weights",
    "load_vit_weights",
    "monai_vit_shape",
    "to_monai_vit",
    "vit_state_dict_for_monai",
]

_PATCH_EMBED = "patch_embed."  # every timm ViT's token embedding, whatever it holds (a convolution, a stem)
_STEM = "patch_embed.backbone."
_MONAI_PATCH_EMBED = "patch_embedding.patch_embeddings."
_BLOCK_KEYS = {
    "norm1": "norm1",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.out_proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.linear1",
    "mlp.fc2": "mlp.linear2",
}


class LoadResult(NamedTuple):
    """Keys of the MONAI network left at their initial values, and source keys that were not carried over."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _timm_prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The prefix of the one timm ViT in ``state_dict``: whatever precedes its ``patch_embed.*`` keys."""
    prefixes = set()
    for key in state_dict:
        prefix, found, _ = key.partition(_PATCH_EMBED)
        if found and (not prefix or prefix.endswith(".")):
            prefixes.add(prefix)
    if len(prefixes) != 1:
        raise ValueError(
            f"expected one timm ViT in the state dict (keys under one '<prefix>{_PATCH_EMBED}'), "
            f"found the prefixes {sorted(prefixes)}"
        )
    return prefixes.pop()


def adopt_patch_embedding(target: ViT, tower: VisionTower) -> None:
    """Give ``target`` (a MONAI ``ViT``, e.g. ``UNETR.vit``) a copy of the tower's convolutional stem as its
    patch-embedding module; a tower with a single patchify convolution leaves ``target`` as it is."""
    if isinstance(tower.trunk.patch_embed, HybridEmbed):
        target.patch_embedding.patch_embeddings = copy.deepcopy(tower.trunk.patch_embed.backbone)


def vit_state_dict_for_monai(
    state_dict: Mapping[str, torch.Tensor], target: ViT
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename and reshape a timm ViT state dict for a MONAI 2D ``ViT``.

    Args:
        state_dict: the weights of a timm ViT, under any prefix: a bare timm model, a
            :class:`VisionTower` (``trunk.``), an MLIP model or checkpoint (``vision.trunk.``), a DDP
            wrapper (``module.``); keys outside that prefix are ignored.
        target: the MONAI network that will receive the weights (its channels, grid and class token decide
            how the patch embedding, the positions and the class token are mapped).

    Returns:
        The MONAI state dict, and the source keys (without prefix) that have no MONAI counterpart.
    """
    prefix = _timm_prefix(state_dict)
    source = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    mapped: dict[str, torch.Tensor] = {}

    stem = [key for key in source if key.startswith(_STEM)]
    if stem:
        mapped.update((_MONAI_PATCH_EMBED + key[len(_STEM) :], source.pop(key)) for key in stem)
    else:
        conv = source.pop("patch_embed.proj.weight")
        in_channels = target.patch_embedding.patch_embeddings.in_channels
        mapped[_MONAI_PATCH_EMBED + "weight"] = adapt_input_conv(in_channels, conv, base_chans=conv.shape[1])
        if "patch_embed.proj.bias" in source:
            mapped[_MONAI_PATCH_EMBED + "bias"] = source.pop("patch_embed.proj.bias")

    num_patches = target.patch_embedding.n_patches
    cls_token = source.pop("cls_token", None)
    register = source.get("reg_token")  # left in the source: MONAI has no register tokens (reported)
    num_prefix = int(cls_token is not None) + (register.shape[1] if register is not None else 0)
    if "pos_embed" in source:
        pos_embed = source.pop("pos_embed")
        length = pos_embed.shape[1]
        embeds_prefix = length - num_prefix == num_patches or (
            length != num_patches and math.isqrt(length - num_prefix) ** 2 == length - num_prefix
        )
        prefix_pos = pos_embed[:, :num_prefix] if embeds_prefix else pos_embed[:, :0]
        patch_pos = pos_embed[:, prefix_pos.shape[1] :]
        if patch_pos.shape[1] != num_patches:
            side = math.isqrt(num_patches)
            patch_pos = resample_abs_pos_embed(patch_pos, [side, side], num_prefix_tokens=0)
        mapped["patch_embedding.position_embeddings"] = patch_pos
        if cls_token is not None and prefix_pos.shape[1]:
            cls_token = cls_token + prefix_pos[:, :1]  # timm puts the class token first
    if cls_token is not None:
        if hasattr(target, "cls_token"):
            mapped["cls_token"] = cls_token
        else:
            source["cls_token"] = cls_token  # reported: the target has no class token

    depth = len({key.split(".")[1] for key in source if key.startswith("blocks.")})
    places = block_places(depth, len(target.blocks))
    for index, place in enumerate(places):
        for timm_name, monai_name in _BLOCK_KEYS.items():
            for kind in ("weight", "bias"):
                key = f"blocks.{index}.{timm_name}.{kind}"
                if key in source:
                    mapped[f"blocks.{place}.{monai_name}.{kind}"] = source.pop(key)
    mapped.update(_identity_blocks(target, set(range(len(target.blocks))) - set(places)))
    for kind in ("weight", "bias"):
        if f"norm.{kind}" in source:
            mapped[f"norm.{kind}"] = source.pop(f"norm.{kind}")
    return mapped, sorted(source)


def block_places(depth: int, target_depth: int) -> list[int]:
    """Where each of ``depth`` source blocks goes among ``target_depth`` MONAI blocks.

    Equal depths map one to one. A shallower tower is spread evenly and ends on the last block (4 into 12:
    ``[2, 5, 8, 11]``, counting from 0), so ``UNETR``'s skips (``hidden_states_out[3]``, ``[6]``, ``[9]``)
    are the outputs of the tower's blocks 0, 1 and 2 rather than all of its last; the blocks between become
    identities (:func:`_identity_blocks`).
    A deeper tower keeps its first ``target_depth`` blocks (the rest are reported unexpected).
    """
    if depth >= target_depth:
        return list(range(target_depth))
    return [round((index + 1) * target_depth / depth) - 1 for index in range(depth)]


def _identity_blocks(target: ViT, indices: set[int]) -> dict[str, torch.Tensor]:
    """Weights that make the pre-norm blocks ``indices`` of ``target`` compute the identity.

    A block adds ``attn(norm1(x))`` and then ``mlp(norm2(x))`` to its input; with the attention's output
    projection and the MLP's last layer at zero both terms vanish, whatever the other weights. Those keep
    the target's initial values, so fine-tuning can grow the blocks from the identity.
    """
    weights = target.state_dict()
    identity = {}
    for index in indices:
        for name, value in weights.items():
            if name.startswith(f"blocks.{index}.") and "cross_attn" not in name:
                zero = name.endswith(
                    (".attn.out_proj.weight", ".attn.out_proj.bias", ".mlp.linear2.weight", ".mlp.linear2.bias")
                )
                identity[name] = torch.zeros_like(value) if zero else value.clone()
    return identity


def load_vit_weights(
    target: ViT, state_dict: Mapping[str, torch.Tensor], layer_norm_eps: float | None = 1e-6
) -> LoadResult:
    """Load timm ViT weights into a MONAI ``ViT`` (for example ``UNETR(spatial_dims=2, ...).vit``).

    Args:
        target: the MONAI ``ViT``; changed in place.
        state_dict: timm ViT weights under any prefix (see :func:`vit_state_dict_for_monai`), for
            example ``mlip.state_dict()`` or a pre-training checkpoint's model entry.
        layer_norm_eps: ``eps`` given to every LayerNorm of the target's blocks and final norm (timm's ViTs use 1e-6);
            ``None`` leaves MONAI's 1e-5.

    Returns:
        ``missing_keys`` (target parameters not in the source, leaving out the cross-attention norms MONAI
        blocks keep but do not use without cross-attention; an empty list means the whole encoder was
        loaded) and ``unexpected_keys`` (source parameters MONAI has no place for).

    Raises:
        ValueError: the patch sizes differ (``UNETR`` always uses 16), the source has a convolutional stem
            the target was not given (:func:`adopt_patch_embedding`), or the state dict holds no timm ViT.
    """
    mapped, unused = vit_state_dict_for_monai(state_dict, target)
    target_embedding = target.patch_embedding.patch_embeddings
    if _MONAI_PATCH_EMBED + "weight" in mapped:
        source_kernel = mapped[_MONAI_PATCH_EMBED + "weight"].shape[2:]
        target_kernel = target_embedding.weight.shape[2:]
        if source_kernel != target_kernel:
            raise ValueError(
                f"the source patch size {tuple(source_kernel)} differs from the target's {tuple(target_kernel)}"
            )
    elif isinstance(target_embedding, nn.Conv2d):
        raise ValueError(
            "the source tower has a convolutional stem and the target a single patchify convolution: "
            "call adopt_patch_embedding(target, tower) before loading"
        )
    result = target.load_state_dict(mapped, strict=False)
    # MONAI blocks always hold a LayerNorm for cross-attention; without cross-attention it is never used.
    unused_norms = {
        f"blocks.{index}.norm_cross_attn.{kind}"
        for index, block in enumerate(target.blocks)
        if not block.with_cross_attention
        for kind in ("weight", "bias")
    }
    missing = [key for key in result.missing_keys if key not in unused_norms]
    if layer_norm_eps is not None:  # the transformer's norms (a conv stem keeps its own)
        for module in [*target.blocks.modules(), target.norm]:
            if isinstance(module, nn.LayerNorm):
                module.eps = layer_norm_eps
    return LoadResult(missing, sorted(unused + list(result.unexpected_keys)))


def monai_vit_shape(tower: VisionTower) -> dict[str, Any]:
    """The arguments MONAI's ``ViT`` and ``UNETR`` take for the tower's shape: ``img_size``, ``hidden_size``,
    ``mlp_dim``, ``num_heads`` and ``qkv_bias``."""
    block = tower.trunk.blocks[0]
    return {
        "img_size": tower.image_size,
        "hidden_size": tower.embed_dim,
        "mlp_dim": block.mlp.fc1.out_features,
        "num_heads": block.attn.num_heads,
        "qkv_bias": block.attn.qkv.bias is not None,
    }


def load_tower_weights(target: ViT, tower: VisionTower) -> LoadResult:
    """Load ``tower`` into ``target`` (a MONAI ``ViT``, e.g. ``UNETR.vit``): its convolutional stem first where
    it has one (:func:`adopt_patch_embedding`), then its weights with its LayerNorm ``eps``."""
    adopt_patch_embedding(target, tower)
    return load_vit_weights(target, tower.trunk.state_dict(), layer_norm_eps=tower.trunk.blocks[0].norm1.eps)


def to_monai_vit(tower: VisionTower, in_channels: int | None = None) -> ViT:
    """Build a MONAI 2D ``ViT`` equal to the vision tower and load its weights.

    The network returns ``(features, hidden_states)``: for a tower without a class token ``features``
    are the ``[B, P, E]`` patch features of the tower (unmasked); with a class token the network has
    ``classification=True`` with an identity head, so ``features`` is the ``[B, E]`` normalised class
    token and the patch features are ``vit.norm(hidden_states[-1])[:, 1:]``.

    Args:
        tower: the trained vision tower.
        in_channels: input channels of the MONAI network (default: the tower's); 1 for a 3-channel tower
            sums its patch-embedding kernel over the channels.

    Raises:
        ValueError: the tower uses a feature MONAI's ViT lacks (LayerScale, QK-norm, pre-norm, register
            tokens, ``fc_norm``, a non-GELU MLP).
    """
    trunk = tower.trunk
    block = trunk.blocks[0]
    if not isinstance(block.mlp.act, nn.GELU):
        raise ValueError(f"MONAI's ViT uses GELU; the tower's MLP uses {type(block.mlp.act).__name__}")
    vit = ViT(
        in_channels=in_channels or tower.in_chans,
        patch_size=tower.patch_size,
        num_layers=len(trunk.blocks),
        proj_type="conv",
        pos_embed_type="learnable",
        classification=trunk.has_class_token,
        spatial_dims=2,
        post_activation=None,
        **monai_vit_shape(tower),
    )
    if trunk.has_class_token:
        vit.classification_head = nn.Identity()
    result = load_tower_weights(vit, tower)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{tower.model_name} has no exact MONAI ViT equivalent: MONAI lacks {result.unexpected_keys}, "
            f"the tower lacks {result.missing_keys}"
        )
    return vit.to(next(trunk.parameters()).device)
