"""Symmetric InfoNCE with semantic-integrity weighting, and batch gathering across processes.

Distributed training follows open_clip's ``ClipLoss(local_loss=False, gather_with_grad=True)``: every
process gathers the embeddings of the whole global batch with gradients (:class:`_GatherWithGrad`, whose
backward sums the gradients of all processes and hands each its own slice), computes the full ``[B, B]``
logits and the full loss. Each process thus reports the loss of the whole batch, and after DDP averages
the parameter gradients they equal those of one process on the concatenated batch.

Both contrastive terms are computed in float32 outside autocast: bf16 logits are coarse (33.33 becomes
33.25; steps of 0.5 above 64), enough to reorder close negatives.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.nn import functional as F

__all__ = [
    "DEFAULT_WEIGHT_RANGE",
    "contrastive_loss",
    "gather_batch",
    "global_contrastive_loss",
    "relative_weights",
    "similarity_logits",
]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dimension 0 whose backward returns each process the summed gradient of its slice.

    Written here rather than taken from ``torch.distributed.nn.functional.all_gather``: that function is
    deprecated in current torch (it warns on every call), and on gloo its backward scatters a
    non-contiguous incoming gradient to the wrong places (the OT term produces one when no padded sentence
    column is trimmed). Here the gradient is made contiguous before the collective.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()  # a copy when the autograd graph hands over a strided view
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_batch(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all processes along dimension 0 (itself when no process group exists).

    Floating-point tensors are gathered with gradients; others (masks, indices) without. Every process
    must pass a tensor of the same shape.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if tensor.is_floating_point():
        return _GatherWithGrad.apply(tensor)
    carrier = tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor
    parts = [torch.empty_like(carrier) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, carrier.contiguous())
    return torch.cat(parts, dim=0).to(tensor.dtype)


DEFAULT_WEIGHT_RANGE = (0.5, 2.0)


def relative_weights(weights: torch.Tensor, weight_range: tuple[float, float] = DEFAULT_WEIGHT_RANGE) -> torch.Tensor:
    """SIE weights relative to the batch, ``clamp(w / mean(w), low, high)``: ``[B]`` -> ``[B]``.

    Normalised to mean 1: SIE redistributes emphasis between samples. Unnormalised, shrinking every ``w``
    towards 0 flattens all logits and pulls the loss to ``log(B)`` without learning anything, a shortcut the
    optimiser finds early in training from scratch. Bounded: ``w / mean(w)`` multiplies a sample's logits
    and could otherwise reach ``B`` (one sample's inverse temperature ``B`` times the others'); outside the
    range a sample's weight is constant (no gradient to ``phi`` from it).
    """
    low, high = weight_range
    if not 0 < low <= 1 <= high:
        raise ValueError(f"weight_range must satisfy 0 < low <= 1 <= high, got {weight_range}")
    return (weights / weights.mean()).clamp(low, high)


def contrastive_loss(
    logits: torch.Tensor,
    weights: torch.Tensor | None = None,
    weight_range: tuple[float, float] = DEFAULT_WEIGHT_RANGE,
) -> torch.Tensor:
    """Symmetric InfoNCE over a square logit matrix whose diagonal holds the positive pairs.

    With SIE ``weights`` (MaCo's scheme) the loss is the mean of two symmetric terms, with
    ``r = relative_weights(weights, weight_range)``: one where row ``k`` of both directions' logits is
    multiplied by ``r_k`` (a per-sample inverse temperature relative to the batch, which receives the
    gradient that trains ``phi``), and one where the per-sample cross-entropies are averaged with weights
    ``r.detach()`` (normalised by their sum). With ``w = 1`` it equals plain InfoNCE.

    Args:
        logits: ``[B, B]``, ``logits[i, j]`` = scaled similarity of image ``i`` and text ``j``.
        weights: ``[B]`` positive SIE weights of the pairs, or ``None``.
        weight_range: bounds of the relative weights ``w / mean(w)``.

    Returns:
        A scalar.
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"expected square [B, B] logits, got {tuple(logits.shape)}")
    labels = torch.arange(logits.shape[0], device=logits.device)
    directions = (logits, logits.t())
    if weights is None:
        return sum(F.cross_entropy(x, labels) for x in directions) / 2
    relative = relative_weights(weights, weight_range)
    scale = relative.unsqueeze(1)
    scaled = sum(F.cross_entropy(x * scale, labels) for x in directions) / 2
    fixed = relative.detach()
    weighted = sum((F.cross_entropy(x, labels, reduction="none") * fixed).sum() for x in directions) / (2 * fixed.sum())
    return (scaled + weighted) / 2


def similarity_logits(images: torch.Tensor, texts: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """``[B, D]`` x ``[B', D]`` embeddings -> ``[B, B']`` float32 scaled cosine logits, computed outside autocast."""
    with torch.autocast(images.device.type, enabled=False):
        scale = logit_scale.float() if isinstance(logit_scale, torch.Tensor) else logit_scale
        return scale * images.float() @ texts.float().t()


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
    logits = similarity_logits(gather_batch(image_embeds), gather_batch(text_embeds), logit_scale)
    return contrastive_loss(logits, None if weights is None else gather_batch(weights))
