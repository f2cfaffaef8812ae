"""The knowledge-guided terms of ``mlip_kg`` (Li et al., CVPR 2024), reconstructed from the paper's abstract.

- :class:`TokenKnowledgePatch` (``knowledge_local``): the tokens of a report that name a concept of the
  knowledge file, fused with that concept's knowledge embedding, form a query; the query attends over the
  patches of every image of the global batch, and the attended patch feature of its own image must be
  the most similar (InfoNCE over images, one row per (report, concept) mention). Choices left open by the
  paper and made here: the fusion is the normalised sum of the mention embedding and the knowledge
  embedding (``fusion="sum"``; ``"token"`` or ``"knowledge"`` use one of them), the attention is a softmax
  of cosine similarities at ``temperature``, and the contrast runs from mentions to images (an image has
  several positive mentions, so the other direction is not a one-hot problem).
- :class:`KnowledgeCategoryContrast` (``knowledge_category``): images (and reports) are contrasted with
  the knowledge embeddings as prototypes: the target of a sample is the uniform distribution over the
  concepts its report asserts (``level="concept"``), or over their expert categories, a category's
  prototype being the normalised mean of its concepts' embeddings (``level="category"``). MGCA's prototype
  alignment is the nearest public relative; here the prototypes come from expert knowledge, not clustering.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from monai_mlip.losses.contrastive import gather_batch
from monai_mlip.losses.divergence import soft_cross_entropy
from monai_mlip.losses.terms import ObjectiveTerm, SampleWeights, TermOutput

__all__ = ["KnowledgeCategoryContrast", "TokenKnowledgePatch"]


class TokenKnowledgePatch(ObjectiveTerm):
    """Mention-to-image InfoNCE through knowledge-guided patch attention.

    Inputs: ``concept_embeds`` ``[B, C, D]`` with ``concept_mask`` ``[B, C]``, ``knowledge_embeds``
    ``[C, D]``, ``patch_embeds`` ``[B, N, D]``. Output: a scalar (0, attached, when no report names a concept).

    Args:
        temperature: softmax temperature of a query's attention over the patches.
        fusion: ``"sum"``, ``"token"`` or ``"knowledge"``: what the query is made of.
    """

    name = "knowledge_local"
    parts = ("knowledge",)

    def __init__(self, temperature: float = 0.1, fusion: str = "sum") -> None:
        super().__init__()
        if fusion not in ("sum", "token", "knowledge"):
            raise ValueError(f"fusion must be 'sum', 'token' or 'knowledge', got {fusion!r}")
        self.temperature, self.fusion = float(temperature), fusion

    def queries(self, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch's mention queries ``[M, D]`` and the index of each one's image ``[M]``."""
        mentions = gather_batch(output.concept_embeds)
        present = gather_batch(output.concept_mask)
        knowledge = output.knowledge_embeds.unsqueeze(0).expand_as(mentions)
        fused = {"sum": mentions + knowledge, "token": mentions, "knowledge": knowledge}[self.fusion]
        owner = torch.arange(len(present), device=present.device)[:, None].expand_as(present)
        return F.normalize(fused[present], dim=-1), owner[present]

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        queries, owner = self.queries(output)
        patches = output.patch_embeds  # this process's images
        attention = torch.einsum("md,bnd->bmn", queries, patches).div(self.temperature).softmax(dim=-1)
        attended = F.normalize(torch.einsum("bmn,bnd->bmd", attention, patches), dim=-1)
        scores = gather_batch((attended * queries.unsqueeze(0)).sum(-1))  # [B, M]: image b for mention m
        logits = output.knowledge_logit_scale.float() * scores.float()
        if not len(owner):
            return TermOutput(logits.sum() * 0.0, {"mentions": torch.tensor(0.0)})
        loss = F.cross_entropy(logits.t(), owner)
        return TermOutput(
            loss,
            {
                "mentions": torch.tensor(float(len(owner))),
                "knowledge_logit_scale": output.knowledge_logit_scale.detach(),
            },
        )


class KnowledgeCategoryContrast(ObjectiveTerm):
    """Soft cross-entropy of ``[B, D]`` embeddings against the knowledge prototypes, targets from ``concept_labels``.

    Args:
        level: ``"concept"`` (one prototype per concept) or ``"category"`` (per expert category).
        modalities: which global embeddings are contrasted: ``"image"``, ``"text"`` or both.
    """

    name = "knowledge_category"
    parts = ("knowledge",)

    def __init__(self, level: str = "concept", modalities: tuple[str, ...] = ("image", "text")) -> None:
        super().__init__()
        if level not in ("concept", "category"):
            raise ValueError(f"level must be 'concept' or 'category', got {level!r}")
        unknown = sorted(set(modalities) - {"image", "text"})
        if unknown or not modalities:
            raise ValueError(f"modalities must be among 'image', 'text', got {list(modalities)}")
        self.level, self.modalities = level, tuple(modalities)

    def prototypes_and_targets(self, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Prototypes ``[K, D]`` and per-sample target distributions ``[B, K]`` (rows without a label are 0)."""
        prototypes, labels = output.knowledge_embeds, gather_batch(output.concept_labels)
        if self.level == "category":
            groups = F.one_hot(output.concept_categories).to(prototypes.dtype)  # [C, K]
            prototypes = F.normalize(groups.t() @ prototypes, dim=-1)
            labels = (labels @ groups).clamp(max=1.0)
        return prototypes, labels / labels.sum(dim=1, keepdim=True).clamp(min=1.0)

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        prototypes, targets = self.prototypes_and_targets(output)
        labelled = targets.sum(dim=1) > 0
        scale = output.knowledge_logit_scale.float()
        losses = []
        for modality in self.modalities:
            embeds = gather_batch(output.image_embeds if modality == "image" else output.text_embeds)
            logits = scale * embeds.float() @ prototypes.float().t()
            losses.append(
                soft_cross_entropy(logits[labelled], targets[labelled]) if labelled.any() else logits.sum() * 0
            )
        return TermOutput(sum(losses) / len(losses), {})
