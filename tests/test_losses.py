"""Losses: patch-sentence OT (against POT's single-problem solver), SIE-weighted InfoNCE, MIP, MLIPLoss."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import ot
import pytest
import torch
from torch.nn import functional as F

from monai_mlip.losses import (
    MLIPLoss,
    contrastive_loss,
    global_contrastive_loss,
    masked_patch_loss,
    patch_sentence_plans,
    patch_sentence_similarity,
)

EPS = 0.05


def padded_batch(seed: int = 0, batch: int = 3, others: int = 4, patches: int = 7, sentences: int = 5, dim: int = 16):
    """Random embeddings with ragged real lengths; padded entries hold large garbage."""
    g = torch.Generator().manual_seed(seed)
    p = F.normalize(torch.randn(batch, patches, dim, generator=g), dim=-1)
    s = F.normalize(torch.randn(others, sentences, dim, generator=g), dim=-1)
    p_len = torch.randint(2, patches + 1, (batch,), generator=g)
    s_len = torch.randint(1, sentences, (others,), generator=g)  # the last sentence column is always padding
    p_mask = torch.arange(patches) < p_len[:, None]
    s_mask = torch.arange(sentences) < s_len[:, None]
    p = torch.where(p_mask[..., None], p, torch.full_like(p, 50.0))
    s = torch.where(s_mask[..., None], s, -torch.randn_like(s) * 50)
    return p, p_mask, s, s_mask


def reference_similarity(p, p_mask, s, s_mask, epsilon=EPS, patch_weights=None):
    """Per-pair loop with POT's single-problem log-domain Sinkhorn on the real sub-blocks (float64)."""
    out = np.zeros((p.shape[0], s.shape[0]))
    plans = {}
    for i in range(p.shape[0]):
        for j in range(s.shape[0]):
            pi, sj = p[i][p_mask[i]].double(), s[j][s_mask[j]].double()
            cos = (pi @ sj.T).numpy()
            a = np.full(len(pi), 1 / len(pi))
            if patch_weights is not None:
                a = patch_weights[i][p_mask[i]].double().numpy()
                a = a / a.sum()
            b = np.full(len(sj), 1 / len(sj))
            plan = ot.sinkhorn(a, b, 1 - cos, epsilon, method="sinkhorn_log", numItermax=10000, stopThr=1e-12)
            out[i, j] = (plan * cos).sum()
            plans[i, j] = plan
    return torch.from_numpy(out), plans


@pytest.mark.parametrize(
    "method, epsilon",
    [("auto", EPS), ("sinkhorn", EPS), ("log_sinkhorn", EPS), ("auto", 0.02)],  # auto at 0.02: the log domain
)
def test_batched_similarity_matches_per_pair_pot_reference(method, epsilon):
    p, p_mask, s, s_mask = padded_batch()
    similarity, plans = patch_sentence_similarity(
        p, p_mask, s, s_mask, epsilon=epsilon, max_iter=5000, tol=1e-9, return_plans=True, method=method
    )
    expected, expected_plans = reference_similarity(p, p_mask, s, s_mask, epsilon=epsilon)
    assert similarity.shape == (3, 4) and similarity.dtype == torch.float32
    torch.testing.assert_close(similarity.double(), expected, atol=1e-4, rtol=0)
    assert plans.shape == (3, 4, 7, 5)
    for (i, j), plan in expected_plans.items():
        block = plans[i, j][p_mask[i]][:, s_mask[j]]
        torch.testing.assert_close(block.double(), torch.from_numpy(plan), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["sinkhorn", "log_sinkhorn"])
def test_plan_marginals_and_zero_mass_on_padding(method):
    p, p_mask, s, s_mask = padded_batch(seed=1)
    _, plans = patch_sentence_similarity(
        p, p_mask, s, s_mask, max_iter=5000, tol=1e-9, return_plans=True, method=method
    )
    a = p_mask.float() / p_mask.sum(1, keepdim=True)
    b = s_mask.float() / s_mask.sum(1, keepdim=True)
    torch.testing.assert_close(plans.sum(-1), a[:, None].expand(-1, 4, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(plans.sum(-2), b[None].expand(3, -1, -1), atol=1e-5, rtol=0)
    pad = ~(p_mask[:, None, :, None] & s_mask[None, :, None, :])
    assert (plans[pad.expand_as(plans)] == 0).all()  # exactly zero, not merely small
    torch.testing.assert_close(plans.sum((-1, -2)), torch.ones(3, 4))


def test_padding_content_does_not_matter():
    p, p_mask, s, s_mask = padded_batch(seed=2)
    sim = patch_sentence_similarity(p, p_mask, s, s_mask)
    other = patch_sentence_similarity(
        torch.where(p_mask[..., None], p, torch.zeros_like(p)),
        p_mask,
        torch.where(s_mask[..., None], s, torch.randn_like(s)),
        s_mask,
    )
    torch.testing.assert_close(sim, other)


def test_patch_weights_set_the_patch_marginal():
    p, p_mask, s, s_mask = padded_batch(seed=3)
    weights = torch.rand(p.shape[:2], generator=torch.Generator().manual_seed(0)) + 0.1
    sim, plans = patch_sentence_similarity(
        p, p_mask, s, s_mask, patch_weights=weights, max_iter=5000, tol=1e-9, return_plans=True
    )
    a = weights * p_mask / (weights * p_mask).sum(1, keepdim=True)
    torch.testing.assert_close(plans.sum(-1), a[:, None].expand(-1, 4, -1), atol=1e-5, rtol=0)
    expected, _ = reference_similarity(p, p_mask, s, s_mask, patch_weights=weights)
    torch.testing.assert_close(sim.double(), expected, atol=1e-4, rtol=0)


def test_paired_plans_are_the_diagonal_of_all_plans():
    p, p_mask, s, s_mask = padded_batch(seed=4, batch=4)
    _, plans = patch_sentence_similarity(p, p_mask, s, s_mask, max_iter=2000, tol=1e-9, return_plans=True)
    paired = patch_sentence_plans(p, p_mask, s, s_mask, max_iter=2000, tol=1e-9)
    assert paired.shape == (4, 7, 5)
    torch.testing.assert_close(paired, plans.diagonal(dim1=0, dim2=1).permute(2, 0, 1))
    with pytest.raises(ValueError, match="as many reports"):
        patch_sentence_plans(p[:2], p_mask[:2], s, s_mask)


def test_a_sample_without_sentences_is_an_error():
    p, p_mask, s, s_mask = padded_batch(seed=5)
    s_mask[2] = False
    with pytest.raises(ValueError, match=r"sample\(s\) \[2\] have no real sentence"):
        patch_sentence_similarity(p, p_mask, s, s_mask)


@pytest.mark.parametrize("plan_grad", ["detach", "last_step", "autodiff"])
def test_gradients_reach_both_embeddings(plan_grad):
    p, p_mask, s, s_mask = padded_batch(seed=6)
    p.requires_grad_(True)
    s.requires_grad_(True)
    sim = patch_sentence_similarity(p, p_mask, s, s_mask, max_iter=30, plan_grad=plan_grad)
    sim.diagonal().sum().backward()
    for grad, mask in ((p.grad, p_mask), (s.grad, s_mask)):
        assert torch.isfinite(grad).all()
        assert grad[mask].abs().sum() > 0 and (grad[~mask] == 0).all()
    with pytest.raises(ValueError, match="plan_grad"):
        patch_sentence_similarity(p, p_mask, s, s_mask, plan_grad="envelope")


def test_detached_plan_gives_the_envelope_gradient():
    """With the plan constant, d S / d cos = T (the gradient of the entropic OT value)."""
    p, p_mask, s, s_mask = padded_batch(seed=7, batch=1, others=1)
    p = p[p_mask][None].requires_grad_(True)
    s = s[s_mask][None]
    sim, plans = patch_sentence_similarity(
        p, torch.ones(p.shape[:2], dtype=torch.bool), s, torch.ones(s.shape[:2], dtype=torch.bool), return_plans=True
    )
    sim.sum().backward()
    # S = sum_ns T_ns <p_n / |p_n|, s_s>; with |p_n| = 1 the gradient wrt p is T @ s projected off p
    raw = plans[0, 0] @ s[0]
    expected = raw - (raw * p[0].detach()).sum(-1, keepdim=True) * p[0].detach()
    torch.testing.assert_close(p.grad[0], expected, atol=1e-5, rtol=1e-4)


def test_contrastive_loss_plain_and_sie_weighted():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 5, generator=g) * 3
    labels = torch.arange(5)
    plain = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    torch.testing.assert_close(contrastive_loss(logits), plain)
    torch.testing.assert_close(contrastive_loss(logits, torch.ones(5)), plain)
    # MaCo's formulation: CE of row-scaled logits (w relative to its batch mean) plus CE with class weights
    # w.detach(), all four averaged
    w = torch.rand(5, generator=g) + 0.5
    ce = torch.nn.CrossEntropyLoss()
    wce = torch.nn.CrossEntropyLoss(weight=w)
    relative = (w / w.mean())[:, None]
    maco = ce(logits * relative, labels) + ce(logits.t() * relative, labels) + wce(logits, labels)
    maco = (maco + wce(logits.t(), labels)) / 4
    torch.testing.assert_close(contrastive_loss(logits, w), maco)
    # shrinking every weight cannot lower the loss (no shortcut to log(B) through w -> 0)
    torch.testing.assert_close(contrastive_loss(logits, 0.1 * w), contrastive_loss(logits, w))
    w.requires_grad_(True)
    contrastive_loss(logits, w).backward()
    assert w.grad.abs().sum() > 0  # w is trained through the scaled logits only
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.randn(3, 4))


def test_global_contrastive_loss_without_process_group():
    img = F.normalize(torch.randn(4, 8), dim=-1)
    txt = F.normalize(torch.randn(4, 8), dim=-1)
    torch.testing.assert_close(global_contrastive_loss(img, txt, 10.0), contrastive_loss(10.0 * img @ txt.t()))


def test_masked_patch_loss():
    pred, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    torch.testing.assert_close(masked_patch_loss(pred, target), ((pred - target) ** 2).mean())
    empty = torch.zeros(2, 0, 4, requires_grad=True)
    loss = masked_patch_loss(empty, torch.zeros(2, 0, 4))
    assert loss.item() == 0 and loss.requires_grad
    with pytest.raises(ValueError, match="differ"):
        masked_patch_loss(pred, target[:, :2])


def fake_output(batch: int = 4, seed: int = 0) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, generator=g), dim=-1).requires_grad_(True)

    sentence_mask = torch.arange(3) < torch.tensor([1, 3, 2, 3])[:batch, None]
    return SimpleNamespace(
        image_embeds=unit(batch, 8),
        text_embeds=unit(batch, 8),
        patch_embeds=unit(batch, 6, 8),
        sentence_embeds=unit(batch, 3, 8),
        sentence_mask=sentence_mask,
        integrity=(torch.rand(batch, generator=g) + 0.5).requires_grad_(True),
        patch_scores=torch.randn(batch, 6, generator=g),
        mip_pred=torch.randn(batch, 5, 12, generator=g, requires_grad=True),
        mip_target=torch.randn(batch, 5, 12, generator=g),
        logit_scale=torch.tensor(20.0, requires_grad=True),
        local_logit_scale=torch.tensor(10.0, requires_grad=True),
    )


def test_mlip_loss_terms_and_total():
    out = fake_output()
    losses = MLIPLoss(lambda_local=0.5, lambda_mip=2.0)(out)
    assert set(losses) == {
        "loss",
        "loss_global",
        "loss_local",
        "loss_mip",
        "integrity",
        "logit_scale",
        "local_logit_scale",
    }
    expected_total = losses["loss_global"] + 0.5 * losses["loss_local"] + 2.0 * losses["loss_mip"]
    torch.testing.assert_close(losses["loss"], expected_total)
    w = out.integrity
    torch.testing.assert_close(
        losses["loss_global"], contrastive_loss(out.logit_scale * out.image_embeds @ out.text_embeds.t(), w)
    )
    local = patch_sentence_similarity(
        out.patch_embeds, torch.ones(4, 6, dtype=torch.bool), out.sentence_embeds, out.sentence_mask
    )
    torch.testing.assert_close(losses["loss_local"], contrastive_loss(out.local_logit_scale * local, w))
    torch.testing.assert_close(losses["loss_mip"], masked_patch_loss(out.mip_pred, out.mip_target))
    torch.testing.assert_close(losses["integrity"], w.detach().mean())
    assert not any(losses[k].requires_grad for k in ("integrity", "logit_scale", "local_logit_scale"))
    losses["loss"].backward()
    for name in ("image_embeds", "text_embeds", "patch_embeds", "sentence_embeds", "integrity", "mip_pred"):
        assert getattr(out, name).grad.abs().sum() > 0, name
    assert out.logit_scale.grad != 0 and out.local_logit_scale.grad != 0


def test_mlip_loss_switches():
    out = fake_output()
    losses = MLIPLoss(use_sie=False, lambda_local=0.0, lambda_mip=0.0)(out)
    torch.testing.assert_close(losses["loss"], losses["loss_global"])
    torch.testing.assert_close(
        losses["loss_global"], contrastive_loss(out.logit_scale * out.image_embeds @ out.text_embeds.t())
    )
    assert losses["loss_local"] == 0 and losses["loss_mip"] == 0
    losses["loss"].backward()
    assert out.integrity.grad is None and out.patch_embeds.grad is None
    # an SIE-weighted patch marginal changes the local term
    uniform = MLIPLoss()(fake_output())["loss_local"]
    weighted = MLIPLoss(sie_patch_marginal=True)(fake_output())["loss_local"]
    assert not torch.isclose(uniform, weighted)
