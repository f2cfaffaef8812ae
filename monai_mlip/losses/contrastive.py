"""Symmetric InfoNCE with semantic-integrity weighting, and batch gathering across processes.

Distributed training follows open_clip's ``ClipLoss(local_loss=False, gather_with_grad=True)``: every
process gathers the embeddings of the whole global batch with gradients
(``torch.distributed.nn.functional.all_gather``, whose backward sums the gradients of all processes into
the owner's), computes the full ``[B, B]`` logits and the full loss. Each process thus reports the loss of
the whole batch, and after DDP averages the parameter gradients they equal those of one process on the
concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch.nn import functional as F

__all__ = ["contrastive_loss", "gather_batch", "global_contrastive_loss"]


def gather_batch(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all processes along dimension 0 (itself when no process group exists).

    Floating-point tensors are gathered with gradients; others (masks, indices) without. Every process
    must pass a tensor of the same shape.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if tensor.is_floating_point():
        return torch.cat(dist_nn.all_gather(tensor), dim=0)
    carrier = tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor
    parts = [torch.empty_like(carrier) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, carrier.contiguous())
    return torch.cat(parts, dim=0).to(tensor.dtype)


def contrastive_loss(logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a square logit matrix whose diagonal holds the positive pairs.

    With SIE ``weights`` (MaCo's scheme) the loss is the mean of two symmetric terms: one where row ``k``
    of both directions' logits is multiplied by ``w_k / mean(w)`` (a per-sample inverse temperature relative
    to the batch, which receives the gradient that trains ``phi``), and one where the per-sample cross-entropies are
    averaged with weights ``w.detach()`` (normalised by their sum). With ``w = 1`` it equals plain InfoNCE.

    Args:
        logits: ``[B, B]``, ``logits[i, j]`` = scaled similarity of image ``i`` and text ``j``.
        weights: ``[B]`` positive SIE weights of the pairs, or ``None``.

    Returns:
        A scalar.
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"expected square [B, B] logits, got {tuple(logits.shape)}")
    labels = torch.arange(logits.shape[0], device=logits.device)
    directions = (logits, logits.t())
    if weights is None:
        return sum(F.cross_entropy(x, labels) for x in directions) / 2
    # Normalised to mean 1 over the batch: SIE redistributes emphasis between samples. Unnormalised, shrinking
    # every w towards 0 flattens all logits and pulls the loss to log(B) without learning anything, a
    # shortcut the optimiser finds early in training from scratch (seen here: mean w 1.0 -> 0.45 in 120 steps).
    scale = (weights / weights.mean()).unsqueeze(1)
    scaled = sum(F.cross_entropy(x * scale, labels) for x in directions) / 2
    fixed = weights.detach()
    weighted = sum((F.cross_entropy(x, labels, reduction="none") * fixed).sum() for x in directions) / (2 * fixed.sum())
    return (scaled + weighted) / 2


def global_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor | float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """CLIP loss over the global batch (gathered across processes with gradients when a group exists).

    Args:
        image_embeds: ``[B, D]`` L2-normalised, this process's part of the batch.
        text_embeds: ``[B, D]`` L2-normalised, paired with ``image_embeds`` row by row.
        logit_scale: inverse temperature (already exponentiated).
        weights: ``[B]`` SIE weights of this process's pairs, or ``None``.

    Returns:
        The loss of the whole global batch (the same on every process).
    """
    images, texts = gather_batch(image_embeds), gather_batch(text_embeds)
    logits = logit_scale * images @ texts.t()
    return contrastive_loss(logits, None if weights is None else gather_batch(weights))
