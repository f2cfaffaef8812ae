"""Masked image prediction (MIP): a light MAE-style decoder and its per-patch-normalised pixel targets.

The decoder embeds the encoder's visible patch features, puts a shared learnt mask token at every
hidden grid position, adds fixed 2D sine-cosine positions, runs a few timm transformer blocks and
predicts the pixels of every patch. Targets are the patch pixels normalised per patch to zero mean and
unit variance (MAE's ``norm_pix_loss``); the loss compares the two on the hidden patches only.
"""

from __future__ import annotations

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn
from torch.nn import functional as F

__all__ = ["MaskedImageDecoder", "patchify"]


def patchify(image: torch.Tensor, patch_size: int, normalize: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Cut images into flattened non-overlapping patches in row-major grid order.

    Args:
        image: ``[B, C, H, W]`` with ``H`` and ``W`` multiples of ``patch_size``.
        patch_size: ``p``.
        normalize: normalise each patch to zero mean and unit variance (MAE's ``norm_pix_loss``).
        eps: added to the variance.

    Returns:
        ``[B, P, C * p * p]``.
    """
    patches = F.unfold(image, kernel_size=patch_size, stride=patch_size).transpose(1, 2)
    if normalize:
        mean = patches.mean(dim=-1, keepdim=True)
        var = patches.var(dim=-1, keepdim=True)
        patches = (patches - mean) / (var + eps).sqrt()
    return patches


class MaskedImageDecoder(nn.Module):
    """MAE-style decoder predicting the pixels of every patch from the visible patch features.

    Args:
        encoder_dim: width ``E`` of the encoder's patch features.
        grid_size: patch grid ``(rows, columns)``.
        patch_size: ``p``.
        in_chans: image channels ``C`` to predict.
        decoder_dim: decoder width (divisible by 4 for the sine-cosine positions).
        depth: decoder blocks.
        num_heads: attention heads per block.
        mlp_ratio: feed-forward width over ``decoder_dim``.
    """

    def __init__(
        self,
        encoder_dim: int,
        grid_size: tuple[int, int],
        patch_size: int,
        in_chans: int = 1,
        decoder_dim: int = 512,
        depth: int = 2,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.patch_size = patch_size
        self.embed = nn.Linear(encoder_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer(
            "pos_embed", build_sincos2d_pos_embed(list(self.grid_size), decoder_dim).unsqueeze(0), persistent=False
        )
        self.blocks = nn.Sequential(
            *[Block(decoder_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=nn.LayerNorm) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch_size * patch_size * in_chans)

    def forward(self, patch_features: torch.Tensor, patch_index: torch.Tensor) -> torch.Tensor:
        """Predict every patch.

        Args:
            patch_features: ``[B, N, E]`` features of the visible patches.
            patch_index: ``[B, N]`` long grid indices of those patches.

        Returns:
            ``[B, P, C * p * p]`` predicted (normalised) pixels of every patch, in grid order.
        """
        x = self.embed(patch_features)
        batch, _, width = x.shape
        grid = self.mask_token.to(x.dtype).expand(batch, self.pos_embed.shape[1], width)
        grid = grid.scatter(1, patch_index.unsqueeze(-1).expand(-1, -1, width), x) + self.pos_embed
        return self.pred(self.norm(self.blocks(grid)))
