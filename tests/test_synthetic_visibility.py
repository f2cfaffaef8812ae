"""Findings are learnable from the image but do not shift its global intensity statistics.

A small CNN trained briefly on 200 rendered images must separate pneumonia from no pneumonia on 200
held-out images, while a logistic regression on image-wide intensity statistics must not: exposure and
anatomy vary more than a lesion changes the histogram.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from monai_mlip.synthetic import PREVALENCE, FindingSpec, render_study, sample_findings

SIZE = 64


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    ranks = rankdata(scores)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Half with pneumonia (any side, zone and severity), all with the RSNA layout's other findings."""
    images, labels = [], []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        specs = [s for s in sample_findings(rng, PREVALENCE["rsna"]) if s.name != "pneumonia"]
        positive = index % 2 == 0
        if positive:
            side = ("right", "left", "bilateral")[int(rng.choice(3, p=[0.45, 0.45, 0.1]))]
            zone = ("upper", "middle", "lower")[int(rng.integers(3))]
            specs.append(FindingSpec("pneumonia", side, zone, float(rng.uniform())))
        images.append(render_study(rng, SIZE, findings=specs).image)
        labels.append(int(positive))
    return np.stack(images), np.array(labels)


def _intensity_features(images: np.ndarray) -> np.ndarray:
    percentiles = np.percentile(images, (5, 10, 25, 50, 75, 90, 95), axis=(1, 2)).T
    return np.concatenate([images.mean((1, 2))[:, None], images.std((1, 2))[:, None], percentiles], axis=1)


def _logistic_regression(train: np.ndarray, labels: np.ndarray, test: np.ndarray) -> np.ndarray:
    mean, std = train.mean(0), train.std(0) + 1e-6
    x = torch.tensor((train - mean) / std, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.float32)
    model = torch.nn.Linear(x.shape[1], 1)
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=300)

    def closure():
        optimiser.zero_grad()
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y) + 1e-3 * model.weight.square().sum()
        )
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return model(torch.tensor((test - mean) / std, dtype=torch.float32))[:, 0].numpy()


def _small_cnn(width: int = 16) -> torch.nn.Module:
    def block(inputs: int, outputs: int) -> list[torch.nn.Module]:
        return [
            torch.nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(outputs),
            torch.nn.ReLU(),
        ]

    return torch.nn.Sequential(
        *block(1, width),
        torch.nn.MaxPool2d(2),
        *block(width, 2 * width),
        torch.nn.MaxPool2d(2),
        *block(2 * width, 2 * width),
        torch.nn.MaxPool2d(2),
        *block(2 * width, 4 * width),
        torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * width, 1),
    )


def _train_cnn(images: np.ndarray, labels: np.ndarray, test: np.ndarray, epochs: int = 60) -> np.ndarray:
    torch.manual_seed(0)
    shifts = np.random.default_rng(0)

    def standardise(x: np.ndarray) -> torch.Tensor:
        t = torch.tensor(x[:, None])
        return (t - t.mean((2, 3), keepdim=True)) / (t.std((2, 3), keepdim=True) + 1e-3)

    x, x_test, y = standardise(images), standardise(test), torch.tensor(labels, dtype=torch.float32)
    model = _small_cnn()
    optimiser = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=epochs * -(-len(x) // 16))
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 16):
            batch = order[start : start + 16]
            inputs = x[batch]
            flip = torch.rand(len(batch), 1, 1, 1) < 0.5
            inputs = torch.where(flip, inputs.flip(-1), inputs)
            dy, dx = (int(v) for v in shifts.integers(-4, 5, 2))
            inputs = torch.roll(inputs, (dy, dx), (2, 3))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs)[:, 0], y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    with torch.no_grad():  # average over the image and its mirror image
        return (model(x_test)[:, 0] + model(x_test.flip(-1))[:, 0]).numpy() / 2


@pytest.mark.slow
def test_pneumonia_is_visible_but_not_a_global_intensity_cue():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: robust to other jobs on a shared 2-core machine
    try:
        train_images, train_labels = _dataset(200, seed=1)
        test_images, test_labels = _dataset(200, seed=2)
        statistics_auc = _auc(
            _logistic_regression(_intensity_features(train_images), train_labels, _intensity_features(test_images)),
            test_labels,
        )
        cnn_auc = _auc(_train_cnn(train_images, train_labels, test_images), test_labels)
    finally:
        torch.set_num_threads(threads)
    print(f"held-out AUC: small CNN {cnn_auc:.3f}, logistic regression on intensity statistics {statistics_auc:.3f}")
    assert statistics_auc < 0.7
    assert cnn_auc > 0.72
    assert cnn_auc - statistics_auc > 0.15
