"""The entity-driven masked language modelling term of ``mmclip`` (Wu et al.): cross-entropy of the
image-supported MLM head (:mod:`monai_mlip.networks.mlm`) on the masked entity tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from monai_mlip.losses.terms import ObjectiveTerm, SampleWeights, TermOutput

__all__ = ["EntityMLM"]


class EntityMLM(ObjectiveTerm):
    """``[K, V]`` logits and ``[K]`` labels (``-100``: ignored) -> mean cross-entropy over the masked tokens.

    Computed per process (the token count differs between processes, so nothing is gathered); DDP's
    gradient averaging makes it the mean of the processes' means.
    """

    name = "entity_mlm"
    parts = ("mlm",)
    takes_unpaired = True

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        logits, labels = output.mlm_logits.float(), output.mlm_labels
        counted = (labels != -100).sum()
        loss = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum") / counted.clamp(min=1)
        with torch.no_grad():
            correct = ((logits.argmax(-1) == labels) & (labels != -100)).sum() / counted.clamp(min=1)
        return TermOutput(loss, {"mlm_accuracy": correct.float()})
