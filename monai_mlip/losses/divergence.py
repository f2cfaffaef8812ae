"""The divergence term of ``mlip_kg``: global contrastive targets softened by a divergence encoder.

Li et al. (CVPR 2024) pair the global image-report contrastive term with a "divergence encoder"; the paper's
equations were not available to this project, so this is a reconstruction, stated here: the divergence
encoder is an exponential moving average of both towers (``use_teacher``), and this term is the
cross-entropy between its image-to-report (and report-to-image) similarity distribution over the global
batch and the model's (ALBEF's momentum distillation). Reports that say the same thing as the positive
("No acute cardiopulmonary process") get some of the target mass instead of being pushed away as
negatives. With the ``global`` term beside it at weight 1 and this one at ``alpha``, the objective is
ALBEF's ``(1 - alpha) * hard + alpha * soft`` up to a factor.
"""

from __future__ import annotations

from typing import Any

import torch

from monai_mlip.losses.contrastive import gather_batch, similarity_logits
from monai_mlip.losses.terms import ObjectiveTerm, SampleWeights, TermOutput

__all__ = ["DivergenceDistillation"]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_j targets_ij log softmax(logits)_ij`` (``[B, B']`` each)."""
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


class DivergenceDistillation(ObjectiveTerm):
    """Soft-target InfoNCE against the divergence encoder's similarities: ``[B, D]`` embeddings -> a scalar.

    Args:
        teacher_scale: the teacher logits' inverse temperature; ``None`` uses the model's current (detached)
            global logit scale.
    """

    name = "divergence"
    parts = ("teacher",)

    def __init__(self, teacher_scale: float | None = None) -> None:
        super().__init__()
        self.teacher_scale = teacher_scale

    def forward(self, output: Any, sample_weights: SampleWeights | None = None) -> TermOutput:
        logits = similarity_logits(
            gather_batch(output.image_embeds), gather_batch(output.text_embeds), output.logit_scale
        )
        scale = output.logit_scale.detach() if self.teacher_scale is None else self.teacher_scale
        with torch.no_grad():
            teacher = similarity_logits(
                gather_batch(output.teacher_image_embeds), gather_batch(output.teacher_text_embeds), scale
            )
        loss = (
            soft_cross_entropy(logits, teacher.softmax(1)) + soft_cross_entropy(logits.t(), teacher.t().softmax(1))
        ) / 2
        agreement = (teacher.argmax(1) == torch.arange(len(teacher), device=teacher.device)).float().mean()
        return TermOutput(loss, {"teacher_top1": agreement})
