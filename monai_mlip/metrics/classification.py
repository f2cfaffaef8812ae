"""Threshold metrics of a binary classifier beside its ROC AUC (MONAI's ``compute_roc_auc``)."""

from __future__ import annotations

import torch

__all__ = ["best_f1"]


def best_f1(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The best F1 over all thresholds of the precision-recall curve, and the accuracy at that threshold.

    Args:
        scores: ``[N]`` scores (any monotone scale: logits or probabilities).
        labels: ``[N]`` 0/1 truth.

    Returns:
        ``f1``, ``threshold`` (predict positive when ``score >= threshold``) and ``accuracy``.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    ranked, truth = scores[order].double(), labels[order].double()
    true_positives = truth.cumsum(0)
    predicted = torch.arange(1, len(truth) + 1, dtype=torch.float64)
    last_of_tie = torch.ones_like(ranked, dtype=torch.bool)  # a threshold takes every tied score or none
    last_of_tie[:-1] = ranked[1:] != ranked[:-1]
    f1 = 2 * true_positives / (predicted + truth.sum())
    f1 = torch.where(last_of_tie, f1, torch.zeros_like(f1))
    best = int(torch.argmax(f1))
    correct = true_positives[best] + (len(truth) - predicted[best]) - (truth.sum() - true_positives[best])
    return {"f1": float(f1[best]), "threshold": float(ranked[best]), "accuracy": float(correct / len(truth))}
