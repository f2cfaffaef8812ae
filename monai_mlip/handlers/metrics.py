"""Ignite metrics of the pre-training validation: retrieval, zero-shot AUC and grounding.

Each accumulates over an evaluation run, gathers across processes (MONAI's ``evenly_divisible_all_gather``
handles uneven shards), and puts named figures into ``engine.state.metrics`` (``retrieval/i2t_R@1``,
``zero_shot_auc/pneumonia``, ``grounding/pointing_game``...) plus a headline scalar under the metric's own
name (mean Recall@1, mean zero-shot AUC, pointing-game accuracy), which MONAI's key-metric tracking needs.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from ignite.metrics import Metric
from monai.metrics import compute_roc_auc
from monai.utils import convert_to_tensor, evenly_divisible_all_gather

from monai_mlip.metrics import best_f1, flat_maps, heatmap_iou, pointing_game, random_map_scores, retrieval_recall
from monai_mlip.zero_shot.classifier import SCORES, ZeroShotClassifier

__all__ = [
    "BinaryClassificationMetric",
    "GroundingMetric",
    "RetrievalMetric",
    "ZeroShotAUCMetric",
    "metric_key",
]

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
    """Zero-shot ROC AUC per finding with prompt ensembles, by the global or the OT local score.

    ``output_transform`` gives ``(embeds, labels [B, C])``: ``embeds`` are the ``[B, D]`` image embeddings
    (``score="global"``) or the ``[B, P, D]`` embeddings of every patch (``score="local"``); labels are in
    ``label_names`` order (1 positive, 0 or NaN negative, -1 uncertain: excluded). Findings with fewer than
    ``min_cases`` positives or negatives are left out (and logged). Figures are named
    ``zero_shot_auc/<finding>`` (global) and ``zero_shot_local_auc/<finding>`` (local).

    Args:
        classifier: the prompt-ensemble classifier of the model being evaluated.
        label_names: names of the label columns.
        min_cases: fewest positives and negatives for an AUC.
        score: ``"global"`` or ``"local"`` (:mod:`monai_mlip.zero_shot.classifier`).
    """

    _fields = ("image", "labels")

    def __init__(
        self,
        classifier: ZeroShotClassifier,
        label_names: Sequence[str],
        min_cases: int = 5,
        score: str = "global",
        output_transform: Callable = lambda x: x,
    ) -> None:
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.classifier = classifier
        self.label_names = list(label_names)
        self.min_cases = min_cases
        self.score = score
        super().__init__(output_transform)

    def compute(self) -> dict[str, float]:
        data = self.gathered()
        if self.score == "local":
            scores, group = self.classifier.local_scores(data["image"]), "zero_shot_local_auc"
        else:
            scores, group = self.classifier.scores(data["image"]), "zero_shot_auc"
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
            results[metric_key(group, finding)] = float(auc)
        return results


class GroundingMetric(_Collector):
    """Pointing game and IoU of phrase heatmaps against ground-truth masks, with the random-map baseline.

    ``output_transform`` gives ``(heatmaps [B, rows, cols], masks [B, 1, H, W] or [B, H, W])``.

    A flat heatmap (:func:`~monai_mlip.metrics.flat_maps`: the phrase was its report's only
    sentence, so the OT plan column is the patch marginal itself) points nowhere; its argmax would be pixel
    (0, 0), a miss that says nothing about the model. Such phrases are counted in
    ``grounding/phrases_skipped`` and left out of every score (and of the random baseline);
    ``grounding/phrases`` counts the phrases scored.

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
        flat = flat_maps(heatmaps)
        skipped = {"grounding/phrases_skipped": float(flat.sum())}
        heatmaps, masks = heatmaps[~flat], masks[~flat]
        if not len(heatmaps):
            return {"grounding/pointing_game": float("nan"), "grounding/phrases": 0.0, **skipped}
        random_hits, random_iou = random_map_scores(
            masks, tuple(heatmaps.shape[-2:]), self.random_draws, self.threshold, self.seed
        )
        return {
            "grounding/pointing_game": float(pointing_game(heatmaps, masks).float().mean()),
            "grounding/pointing_game_random": float(random_hits.mean()),
            "grounding/iou": float(heatmap_iou(heatmaps, masks, self.threshold).mean()),
            "grounding/iou_random": float(random_iou.mean()),
            "grounding/phrases": float(len(heatmaps)),
            **skipped,
        }

    def headline(self, results: dict[str, float]) -> float:
        """The pointing-game accuracy."""
        return results.get("grounding/pointing_game", float("nan"))


class BinaryClassificationMetric(_Collector):
    """ROC AUC, best F1 and the accuracy at the best-F1 threshold of a binary classifier (PROTOCOLS.md).

    ``output_transform`` gives ``(scores [B] or [B, 1], labels [B] or [B, 1])``. Figures go in
    ``engine.state.metrics`` as ``{prefix}/auc``, ``{prefix}/f1``, ``{prefix}/accuracy``, ``{prefix}/threshold``
    and ``{prefix}/cases``; the metric's own name holds the AUC. With ``roc_path`` the ROC curve is also
    drawn there (PNG) every time the metric completes, and with ``log_dir`` to TensorBoard too (the step
    counts the evaluations).

    Args:
        prefix: name of the figures' group (for example ``pneumonia``).
        roc_path: where to draw the ROC curve, or ``None``.
        log_dir: TensorBoard folder for the ROC curve, or ``None``.
    """

    _fields = ("score", "label")

    def __init__(
        self,
        prefix: str = "classification",
        roc_path: str | os.PathLike | None = None,
        output_transform: Callable = lambda x: x,
        log_dir: str | os.PathLike | None = None,
    ) -> None:
        from monai_mlip.handlers.plots import FigureLogger

        self.prefix = prefix
        self.roc_path = roc_path
        self.figures = FigureLogger(log_dir)
        self._evaluations = 0
        super().__init__(output_transform)

    def update(self, output: Sequence[torch.Tensor]) -> None:
        scores, labels = output
        super().update((torch.as_tensor(scores).reshape(-1), torch.as_tensor(labels).reshape(-1)))

    def compute(self) -> dict[str, float]:
        data = self.gathered()
        scores, labels = data["score"], data["label"]
        results = {f"{self.prefix}/cases": float(len(labels))}
        if labels.min() == labels.max():
            logger.info("%s: one class only in %d cases, no AUC or F1", self.prefix, len(labels))
            return results
        results[f"{self.prefix}/auc"] = float(compute_roc_auc(scores, labels))
        results.update({f"{self.prefix}/{name}": value for name, value in best_f1(scores, labels).items()})
        if self.roc_path is not None:
            from monai_mlip.handlers.plots import save_roc_curve

            auc = results[f"{self.prefix}/auc"]
            self._evaluations += 1
            title = f"{self.prefix}: AUC {auc:.3f}"
            save_roc_curve(scores, labels, self.roc_path, title, self.figures, self._evaluations)
        return results

    def headline(self, results: dict[str, float]) -> float:
        """The ROC AUC."""
        return results.get(f"{self.prefix}/auc", float("nan"))
