"""Vision tower: a timm Vision Transformer that encodes only a random subset of patches.

The tower wraps any timm :class:`~timm.models.vision_transformer.VisionTransformer` (``trunk``) and
runs its own stages in order (patch embedding, position embedding and prefix tokens, pre-norm, blocks,
final norm, pooling) with an MAE-style per-sample shuffle in between: every sample keeps
``int(P * (1 - mask_ratio))`` of its ``P`` patches, chosen by sorting random noise, and the blocks see
the prefix (class / register) tokens plus the visible patches only. The masking ratio is a call
argument, so the same tower serves masked pre-training and full-image evaluation. A convolutional stem
(timm ``HybridEmbed``, e.g. :mod:`monai_mlip.networks.conv_stem`) sees a few pixels past its token's patch,
so its input has the hidden patches set to 0 (the normalised mean) first: no token carries any pixel of a
hidden patch, as with a patchify convolution.

Pretrained weights come from a local file or the local timm / Hugging Face cache
(:func:`monai_mlip.hub.resolve_timm_weights`); timm's own loader adapts them (3-channel weights to a
1-channel grey stem by summing the patch-embedding kernel over colour channels, position embeddings
resampled to the tower's image size, classifier dropped).

The trunk's ``pretrained_cfg`` says what the tower takes: ``input_size`` ``(in_chans, size, size)`` and the
``mean`` / ``std`` its weights expect (the weights' own, e.g. 0.5 / 0.5 for ``augreg2_in21k_ft_in1k``; the
project's chest X-ray statistics :data:`~monai_mlip.data.CXR_MEAN` / ``CXR_STD`` for a tower trained from
scratch), so ``timm.data.resolve_data_config(model=tower.trunk)`` returns the truth and
:attr:`VisionTower.normalization` gives the preprocessing its intensity normalisation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import timm
import torch
from timm.layers import HybridEmbed
from timm.models import load_state_dict
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

from monai_mlip.data.transforms import CXR_MEAN, CXR_STD
from monai_mlip.hub import resolve_timm_weights
from monai_mlip.networks import conv_stem  # noqa: F401  (registers the conv-stem ViTs with timm)

__all__ = ["VisionFeatures", "VisionTower", "num_visible", "random_patch_mask", "uniform_noise"]


@dataclass
class VisionFeatures:
    """Outputs of :class:`VisionTower` (``E`` = trunk width, ``P`` = patches in the grid, ``N`` = visible).

    Attributes:
        global_features: ``[B, E]`` the trunk's pooled features (class token or mean of visible patches,
            as the timm model's ``global_pool`` says), before any projection.
        patch_features: ``[B, N, E]`` final-layer features of the visible patches, in grid order.
        patch_index: ``[B, N]`` long, row-major grid index of each visible patch.
        visible: ``[B, P]`` bool, ``True`` where the patch was kept.
    """

    global_features: torch.Tensor
    patch_features: torch.Tensor
    patch_index: torch.Tensor
    visible: torch.Tensor


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """``N = int(P * (1 - mask_ratio))``, the patches a masked view keeps (the same for every sample)."""
    return int(num_patches * (1.0 - mask_ratio))


def uniform_noise(
    shape: tuple[int, ...], device: torch.device | str | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform ``[0, 1)`` noise of ``shape`` on ``device``, drawn on the generator's device when one is given
    (a CPU generator cannot draw on a GPU), so a seeded draw is the same wherever the model runs."""
    noise_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=noise_device).to(device)


def random_patch_mask(
    batch_size: int,
    num_patches: int,
    mask_ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pick the visible patches of every sample by sorting random noise (MAE's per-sample shuffle).

    Args:
        batch_size: ``B``.
        num_patches: ``P``.
        mask_ratio: fraction of patches to hide, in ``[0, 1)``; ``int(P * (1 - mask_ratio))`` are kept.
        device: device of the returned indices.
        generator: source of the noise (the noise is drawn on the generator's device, then moved).
        noise: ``[B, P]`` noise to use instead of drawing it; the lowest values are kept.

    Returns:
        ``[B, N]`` long, the kept grid indices of each sample in ascending order.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep = num_visible(num_patches, mask_ratio)
    if noise is None:
        noise = uniform_noise((batch_size, num_patches), device, generator)
    elif noise.shape != (batch_size, num_patches):
        raise ValueError(f"noise must have shape {(batch_size, num_patches)}, got {tuple(noise.shape)}")
    kept = torch.argsort(noise.to(device), dim=1)[:, :keep]
    return kept.sort(dim=1).values


def _check_weights_fit(trunk: VisionTransformer, weights_file: str | os.PathLike, model_name: str) -> None:
    """Raise if ``weights_file`` leaves any trunk parameter unset. timm loads pretrained weights without
    ``strict`` whenever the classifier differs (the tower has none), so weights of another architecture would
    otherwise load in part, with only a log line, and leave the rest at random initialisation."""
    state = checkpoint_filter_fn(load_state_dict(str(weights_file)), trunk)
    missing = sorted(set(trunk.state_dict()) - set(state))
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise ValueError(f"{weights_file} does not fit {model_name}: it has no weights for {shown}")


class VisionTower(nn.Module):
    """A timm ViT that can encode a random subset of its patches.

    Args:
        model_name: a timm model name whose class is (a subclass of) ``VisionTransformer``, e.g.
            ``vit_base_patch16_224``, or ``vit_conv_stem_patch16`` / ``vit_pooled_stem_patch16`` /
            ``vit_resnet_stem_patch16`` (:mod:`monai_mlip.networks.conv_stem`).
        weights: ``None``/``False`` for random initialisation; a local weights file; or ``True`` for the
            model's default pretrained weights from the local cache (see :mod:`monai_mlip.hub`).
        image_size: side of the square input.
        in_chans: channels of the stem; 1 for grey radiographs. 3-channel pretrained weights are
            adapted by timm (kernel summed over colour channels).
        **timm_kwargs: further ``timm.create_model`` arguments (``embed_dim``, ``depth``, ``num_heads``,
            ``class_token``, ``global_pool``, ``fc_norm``, ``drop_path_rate``, ...).

    Raises:
        PretrainedNotFoundError: pretrained weights were asked for and no local copy exists.
        TypeError: the timm model is not a Vision Transformer.
        ValueError: the weights file leaves part of the trunk unset (another architecture's weights).
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch16_224",
        weights: str | os.PathLike | bool | None = None,
        image_size: int = 224,
        in_chans: int = 1,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        weights_file = resolve_timm_weights(model_name, weights)
        if timm_kwargs.get("patch_drop_rate"):
            raise ValueError("patch_drop_rate is not supported: the tower does its own patch masking")
        self.trunk = timm.create_model(
            model_name,
            pretrained=weights_file is not None,
            pretrained_cfg_overlay={"file": weights_file} if weights_file is not None else None,
            num_classes=0,
            img_size=image_size,
            in_chans=in_chans,
            **timm_kwargs,
        )
        if not isinstance(self.trunk, VisionTransformer):
            raise TypeError(f"{model_name} is a {type(self.trunk).__name__}, not a timm VisionTransformer")
        if weights_file is not None:
            _check_weights_fit(self.trunk, weights_file, model_name)
        self.model_name = model_name
        self.in_chans = in_chans
        self.trunk.pretrained_cfg = self._truthful_cfg(weights_file is not None)

    def _truthful_cfg(self, pretrained: bool) -> dict[str, Any]:
        """The trunk's ``pretrained_cfg`` with this tower's channels, size and normalisation."""
        cfg = dict(self.trunk.pretrained_cfg or {})
        mean, std = (cfg.get("mean"), cfg.get("std")) if pretrained else (None, None)
        if mean is None or std is None:
            mean, std = (CXR_MEAN,), (CXR_STD,)
        if len(mean) != self.in_chans:  # a grey stem from colour weights: the channels' average
            mean, std = (sum(mean) / len(mean),) * self.in_chans, (sum(std) / len(std),) * self.in_chans
        cfg.update(input_size=(self.in_chans, self.image_size, self.image_size), mean=tuple(mean), std=tuple(std))
        return cfg

    @property
    def normalization(self) -> tuple[float, float]:
        """``(mean, std)`` for grey ``[1, H, W]`` images in ``[0, 1]`` (the channels' average for a colour stem,
        whose input repeats the grey channel)."""
        cfg = self.trunk.pretrained_cfg
        return sum(cfg["mean"]) / len(cfg["mean"]), sum(cfg["std"]) / len(cfg["std"])

    @property
    def embed_dim(self) -> int:
        """Width ``E`` of the trunk's features."""
        return self.trunk.embed_dim

    @property
    def image_size(self) -> int:
        """Side of the square input image."""
        return int(self.trunk.patch_embed.img_size[0])

    @property
    def patch_size(self) -> int:
        """Side of the square of pixels a token covers (a convolutional stem's total stride)."""
        return self.image_size // self.grid_size[0]

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid ``(rows, columns)``."""
        return tuple(int(g) for g in self.trunk.patch_embed.grid_size)

    @property
    def num_patches(self) -> int:
        """``P``, patches in the grid."""
        return int(self.trunk.patch_embed.num_patches)

    def prepare_input(self, image: torch.Tensor) -> torch.Tensor:
        """Match the image's channels to the stem: a grey ``[B, 1, H, W]`` image is repeated for an RGB stem.

        Raises:
            ValueError: the image is not ``[B, C, H, W]`` with ``C`` equal to ``in_chans`` or 1.
        """
        if image.ndim != 4 or image.shape[1] not in (1, self.in_chans):
            raise ValueError(f"expected an image of shape [B, {self.in_chans} (or 1), H, W], got {tuple(image.shape)}")
        return image.expand(-1, self.in_chans, -1, -1) if image.shape[1] != self.in_chans else image

    def _pixel_mask(self, visible: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` visible patches -> ``[B, 1, H, W]``, 1 on the pixels of visible patches."""
        rows, cols = self.grid_size
        grid = visible.view(-1, 1, rows, cols)
        return grid.repeat_interleave(self.patch_size, dim=2).repeat_interleave(self.patch_size, dim=3)

    def forward(
        self,
        image: torch.Tensor,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> VisionFeatures:
        """Encode the visible patches of each image.

        Args:
            image: ``[B, C, H, W]`` with ``C`` = ``in_chans`` (or 1, repeated to ``in_chans``).
            mask_ratio: fraction of patches to hide per sample (0: keep all).
            generator: random source of the mask (reproducible masking).
            noise: ``[B, P]`` explicit mask noise (lowest values kept), overriding ``generator``.
        """
        trunk = self.trunk
        pixels = self.prepare_input(image)
        batch, num_patches, device = pixels.shape[0], self.num_patches, pixels.device
        masked = mask_ratio > 0 or noise is not None
        if masked:
            patch_index = random_patch_mask(batch, num_patches, mask_ratio, device, generator, noise)
        else:
            patch_index = torch.arange(num_patches, device=device).expand(batch, -1)
        # the tensor-source form of scatter: TorchScript tracing rejects a Python bool value
        hidden = torch.zeros(batch, num_patches, dtype=torch.bool, device=device)
        visible = hidden.scatter(1, patch_index, torch.ones_like(patch_index, dtype=torch.bool))
        if masked and isinstance(trunk.patch_embed, HybridEmbed):
            pixels = pixels * self._pixel_mask(visible).to(pixels.dtype)
        x = trunk._pos_embed(trunk.patch_embed(pixels))
        prefix, patches = x[:, : trunk.num_prefix_tokens], x[:, trunk.num_prefix_tokens :]
        if masked:
            patches = patches.gather(1, patch_index.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        x = trunk.norm_pre(torch.cat([prefix, patches], dim=1))
        x = trunk.norm(trunk.blocks(x))
        return VisionFeatures(
            global_features=trunk.forward_head(x, pre_logits=True),
            patch_features=x[:, trunk.num_prefix_tokens :],
            patch_index=patch_index,
            visible=visible,
        )
