"""The MLIP training objective ``L = lambda_global L_global + lambda_local L_local + lambda_mip L_mip``.

- ``L_global``: symmetric InfoNCE between image and report embeddings over the global batch.
- ``L_local``: symmetric InfoNCE over the patch-sentence OT similarities ``S_ij``
  (:func:`~monai_mlip.losses.patch_sentence_similarity`) scaled by the local logit scale.
- ``L_mip``: MSE of the decoder on the hidden patches.

Both contrastive terms are SIE-weighted when ``use_sie`` (:func:`~monai_mlip.losses.contrastive_loss`).

Distributed: the loss gathers what it needs from every process (embeddings, sentence masks, SIE
weights) with gradients. Each process solves the OT problems of its own images against all reports
(``B/W x B`` problems instead of ``B x B``) and gathers the rows of ``S``; every process then holds the
full ``[B, B]`` logits and reports the loss of the whole global batch, and DDP's gradient averaging
gives the gradients of one process on the concatenated batch. ``L_mip`` is likewise computed on the
gathered predictions and targets of the hidden patches.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from monai_mlip.losses.contrastive import contrastive_loss, gather_batch
from monai_mlip.losses.mip import masked_patch_loss
from monai_mlip.losses.ot import patch_sentence_similarity

__all__ = ["MLIPLoss"]


class MLIPLoss(nn.Module):
    """Global contrastive + patch-sentence OT contrastive + masked image prediction.

    Args:
        lambda_global: weight of the global contrastive term.
        lambda_local: weight of the patch-sentence term (0 skips the OT).
        lambda_mip: weight of the masked image prediction term (0 skips it).
        use_sie: weight both contrastive terms by the SIE integrity ``w`` (MaCo's scheme).
        sie_patch_marginal: OT patch marginal ``softmax(phi)`` over the visible patches instead of uniform.
        ot_epsilon: entropic regularisation of the OT.
        ot_max_iter: Sinkhorn iteration cap.
        ot_tol: Sinkhorn marginal tolerance.
        ot_plan_grad: ``"detach"`` (default: plan constant, exact envelope gradient), ``"last_step"`` or
            ``"autodiff"``; see :mod:`monai_mlip.losses.ot`.
        ot_method: ``"auto"``, ``"sinkhorn"`` (scaling domain) or ``"log_sinkhorn"``; see :mod:`monai_mlip.losses.ot`.
    """

    def __init__(
        self,
        lambda_global: float = 1.0,
        lambda_local: float = 1.0,
        lambda_mip: float = 1.0,
        use_sie: bool = True,
        sie_patch_marginal: bool = False,
        ot_epsilon: float = 0.05,
        ot_max_iter: int = 100,
        ot_tol: float = 1e-5,
        ot_plan_grad: str = "detach",
        ot_method: str = "auto",
    ) -> None:
        super().__init__()
        self.lambda_global = lambda_global
        self.lambda_local = lambda_local
        self.lambda_mip = lambda_mip
        self.use_sie = use_sie
        self.sie_patch_marginal = sie_patch_marginal
        self.ot_epsilon = ot_epsilon
        self.ot_max_iter = ot_max_iter
        self.ot_tol = ot_tol
        self.ot_plan_grad = ot_plan_grad
        self.ot_method = ot_method

    def local_similarity(self, output: Any) -> torch.Tensor:
        """``[B_local, B]`` OT similarities of this process's images with the reports of the global batch."""
        patches = output.patch_embeds
        patch_mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
        weights = output.patch_scores.detach().softmax(dim=1) if self.sie_patch_marginal else None
        return patch_sentence_similarity(
            patches,
            patch_mask,
            gather_batch(output.sentence_embeds),
            gather_batch(output.sentence_mask),
            epsilon=self.ot_epsilon,
            max_iter=self.ot_max_iter,
            tol=self.ot_tol,
            patch_weights=weights,
            plan_grad=self.ot_plan_grad,
            method=self.ot_method,
        )

    def forward(self, output: Any) -> dict[str, torch.Tensor]:
        """Compute the loss terms.

        Args:
            output: an :class:`~monai_mlip.networks.MLIPOutput` (or any object with its fields).

        Returns:
            ``loss`` (the weighted total, to back-propagate), ``loss_global``, ``loss_local``, ``loss_mip``,
            and detached statistics: ``integrity`` (mean SIE weight of the global batch), ``logit_scale``,
            ``local_logit_scale``.
        """
        integrity = gather_batch(output.integrity if self.use_sie else output.integrity.detach())
        weights = integrity if self.use_sie else None
        images, texts = gather_batch(output.image_embeds), gather_batch(output.text_embeds)
        loss_global = contrastive_loss(output.logit_scale * images @ texts.t(), weights)
        zero = loss_global.new_zeros(())
        loss_local = zero
        if self.lambda_local:
            similarity = gather_batch(self.local_similarity(output))
            loss_local = contrastive_loss(output.local_logit_scale * similarity, weights)
        loss_mip = zero
        if self.lambda_mip:
            loss_mip = masked_patch_loss(gather_batch(output.mip_pred), gather_batch(output.mip_target))
        total = self.lambda_global * loss_global + self.lambda_local * loss_local + self.lambda_mip * loss_mip
        return {
            "loss": total,
            "loss_global": loss_global,
            "loss_local": loss_local,
            "loss_mip": loss_mip,
            "integrity": integrity.detach().mean(),
            "logit_scale": output.logit_scale.detach(),
            "local_logit_scale": output.local_logit_scale.detach(),
        }
