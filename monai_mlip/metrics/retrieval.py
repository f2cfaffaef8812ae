"""Image-to-report and report-to-image retrieval recall."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["retrieval_recall"]


def _recall(similarity: torch.Tensor, match: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of rows whose best-scoring correct column ranks within the top ``k``."""
    best_correct = similarity.masked_fill(~match, float("-inf")).max(dim=1, keepdim=True).values
    rank = (similarity > best_correct).sum(dim=1)  # columns strictly better than the best correct one
    return {k: float((rank < k).float().mean()) for k in ks}


def retrieval_recall(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, ids: Sequence[str] | None = None, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Recall@k in both directions.

    Args:
        image_embeds: ``[B, D]`` normalised image embeddings.
        text_embeds: ``[B, D]`` normalised report embeddings, row ``i`` the report of image ``i``.
        ids: study ids: a report is correct for every image of its study (``None``: only the diagonal).
        ks: the ``k`` values.

    Returns:
        ``{"i2t_R@1": ..., "i2t_R@5": ..., "t2i_R@1": ..., "t2i_R@5": ...}``.
    """
    similarity = image_embeds.float() @ text_embeds.float().t()
    if ids is None:
        match = torch.eye(len(similarity), dtype=torch.bool, device=similarity.device)
    else:
        codes = {value: code for code, value in enumerate(dict.fromkeys(ids))}
        labels = torch.tensor([codes[value] for value in ids], device=similarity.device)
        match = labels[:, None] == labels[None, :]
    out = {f"i2t_R@{k}": v for k, v in _recall(similarity, match, ks).items()}
    out.update({f"t2i_R@{k}": v for k, v in _recall(similarity.t(), match.t(), ks).items()})
    return out
