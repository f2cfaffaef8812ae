"""Losses: patch-sentence OT (against POT's single-problem solver), SIE-weighted InfoNCE, MIP, the objective's terms."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import ot
import pytest
import torch
from torch.nn import functional as F

from monai_mlip.losses import (
    build_objective,
    contrastive_loss,
    global_contrastive_loss,
    masked_patch_loss,
    patch_sentence_plans,
    patch_sentence_similarity,
    relative_weights,
    similarity_logits,
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
    """Per-pair loop with POT's single-problem log-domain Sinkhorn on the real sub-blocks (float64): the
    regularised value ``<T, cos> - eps KL(T || a b^T)``."""
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
            positive = plan > 0
            kl = (plan[positive] * np.log(plan[positive] / np.outer(a, b)[positive])).sum()
            out[i, j] = (plan * cos).sum() - epsilon * kl
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


def test_the_mlip_objective_weights_and_logs_each_term():
    out = fake_output()
    losses = build_objective("mlip", weights={"local": 0.5, "mip": 2.0})(out)
    assert set(losses) == {
        "loss",
        "loss_global",
        "loss_local",
        "loss_mip",
        "integrity",
        "sie_weight_min",
        "sie_weight_max",
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


def test_a_term_that_is_off_is_not_computed():
    out = fake_output()
    losses = build_objective("clip")(out)
    torch.testing.assert_close(losses["loss"], losses["loss_global"])
    torch.testing.assert_close(
        losses["loss_global"], contrastive_loss(out.logit_scale * out.image_embeds @ out.text_embeds.t())
    )
    assert set(losses) == {"loss", "loss_global", "logit_scale"}
    losses["loss"].backward()
    assert out.integrity.grad is None and out.patch_embeds.grad is None and out.mip_pred.grad is None
    # a weight of 0 turns a recipe's term off
    assert "loss_mip" not in build_objective("mlip", weights={"mip": 0})(fake_output())


def test_each_term_takes_its_own_settings():
    uniform = build_objective("mlip")(fake_output())["loss_local"]
    weighted = build_objective("mlip", {"local": {"sie_patch_marginal": True}})(fake_output())["loss_local"]
    assert not torch.isclose(uniform, weighted)  # an SIE-weighted patch marginal changes the local term
    sharper = build_objective("mlip", {"local": {"epsilon": 0.5}})(fake_output())["loss_local"]
    assert not torch.isclose(uniform, sharper)
    assert build_objective("mlip", {"local": {"sie_patch_marginal": "true"}}).terms["local"].sie_patch_marginal
    with pytest.raises(ValueError, match="only a recipe with the SIE weighting"):
        build_objective("mlip_no_sie", {"local": {"sie_patch_marginal": True}})
    with pytest.raises(ValueError, match=r"'local' \(PatchSentenceOT\)"):
        build_objective("mlip", {"local": {"epsilon_typo": 0.1}})
    with pytest.raises(ValueError, match="unknown term"):
        build_objective("mlip", {"lokal": {}})
    with pytest.raises(ValueError, match="no term"):
        build_objective("clip", weights={"global": 0})


def test_the_objective_asks_for_the_parts_it_uses():
    off = {"use_knowledge": False, "use_teacher": False, "use_mlm": False}
    assert build_objective("mlip").model_heads() == {"use_local": True, "use_sie": True, "use_mip": True, **off}
    assert build_objective("clip").model_heads() == {"use_local": False, "use_sie": False, "use_mip": False, **off}
    for field in ("local_logit_scale", "integrity", "mip_pred"):
        out = fake_output()
        setattr(out, field, None)
        with pytest.raises(ValueError, match=field):
            build_objective("mlip")(out)


def test_sie_weights_the_terms_it_lists():
    out = fake_output()
    both = build_objective("mlip")(out)
    global_only = build_objective("mlip", {"sie": {"weighted_terms": ["global"]}})(out)
    torch.testing.assert_close(both["loss_global"], global_only["loss_global"])
    local = patch_sentence_similarity(
        out.patch_embeds, torch.ones(4, 6, dtype=torch.bool), out.sentence_embeds, out.sentence_mask
    )
    torch.testing.assert_close(global_only["loss_local"], contrastive_loss(out.local_logit_scale * local))
    torch.testing.assert_close(both["loss_local"], contrastive_loss(out.local_logit_scale * local, out.integrity))


def test_sie_relative_weight_is_bounded_and_logged():
    logits = 10 * torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([8.0, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3], requires_grad=True)  # w / mean(w) ~ 8
    relative = relative_weights(w.detach(), (0.5, 2.0))
    assert relative.max() == 2.0 and relative.min() == 0.5
    # bounded: the loss is MaCo's two terms on the clamped relative weights, computed by hand here
    labels = torch.arange(8)
    scaled = sum(F.cross_entropy(x * relative[:, None], labels) for x in (logits, logits.t())) / 2
    each = sum(F.cross_entropy(x, labels, reduction="none") for x in (logits, logits.t())) / 2
    expected = (scaled + (each * relative).sum() / relative.sum()) / 2
    bounded = contrastive_loss(logits, w, (0.5, 2.0))
    torch.testing.assert_close(bounded, expected)
    assert not torch.isclose(contrastive_loss(logits, w, (1e-9, 1e9)), bounded)
    bounded.backward()
    assert w.grad.abs().max() == 0  # every relative weight is on a bound
    with pytest.raises(ValueError, match="weight_range"):
        relative_weights(w, (1.5, 2.0))
    out = fake_output()
    out.integrity = torch.tensor([4.0, 0.1, 0.1, 0.1])
    losses = build_objective("mlip", {"sie": {"weight_range": (0.8, 1.5)}})(out)
    assert losses["sie_weight_max"] == 1.5 and losses["sie_weight_min"] == pytest.approx(0.8)
    torch.testing.assert_close(losses["integrity"], out.integrity.mean())


def test_contrastive_logits_are_float32_under_autocast():
    """bf16 autocast would round 33.33 to 33.25: both contrastive terms stay in float32."""
    out = fake_output(batch=4)
    out.logit_scale = torch.tensor(1 / 0.03)
    reference = build_objective("mlip")(out)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = build_objective("mlip")(out)
    for name in ("loss_global", "loss_local"):
        assert mixed[name].dtype == torch.float32
        torch.testing.assert_close(mixed[name], reference[name], rtol=1e-6, atol=1e-6)
    logits = similarity_logits(out.image_embeds.bfloat16(), out.text_embeds.bfloat16(), out.logit_scale)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("plan_grad", ["detach", "autodiff"])
def test_ot_value_and_gradient_describe_one_function(plan_grad):
    """The returned similarity's gradient matches central finite differences of the returned value."""
    g = torch.Generator().manual_seed(3)
    p = F.normalize(torch.randn(2, 6, 8, generator=g, dtype=torch.float64), dim=-1).requires_grad_(True)
    s = F.normalize(torch.randn(3, 4, 8, generator=g, dtype=torch.float64), dim=-1)
    p_mask, s_mask = torch.ones(2, 6, dtype=torch.bool), torch.arange(4) < torch.tensor([[2], [4], [3]])
    kwargs = {"epsilon": 0.1, "max_iter": 3000, "tol": 1e-12, "plan_grad": plan_grad, "method": "log_sinkhorn"}
    direction = torch.randn(p.shape, generator=g, dtype=torch.float64)
    similarity = patch_sentence_similarity(p, p_mask, s, s_mask, **kwargs)
    assert similarity.dtype == torch.float64
    (gradient,) = torch.autograd.grad(similarity.sum(), p)
    analytic = (gradient * direction).sum()
    step = 1e-5
    with torch.no_grad():
        plus = patch_sentence_similarity(p + step * direction, p_mask, s, s_mask, **kwargs).sum()
        minus = patch_sentence_similarity(p - step * direction, p_mask, s, s_mask, **kwargs).sum()
    numeric = (plus - minus) / (2 * step)
    torch.testing.assert_close(analytic, numeric, rtol=1e-4, atol=1e-7)
