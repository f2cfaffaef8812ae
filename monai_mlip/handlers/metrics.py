"""Ignite metrics of the pre-training validation: retrieval, zero-shot AUC and grounding.

Each accumulates over an evaluation run, gathers across processes (MONAI's ``evenly_divisible_all_gather``
handles uneven shards), and puts named figures into ``engine.state.metrics`` (``retrieval/i2t_R@1``,
``zero_shot_auc/pneumonia``, ``grounding/pointing_game``...) plus a headline scalar under the metric's own
name (mean Recall@1, mean zero-shot AUC, pointing-game accuracy), which MONAI's key-metric tracking needs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from ignite.metrics import Metric
from monai.metrics import compute_roc_auc
from monai.utils import convert_to_tensor, evenly_divisible_all_gather

from monai_mlip.engines.grounding import heatmap_iou, pointing_game, random_map_scores
from monai_mlip.engines.retrieval import retrieval_recall
from monai_mlip.engines.zero_shot import ZeroShotClassifier

__all__ = ["GroundingMetric", "RetrievalMetric", "ZeroShotAUCMetric", "metric_key"]

logger = logging.getLogger("monai_mlip.handlers")


def metric_key(group: str, name: str) -> str:
    """``metric_key("zero_shot_auc", "Pleural Effusion")`` -> ``"zero_shot_auc/pleural_effusion"``."""
    return f"{group}/{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}"


def _gather(chunks: list[torch.Tensor]) -> torch.Tensor:
    local = torch.cat(chunks) if chunks else torch.zeros(0)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return evenly_divisible_all_gather(local, concat=True)
    return local


class _Collector(Metric):
    """Keeps ``[B, ...]`` tensors of every iteration (on the CPU) for a metric computed at the end.

    ``compute`` returns named figures; all go into ``engine.state.metrics`` and the metric's own name gets
    the :meth:`headline` figure, a scalar, so the metric can be a MONAI workflow's key metric.
    """

    _fields: tuple[str, ...] = ()

    def __init__(self, output_transform: Callable[[Any], Sequence[torch.Tensor]] = lambda x: x) -> None:
        super().__init__(output_transform=output_transform)

    def headline(self, results: dict[str, float]) -> float:
        """The figure stored under the metric's name (the mean of all figures unless a subclass says)."""
        return sum(results.values()) / len(results) if results else float("nan")

    def completed(self, engine: Engine, name: str) -> None:
        results = self.compute()
        engine.state.metrics.update(results)
        engine.state.metrics[name] = self.headline(results)

    def reset(self) -> None:
        self._chunks: dict[str, list[torch.Tensor]] = {name: [] for name in self._fields}

    def update(self, output: Sequence[torch.Tensor]) -> None:
        for name, value in zip(self._fields, output, strict=True):
            # plain tensors: gathering MetaTensors across processes would try to collate their metadata
            self._chunks[name].append(convert_to_tensor(value, track_meta=False).detach().float().cpu())

    def gathered(self) -> dict[str, torch.Tensor]:
        return {name: _gather(chunks) for name, chunks in self._chunks.items()}


class RetrievalMetric(_Collector):
    """Image-to-report and report-to-image Recall@k; ``output_transform`` gives ``(image_embeds, text_embeds)``."""

    _fields = ("image", "text")

    def __init__(self, ks: Sequence[int] = (1, 5), output_transform: Callable = lambda x: x) -> None:
        self.ks = tuple(ks)
        super().__init__(output_transform)

    def compute(self) -> dict[str, float]:
        data = self.gathered()
        recall = retrieval_recall(data["image"], data["text"], ks=self.ks)
        return {f"retrieval/{name}": value for name, value in recall.items()}

    def headline(self, results: dict[str, float]) -> float:
        """Mean Recall@(smallest k) of the two directions."""
        k = min(self.ks)
        return (results[f"retrieval/i2t_R@{k}"] + results[f"retrieval/t2i_R@{k}"]) / 2


class ZeroShotAUCMetric(_Collector):
    """Zero-shot ROC AUC per finding with prompt ensembles.

    ``output_transform`` gives ``(image_embeds [B, D], labels [B, C])`` with labels in ``label_names`` order
    (1 positive, 0 or NaN negative, -1 uncertain: excluded). Findings with fewer than ``min_cases`` positives
    or negatives are left out (and logged).

    Args:
        classifier: the prompt-ensemble classifier of the model being evaluated.
        label_names: names of the label columns.
        min_cases: fewest positives and negatives for an AUC.
    """

    _fields = ("image", "labels")

    def __init__(
        self,
        classifier: ZeroShotClassifier,
        label_names: Sequence[str],
        min_cases: int = 5,
        output_transform: Callable = lambda x: x,
    ) -> None:
        self.classifier = classifier
        self.label_names = list(label_names)
        self.min_cases = min_cases
        super().__init__(output_transform)

    def compute(self) -> dict[str, float]:
        data = self.gathered()
        scores = self.classifier.scores(data["image"])
        results = {}
        for column, finding in enumerate(self.classifier.findings):
            truth = data["labels"][:, self.label_names.index(finding)].nan_to_num(0.0)
            known = truth >= 0
            positives = int((truth[known] == 1).sum())
            negatives = int(known.sum()) - positives
            if min(positives, negatives) < self.min_cases:
                logger.info("zero-shot %s left out: %d positives, %d negatives", finding, positives, negatives)
                continue
            auc = compute_roc_auc(scores[known, column], truth[known])
            results[metric_key("zero_shot_auc", finding)] = float(auc)
        return results


class GroundingMetric(_Collector):
    """Pointing game and IoU of phrase heatmaps against ground-truth masks, with the random-map baseline.

    ``output_transform`` gives ``(heatmaps [B, rows, cols], masks [B, 1, H, W] or [B, H, W])``.

    Args:
        threshold: IoU threshold on the min-max-normalised map.
        random_draws: random maps per item for the baseline.
        seed: the baseline's seed.
    """

    _fields = ("heatmap", "mask")

    def __init__(
        self, threshold: float = 0.5, random_draws: int = 20, seed: int = 0, output_transform: Callable = lambda x: x
    ) -> None:
        self.threshold = threshold
        self.random_draws = random_draws
        self.seed = seed
        super().__init__(output_transform)

    def update(self, output: Sequence[torch.Tensor]) -> None:
        heatmaps, masks = output
        masks = masks.reshape(len(masks), *masks.shape[-2:]) > 0.5
        super().update((heatmaps, masks))

    def compute(self) -> dict[str, float]:
        data = self.gathered()
        heatmaps, masks = data["heatmap"], data["mask"] > 0.5
        if not len(heatmaps):
            return {}
        random_hits, random_iou = random_map_scores(
            masks, tuple(heatmaps.shape[-2:]), self.random_draws, self.threshold, self.seed
        )
        return {
            "grounding/pointing_game": float(pointing_game(heatmaps, masks).float().mean()),
            "grounding/pointing_game_random": float(random_hits.mean()),
            "grounding/iou": float(heatmap_iou(heatmaps, masks, self.threshold).mean()),
            "grounding/iou_random": float(random_iou.mean()),
            "grounding/phrases": float(len(heatmaps)),
        }

    def headline(self, results: dict[str, float]) -> float:
        """The pointing-game accuracy."""
        return results.get("grounding/pointing_game", float("nan"))
