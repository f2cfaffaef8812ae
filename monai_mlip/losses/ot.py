"""Patch-sentence matching by entropic optimal transport (POT's batched log-domain Sinkhorn).

For image ``i`` and report ``j`` the cost of moving mass from patch ``n`` to sentence ``s`` is
``1 - cos(patch_n, sentence_s)``. The entropic plan ``T_ij`` between a uniform (or given) marginal ``a`` over
the real patches of ``i`` and a uniform (or given) marginal ``b`` over the real sentences of ``j`` matches the
two sets many-to-many. The local similarity is the value of the regularised matching problem,
``S_ij = max_T <T, cos> - eps KL(T || a b^T) = <T_ij, cos> - eps KL(T_ij || a b^T)``: the matching score
of the plan less its entropic penalty, at most ``<T_ij, cos>`` and equal to it when the plan is the
independent coupling ``a b^T``. (Under the marginal constraints ``-KL(T || a b^T)`` is the plan's entropy
``H(T)`` less the constant ``H(a) + H(b)``, so this is the same problem as ``<T, cos> + eps H(T)``, offset so
that it does not favour reports with more sentences.) All ``B x B'`` problems of a
batch are solved at once with POT's batched Sinkhorn (the Bregman projections of ``ot.batch`` behind
``ot.solve_batch``) on the torch backend.

Domain (``method``): ``"log_sinkhorn"`` iterates on log potentials and is stable for any epsilon;
``"sinkhorn"`` iterates on scalings ``exp(potential / eps)``, which is about eight times faster on a CPU
(products and sums instead of log-sum-exps) and gives the same plan to the tolerance as long as the Gibbs
kernel ``exp(-cost / eps)`` stays far above float32's smallest normal number: the cost lies in ``[0, 2]``,
so that holds for ``eps >= 2 / 80`` (kernel entries ``>= e^-80``). ``"auto"`` (the default) takes the
scaling form there and the log form below, and falls back to the log form if a scaling solve ever
yields a non-finite plan.

Padding: padded patches and sentences get a marginal of exactly zero. In the log domain their dual
potential is ``log 0 = -inf`` and in the scaling domain their scaling is ``0 / positive = 0``, so their rows
and columns get exactly zero mass whatever the cost there; their embeddings are zeroed first so nothing
undefined enters the product ``T * cos``. Columns padded in every sample are cut off before solving.
Every sample must have at least one real patch and one real sentence.

Gradients (``plan_grad``): by default (``"detach"``) the plan is a constant and gradients flow through
``cos`` only. By the envelope (Danskin) theorem the optimal plan ``T*`` is exactly the gradient of the
value ``S_ij`` above with respect to ``cos``, so the returned value and its gradient describe the same
function (to the Sinkhorn tolerance); this costs nothing per iteration and keeps memory at a few
``B x B' x N x S`` tensors.
``"autodiff"`` also differentiates the plan through every iteration (memory grows with ``max_iter``);
``"last_step"`` differentiates the last iteration only.
"""

from __future__ import annotations

import ot
import torch

__all__ = ["patch_sentence_plans", "patch_sentence_similarity"]

_PLAN_GRADS = ("detach", "last_step", "autodiff")


def _marginal(
    mask: torch.Tensor, weights: torch.Tensor | None, what: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[B, K]`` bool mask (and optional non-negative weights) -> ``[B, K]`` marginals summing to 1."""
    mass = mask.to(dtype)
    if weights is not None:
        mass = mass * weights.to(dtype)
    total = mass.sum(dim=1, keepdim=True)
    empty = (total.squeeze(1) <= 0).nonzero().flatten()
    if empty.numel():
        raise ValueError(f"sample(s) {empty.tolist()} have no real {what} with positive weight")
    return mass / total


def _trim(mask: torch.Tensor) -> int:
    """Number of leading columns that hold a real item in some row."""
    used = mask.any(dim=0).nonzero()
    return int(used.max()) + 1 if used.numel() else 0


_METHODS = ("auto", "sinkhorn", "log_sinkhorn")
_SCALING_MIN_EPSILON = 2.0 / 80.0  # kernel entries >= e^-80 on costs in [0, 2]: far from float32 underflow


def _solve(
    cos: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int,
    tol: float,
    plan_grad: str,
    method: str = "auto",
) -> torch.Tensor:
    """Entropic plans of ``K`` problems: ``cos`` ``[K, N, S]``, marginals ``a`` ``[K, N]``, ``b`` ``[K, S]``."""
    if plan_grad not in _PLAN_GRADS:
        raise ValueError(f"plan_grad must be one of {_PLAN_GRADS}, got {plan_grad!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    # log of the Gibbs kernel, -cost / eps. POT's Bregman projections are what ot.solve_batch runs for its
    # Sinkhorn methods; called directly they skip the objective value (an entropy over every plan) we never use.
    log_kernel = ((cos.detach() if plan_grad == "detach" else cos) - 1.0) / epsilon

    def solve_log() -> torch.Tensor:
        return ot.batch.bregman_log_projection_batch(log_kernel, a, b, max_iter=max_iter, tol=tol, grad=plan_grad)["T"]

    if method == "log_sinkhorn" or (method == "auto" and epsilon < _SCALING_MIN_EPSILON):
        return solve_log()
    plan = ot.batch.bregman_projection_batch(log_kernel.exp(), a, b, max_iter=max_iter, tol=tol, grad=plan_grad)["T"]
    if method == "auto" and not torch.isfinite(plan).all():
        return solve_log()
    return plan


def _prepare(
    patches: torch.Tensor,
    patch_mask: torch.Tensor,
    sentences: torch.Tensor,
    sentence_mask: torch.Tensor,
    patch_weights: torch.Tensor | None,
    sentence_weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Validate, compute marginals, cut all-padding columns, zero padded embeddings (L2-normalised).

    Everything is float32, or float64 when the embeddings are.
    """
    if patches.ndim != 3 or sentences.ndim != 3 or patches.shape[-1] != sentences.shape[-1]:
        raise ValueError(f"expected [B, N, D] patches and [B', S, D] sentences, got {patches.shape}, {sentences.shape}")
    if patch_mask.shape != patches.shape[:2] or sentence_mask.shape != sentences.shape[:2]:
        raise ValueError(
            f"masks {patch_mask.shape}, {sentence_mask.shape} do not match {patches.shape}, {sentences.shape}"
        )
    dtype = torch.promote_types(patches.dtype, torch.float32)
    a = _marginal(patch_mask, patch_weights, "patch", dtype)
    b = _marginal(sentence_mask, sentence_weights, "sentence", dtype)
    n, s = _trim(a > 0), _trim(b > 0)
    a, b = a[:, :n], b[:, :s]
    patches = torch.nn.functional.normalize(patches[:, :n].to(dtype), dim=-1) * (a > 0).unsqueeze(-1)
    sentences = torch.nn.functional.normalize(sentences[:, :s].to(dtype), dim=-1) * (b > 0).unsqueeze(-1)
    return patches, a, sentences, b, n, s


def _kl_to_independent(plans: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``KL(T || a b^T)`` of ``[K, N, S]`` plans with ``[K, N]``, ``[K, S]`` marginals -> ``[K]`` (0 log 0 = 0)."""
    outer = a.unsqueeze(2) * b.unsqueeze(1)
    # where T is 0 the ratio is set to 1 (a zero term) before the log, so no 0 * log 0 reaches autograd
    ratio = torch.where(plans > 0, plans / outer.clamp_min(torch.finfo(outer.dtype).tiny), torch.ones_like(plans))
    return (plans * ratio.log()).sum(dim=(1, 2))


def _pad_plans(plans: torch.Tensor, num_patches: int, num_sentences: int) -> torch.Tensor:
    pad_n, pad_s = num_patches - plans.shape[-2], num_sentences - plans.shape[-1]
    return torch.nn.functional.pad(plans, (0, pad_s, 0, pad_n)) if pad_n or pad_s else plans


def patch_sentence_similarity(
    patches: torch.Tensor,
    patch_mask: torch.Tensor,
    sentences: torch.Tensor,
    sentence_mask: torch.Tensor,
    epsilon: float = 0.05,
    max_iter: int = 100,
    tol: float = 1e-5,
    patch_weights: torch.Tensor | None = None,
    sentence_weights: torch.Tensor | None = None,
    plan_grad: str = "detach",
    return_plans: bool = False,
    method: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """OT-weighted local similarity of every image with every report.

    Args:
        patches: ``[B, N, D]`` patch embeddings (normalised here for the cosine).
        patch_mask: ``[B, N]`` bool, ``True`` for real patches.
        sentences: ``[B', S, D]`` sentence embeddings.
        sentence_mask: ``[B', S]`` bool, ``True`` for real sentences.
        epsilon: entropic regularisation (on a cost in ``[0, 2]``).
        max_iter: Sinkhorn iteration cap.
        tol: stop when the largest L2 error of a row marginal is below this (checked every 10 iterations).
        patch_weights: ``[B, N]`` non-negative patch masses (normalised over real patches); uniform if ``None``.
        sentence_weights: ``[B', S]`` non-negative sentence masses; uniform if ``None``.
        plan_grad: ``"detach"``, ``"last_step"`` or ``"autodiff"`` (see the module docstring).
        return_plans: also return the plans.
        method: ``"auto"``, ``"sinkhorn"`` (scaling domain) or ``"log_sinkhorn"`` (see the module docstring).

    Returns:
        ``[B, B']`` similarities ``S_ij = sum(T_ij * cos) - epsilon * KL(T_ij || a b^T)`` (float32, or float64
        for float64 embeddings; see the module docstring); with ``return_plans`` also the
        ``[B, B', N, S]`` plans (zero on padding; each sums to 1).

    Raises:
        ValueError: a sample has no real patch or no real sentence, or the shapes disagree.
    """
    batch, num_patches = patches.shape[:2]
    others, num_sentences = sentences.shape[:2]
    with torch.autocast(patches.device.type, enabled=False):
        patches, a, sentences, b, n, s = _prepare(
            patches, patch_mask, sentences, sentence_mask, patch_weights, sentence_weights
        )
        cos = torch.einsum("ind,jsd->ijns", patches, sentences).reshape(batch * others, n, s)
        a = a.unsqueeze(1).expand(batch, others, n).reshape(batch * others, n)
        b = b.unsqueeze(0).expand(batch, others, s).reshape(batch * others, s)
        plans = _solve(cos, a, b, epsilon, max_iter, tol, plan_grad, method)
        similarity = (plans * cos).sum(dim=(1, 2)) - epsilon * _kl_to_independent(plans, a, b)
        similarity = similarity.reshape(batch, others)
    if not return_plans:
        return similarity
    return similarity, _pad_plans(plans.reshape(batch, others, n, s), num_patches, num_sentences)


def patch_sentence_plans(
    patches: torch.Tensor,
    patch_mask: torch.Tensor,
    sentences: torch.Tensor,
    sentence_mask: torch.Tensor,
    epsilon: float = 0.05,
    max_iter: int = 100,
    tol: float = 1e-5,
    patch_weights: torch.Tensor | None = None,
    sentence_weights: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Plans of the matching pairs only (image ``i`` with its own report ``i``), for grounding.

    Takes the arguments of :func:`patch_sentence_similarity` with ``B' = B`` and solves only the ``B``
    paired problems. ``plans[i, :, s]`` is how sentence ``s`` of report ``i`` spreads over the patches of
    image ``i`` (each column sums to that sentence's mass).

    Returns:
        ``[B, N, S]`` float32 plans, zero on padding.
    """
    if patches.shape[0] != sentences.shape[0]:
        raise ValueError(
            f"paired plans need as many reports as images, got {patches.shape[0]} and {sentences.shape[0]}"
        )
    num_patches, num_sentences = patches.shape[1], sentences.shape[1]
    with torch.autocast(patches.device.type, enabled=False), torch.no_grad():
        patches, a, sentences, b, _, _ = _prepare(
            patches, patch_mask, sentences, sentence_mask, patch_weights, sentence_weights
        )
        cos = torch.einsum("ind,isd->ins", patches, sentences)
        plans = _solve(cos, a, b, epsilon, max_iter, tol, "detach", method)
    return _pad_plans(plans, num_patches, num_sentences)
