"""Downstream classification pieces: classifiers on the pre-trained tower, zero-shot logits, metrics."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine
from monai.metrics import compute_roc_auc

from monai_mlip.downstream import ZeroShotLogits, classifier_from_pretrained, epochs_for_steps, unetr_from_pretrained
from monai_mlip.handlers import BinaryClassificationMetric
from monai_mlip.metrics import best_f1
from monai_mlip.networks import ImageEncoder
from monai_mlip.zero_shot import ZeroShotClassifier


def f1_and_accuracy(scores, labels, threshold):
    predicted = scores >= threshold
    true_positives = int((predicted & (labels == 1)).sum())
    f1 = 2 * true_positives / (int(predicted.sum()) + int(labels.sum()))
    return f1, float((predicted == (labels == 1)).float().mean())


@pytest.mark.parametrize("seed", range(5))
def test_best_f1_matches_a_threshold_sweep(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 8, (40,), generator=g).float()  # many ties
    labels = (torch.rand(40, generator=g) < 0.4).long()
    result = best_f1(scores, labels)
    best = max(f1_and_accuracy(scores, labels, t)[0] for t in scores.unique())
    assert result["f1"] == pytest.approx(best)
    assert (result["f1"], result["accuracy"]) == pytest.approx(f1_and_accuracy(scores, labels, result["threshold"]))


def test_binary_classification_metric_in_an_engine(tmp_path):
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 1, generator=g), torch.randint(0, 2, (8, 1), generator=g)) for _ in range(4)]
    engine = Engine(lambda engine, batch: batch)
    BinaryClassificationMetric("pneumonia", roc_path=tmp_path / "roc.png").attach(engine, "auc")
    metrics = engine.run(batches).metrics
    scores, labels = (torch.cat(parts).flatten() for parts in zip(*batches, strict=True))
    assert metrics["auc"] == pytest.approx(compute_roc_auc(scores, labels)) == metrics["pneumonia/auc"]
    assert metrics["pneumonia/f1"] == pytest.approx(best_f1(scores, labels)["f1"])
    assert metrics["pneumonia/cases"] == 32 and (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_one_class_gives_no_auc():
    engine = Engine(lambda engine, batch: batch)
    BinaryClassificationMetric("ptx").attach(engine, "auc")
    metrics = engine.run([(torch.randn(4), torch.zeros(4))]).metrics
    assert metrics["ptx/cases"] == 4 and "ptx/auc" not in metrics and metrics["auc"] != metrics["auc"]  # NaN


@pytest.mark.parametrize(
    ("steps_per_epoch", "expected"),
    [(3, 167), (26, 20), (50, 10), (584, 10)],  # 10 % and 100 % of the synthetic split, a larger one, real RSNA
)
def test_epochs_for_steps(steps_per_epoch, expected):
    assert epochs_for_steps(10, 500, steps_per_epoch) == expected


def test_epochs_for_steps_refuses_an_empty_loader():
    with pytest.raises(ValueError, match="empty"):
        epochs_for_steps(10, 500, 0)


def test_linear_probe_freezes_the_encoder_and_fine_tuning_does_not(pretrained_models_dir):
    image = torch.randn(3, 1, 32, 32)
    probe = classifier_from_pretrained(pretrained_models_dir, mode="linear_probe").train()
    assert not probe.encoder.training and probe.head.training
    probe(image).sum().backward()
    assert all(p.grad is None for p in probe.encoder.parameters()) and probe.head.weight.grad is not None
    tuned = classifier_from_pretrained(pretrained_models_dir, mode="fine_tune").train()
    assert tuned.encoder.training
    tuned(image).sum().backward()
    assert all(p.grad is not None for p in tuned.encoder.parameters() if p.requires_grad)
    assert tuned(image).shape == (3, 1)


def test_linear_probe_head_reads_standardised_features(pretrained_models_dir):
    image = torch.randn(6, 1, 32, 32)
    probe = classifier_from_pretrained(pretrained_models_dir, mode="linear_probe").train()
    with torch.no_grad():
        features = probe.encoder(image).global_features
        standardised = (features - features.mean(0)) / torch.sqrt(features.var(0, unbiased=False) + probe.norm.eps)
        torch.testing.assert_close(probe(image), probe.head(standardised))
        assert probe(image[:1]).shape == (1, 1)  # the short last batch of an epoch: running statistics
        probe.eval()
        running = (features - probe.norm.running_mean) / torch.sqrt(probe.norm.running_var + probe.norm.eps)
        torch.testing.assert_close(probe(image), probe.head(running))
    assert isinstance(classifier_from_pretrained(pretrained_models_dir, mode="fine_tune").norm, torch.nn.Identity)


def test_initialisations(pretrained_models_dir):
    saved = torch.load(pretrained_models_dir / "model.pt", weights_only=True)
    pretrained = classifier_from_pretrained(pretrained_models_dir, init="mlip").encoder.state_dict()
    random = classifier_from_pretrained(pretrained_models_dir, init="random").encoder.state_dict()
    for key, value in pretrained.items():
        torch.testing.assert_close(value, saved[f"vision.{key}"])
    assert any(not torch.equal(random[key], pretrained[key]) for key in pretrained)
    for kwargs, word in (({"mode": "probe"}, "mode"), ({"init": "imagenet"}, "init")):
        with pytest.raises(ValueError, match=word):
            classifier_from_pretrained(pretrained_models_dir, **kwargs)


def test_zero_shot_logits_are_the_prompt_ensemble_probabilities(pretrained_models_dir):
    from monai_mlip.networks import load_pretrained

    mlip = load_pretrained(pretrained_models_dir).eval()
    net = ZeroShotLogits(mlip, ["Pneumonia", "Pneumothorax"]).eval()
    image = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        expected = ZeroShotClassifier(mlip, ["Pneumonia", "Pneumothorax"]).scores(ImageEncoder.from_mlip(mlip)(image))
        torch.testing.assert_close(torch.sigmoid(net(image)), expected, atol=1e-5, rtol=1e-4)


def test_unetr_encoder_starts_from_the_pretrained_tower(pretrained_model):
    models_dir, mlip = pretrained_model
    unetr = unetr_from_pretrained(models_dir, init="mlip", out_channels=2, feature_size=8).eval()
    image = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(unetr.vit(image)[0], mlip.vision(image).patch_features, atol=1e-4, rtol=1e-4)
        assert unetr(image).shape == (2, 2, 32, 32)
    random = unetr_from_pretrained(models_dir, init="random", feature_size=8).eval()
    with torch.no_grad():
        assert not torch.allclose(random.vit(image)[0], mlip.vision(image).patch_features, atol=1e-2)


def test_unetr_frozen_encoder_and_bad_init(pretrained_model):
    models_dir, _ = pretrained_model
    unetr = unetr_from_pretrained(models_dir, feature_size=8, freeze_encoder=True).train()
    assert not any(p.requires_grad for p in unetr.vit.parameters())
    assert all(p.requires_grad for p in unetr.decoder2.parameters())
    assert not unetr.vit.training and unetr.decoder2.training
    encoder_state = {key: value.clone() for key, value in unetr.vit.state_dict().items()}
    tuned = unetr_from_pretrained(models_dir, feature_size=8).train()
    image = torch.randn(2, 1, 32, 32)
    unetr(image).sum().backward()
    tuned(image)
    for key, value in unetr.vit.state_dict().items():  # BatchNorm running statistics included
        torch.testing.assert_close(value, encoder_state[key])
    assert any(
        "running_mean" in key and not torch.equal(value, encoder_state[key])
        for key, value in tuned.vit.state_dict().items()
    )
    with pytest.raises(ValueError, match="init"):
        unetr_from_pretrained(models_dir, init="imagenet")


def test_unetr_starts_from_near_empty_masks(pretrained_model):
    models_dir, _ = pretrained_model
    image = torch.randn(2, 1, 32, 32)
    for init in ("mlip", "random"):
        torch.manual_seed(0)
        with torch.no_grad():
            prior = torch.sigmoid(unetr_from_pretrained(models_dir, init=init, feature_size=8).eval()(image))
        torch.manual_seed(0)
        with torch.no_grad():
            plain = unetr_from_pretrained(models_dir, init=init, feature_size=8, foreground_prior=None).eval()(image)
        # at threshold 0.5 the prior-initialised net marks no pixel; MONAI's initialisation starts far above it
        assert (prior > 0.5).float().mean() == 0.0 and abs(float(prior.mean()) - 0.01) < 0.01
        assert float(torch.sigmoid(plain).mean()) > 0.2
    with pytest.raises(ValueError, match="foreground_prior"):
        unetr_from_pretrained(models_dir, feature_size=8, foreground_prior=1.0)


def test_unetr_from_a_local_timm_checkpoint(pretrained_model, tmp_path):
    from safetensors.torch import save_file

    from monai_mlip.networks import PRESETS, VisionTower

    models_dir, _ = pretrained_model
    kwargs = {"in_chans": 1, "embed_dim": 32, "depth": 2, "num_heads": 2, "class_token": False}
    kwargs |= {"global_pool": "avg", "fc_norm": False}
    torch.manual_seed(5)
    reference = VisionTower(PRESETS["tiny"].vision_model, image_size=32, **kwargs).eval()  # the fixture's tower
    save_file({k: v.contiguous() for k, v in reference.trunk.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    unetr = unetr_from_pretrained(models_dir, init="timm", timm_weights=tmp_path / "vit.safetensors", feature_size=8)
    image = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(unetr.eval().vit(image)[0], reference(image).patch_features, atol=1e-4, rtol=1e-4)


def _reference_ot_similarity(patches: torch.Tensor, sentences: torch.Tensor, epsilon: float) -> float:
    """POT's dense Sinkhorn between uniform marginals, cost ``1 - cos``: ``sum(T * cos) - eps KL(T || a b^T)``."""
    import ot

    cos = (
        torch.nn.functional.normalize(patches, dim=-1) @ torch.nn.functional.normalize(sentences, dim=-1).t()
    ).double()
    a = torch.full((len(patches),), 1 / len(patches), dtype=torch.float64)
    b = torch.full((len(sentences),), 1 / len(sentences), dtype=torch.float64)
    plan = ot.sinkhorn(a, b, 1 - cos, epsilon, numItermax=10_000, stopThr=1e-10)
    positive = plan > 0
    kl = (plan[positive] * torch.log(plan[positive] / torch.outer(a, b)[positive])).sum()
    return float((plan * cos).sum() - epsilon * kl)  # the regularised value, as the training loss uses


def test_zero_shot_local_score_is_the_ot_similarity_to_the_prompt_sentences(pretrained_models_dir):
    from monai_mlip.networks import load_pretrained

    mlip = load_pretrained(pretrained_models_dir).eval()
    classifier = ZeroShotClassifier(mlip, ["Pneumonia", "Pneumothorax"])
    sentences = classifier.class_sentences()
    # every prompt is one sentence: the set's "report" has as many sentences as the set has prompts
    counts = [[len(s.negative), len(s.positive)] for s in classifier.prompt_sets.values()]
    assert sentences.mask.sum(dim=-1).tolist() == counts
    patches = ImageEncoder.from_mlip(mlip).patches(torch.randn(2, 1, 32, 32)).detach()
    probabilities = classifier.local_scores(patches, sentences)
    for image in range(2):
        for finding in range(2):
            expected = [
                _reference_ot_similarity(patches[image], sentences.embeds[finding, k][sentences.mask[finding, k]], 0.05)
                for k in range(2)
            ]
            logit = float(classifier.local_scale()) * (expected[1] - expected[0])
            assert float(probabilities[image, finding]) == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-4)


def test_zero_shot_local_score_prefers_patches_that_match_the_positive_prompts(pretrained_models_dir):
    from monai_mlip.networks import load_pretrained

    classifier = ZeroShotClassifier(load_pretrained(pretrained_models_dir).eval(), ["Pneumonia"])
    sentences = classifier.class_sentences()
    negative, positive = (sentences.embeds[0, k][sentences.mask[0, k]] for k in range(2))
    # images whose patches are the positive (or the negative) prompt sentences themselves
    images = torch.stack([positive.repeat(4, 1), negative.repeat(4, 1)])
    scores = classifier.local_scores(images, sentences)[:, 0]
    assert scores[0] > 0.5 > scores[1]


def test_zero_shot_logits_of_the_local_score(pretrained_models_dir):
    from monai_mlip.networks import load_pretrained

    mlip = load_pretrained(pretrained_models_dir).eval()
    net = ZeroShotLogits(mlip, ["Pneumonia", "Pneumothorax"], score="local").eval()
    image = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        patches = ImageEncoder.from_mlip(mlip).patches(image)
        expected = ZeroShotClassifier(mlip, ["Pneumonia", "Pneumothorax"]).local_scores(patches)
        torch.testing.assert_close(torch.sigmoid(net(image)), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="score"):
        ZeroShotLogits(mlip, ["Pneumonia"], score="max")


def test_zero_shot_auc_metric_by_the_local_score(pretrained_models_dir):
    from monai_mlip.handlers import ZeroShotAUCMetric
    from monai_mlip.networks import load_pretrained

    mlip = load_pretrained(pretrained_models_dir).eval()
    classifier = ZeroShotClassifier(mlip, ["Pneumonia"])
    g = torch.Generator().manual_seed(0)
    patches = torch.nn.functional.normalize(torch.randn(12, 4, mlip.embed_dim, generator=g), dim=-1)
    labels = torch.tensor([1.0, 0.0, -1.0, float("nan")] * 3)[:, None]
    engine = Engine(lambda engine, batch: batch)
    ZeroShotAUCMetric(classifier, ["Pneumonia"], min_cases=1, score="local").attach(engine, "zero_shot_local_auc/mean")
    metrics = engine.run([(patches[:6], labels[:6]), (patches[6:], labels[6:])]).metrics
    known = labels[:, 0] != -1  # uncertain excluded, blank negative
    expected = compute_roc_auc(classifier.local_scores(patches)[known, 0], labels[known, 0].nan_to_num(0.0))
    assert metrics["zero_shot_local_auc/pneumonia"] == pytest.approx(expected)
    assert "zero_shot_auc/pneumonia" not in metrics


def test_zero_shot_scales_stay_within_the_models_bound(pretrained_model):
    _, mlip = pretrained_model
    classifier = ZeroShotClassifier(mlip, ["Pneumonia"])
    bound = mlip.max_logit_scale
    original = mlip.max_logit_scale, mlip.logit_scale.detach().clone(), mlip.local_logit_scale.detach().clone()
    try:
        mlip.max_logit_scale = 20.0  # a model trained with a lower bound than CLIP's 100
        with torch.no_grad():
            mlip.logit_scale.fill_(math.log(50.0))
            mlip.local_logit_scale.fill_(math.log(50.0))
        assert classifier.scale().item() == pytest.approx(20.0)
        assert classifier.local_scale().item() == pytest.approx(20.0)
    finally:
        mlip.max_logit_scale = original[0]
        with torch.no_grad():
            mlip.logit_scale.copy_(original[1])
            mlip.local_logit_scale.copy_(original[2])
    assert mlip.max_logit_scale == bound
