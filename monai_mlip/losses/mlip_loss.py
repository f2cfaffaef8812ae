"""The MLIP training objective ``L = lambda_global L_global + lambda_local L_local + lambda_mip L_mip``.

- ``L_global``: symmetric InfoNCE between image and report embeddings over the global batch.
- ``L_local``: symmetric InfoNCE over the patch-sentence OT similarities ``S_ij``
  (:func:`~monai_mlip.losses.patch_sentence_similarity`) scaled by the local logit scale.
- ``L_mip``: MSE of the decoder on the hidden patches.

The global term is SIE-weighted when ``use_sie``, the local term too when ``sie_local`` as well
(:func:`~monai_mlip.losses.contrastive_loss`; MaCo, where SIE comes from, weights its global term only).
Both contrastive terms are computed in float32 outside autocast. A term that is off (weight 0, or
``use_sie`` false) is not computed, and :meth:`MLIPLoss.model_heads` tells the model factory not to build
the parts only it uses.

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
from monai.utils import str2bool
from torch import nn

from monai_mlip.losses.contrastive import (
    DEFAULT_WEIGHT_RANGE,
    contrastive_loss,
    gather_batch,
    relative_weights,
    similarity_logits,
)
from monai_mlip.losses.mip import masked_patch_loss
from monai_mlip.losses.ot import patch_sentence_similarity

__all__ = ["MLIPLoss"]


class MLIPLoss(nn.Module):
    """Global contrastive + patch-sentence OT contrastive + masked image prediction.

    Args:
        lambda_global: weight of the global contrastive term.
        lambda_local: weight of the patch-sentence term (0 skips the OT).
        lambda_mip: weight of the masked image prediction term (0 skips it).
        use_sie: weight the global contrastive term by the SIE integrity ``w`` (MaCo's scheme).
        sie_local: with ``use_sie``, weight the local term by ``w`` too (default: both terms compare the same
            masked image, whose loss of meaning ``w`` estimates).
        sie_weight_range: bounds of the relative weight ``w / mean(w)`` that scales a sample's logits
            (:func:`~monai_mlip.losses.relative_weights`).
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
        sie_local: bool = True,
        sie_weight_range: tuple[float, float] = DEFAULT_WEIGHT_RANGE,
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
        # str2bool: a command-line override such as ``--loss#use_sie false`` arrives as the string "false"
        self.use_sie = str2bool(use_sie)
        self.sie_local = str2bool(sie_local)
        self.sie_weight_range = tuple(sie_weight_range)
        relative_weights(torch.ones(1), self.sie_weight_range)  # validates the range
        self.sie_patch_marginal = str2bool(sie_patch_marginal)
        if self.sie_patch_marginal and not self.use_sie:
            raise ValueError("sie_patch_marginal needs use_sie: the patch marginal comes from the SIE's phi")
        self.ot_epsilon = ot_epsilon
        self.ot_max_iter = ot_max_iter
        self.ot_tol = ot_tol
        self.ot_plan_grad = ot_plan_grad
        self.ot_method = ot_method

    def model_heads(self) -> dict[str, bool]:
        """The :func:`~monai_mlip.networks.create_mlip` switches of the parts this loss uses."""
        return {"use_local": bool(self.lambda_local), "use_sie": self.use_sie, "use_mip": bool(self.lambda_mip)}

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
            ``loss`` (the weighted total, to back-propagate), the terms that are on (``loss_global``,
            ``loss_local``, ``loss_mip``), and detached statistics: ``logit_scale``, ``local_logit_scale``
            (with the local term) and, with SIE, ``integrity`` (mean SIE weight ``w`` of the global batch) and
            ``sie_weight_min`` / ``sie_weight_max`` (the bounded relative weights ``w / mean(w)``).

        Raises:
            ValueError: the model was built without a part a term that is on needs.
        """
        self._check_heads(output)
        weights = gather_batch(output.integrity) if self.use_sie else None
        logits = similarity_logits(
            gather_batch(output.image_embeds), gather_batch(output.text_embeds), output.logit_scale
        )
        terms = {"loss_global": contrastive_loss(logits, weights, self.sie_weight_range)}
        stats = {"logit_scale": output.logit_scale.detach()}
        if self.lambda_local:
            similarity = gather_batch(self.local_similarity(output))
            local_weights = weights if self.sie_local else None
            local_logits = output.local_logit_scale.float() * similarity
            terms["loss_local"] = contrastive_loss(local_logits, local_weights, self.sie_weight_range)
            stats["local_logit_scale"] = output.local_logit_scale.detach()
        if self.lambda_mip:
            terms["loss_mip"] = masked_patch_loss(gather_batch(output.mip_pred), gather_batch(output.mip_target))
        if weights is not None:
            relative = relative_weights(weights.detach(), self.sie_weight_range)
            stats.update(
                integrity=weights.detach().mean(), sie_weight_min=relative.min(), sie_weight_max=relative.max()
            )
        lambdas = {"loss_global": self.lambda_global, "loss_local": self.lambda_local, "loss_mip": self.lambda_mip}
        total = sum(lambdas[name] * value for name, value in terms.items())
        return {"loss": total, **terms, **stats}

    def _check_heads(self, output: Any) -> None:
        needed = {
            "local_logit_scale": (self.lambda_local, "use_local"),
            "integrity": (self.use_sie, "use_sie"),
            "mip_pred": (self.lambda_mip, "use_mip"),
        }
        for field, (on, switch) in needed.items():
            if on and getattr(output, field) is None:
                raise ValueError(
                    f"the loss needs {field}, but the model was built with {switch}=False; build it with "
                    "create_mlip(..., **loss.model_heads())"
                )
