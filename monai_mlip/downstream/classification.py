"""Image-level classifiers on the pre-trained vision tower: linear probe, full fine-tuning and zero-shot.

All three map ``[B, C, H, W]`` images to ``[B, K]`` logits (``K = 1`` for a binary finding: the logit of
"present"), so the downstream bundles share one post-processing (sigmoid), one metric and one inference
output whatever the mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from monai_mlip.networks.encoder import ImageEncoder
from monai_mlip.networks.export import ENCODER_DIR, SAVED, encoder_config, load_encoder
from monai_mlip.networks.factory import load_pretrained
from monai_mlip.networks.mlip import MLIP
from monai_mlip.networks.vision import VisionTower
from monai_mlip.zero_shot.classifier import SCORES, PromptSentences, ZeroShotClassifier, prompt_local_logits

__all__ = [
    "INITS",
    "MODES",
    "CXRClassifier",
    "FeatureStandardizer",
    "ZeroShotLogits",
    "build_classifier",
    "check_trainable",
    "classifier_from_pretrained",
]

MODES = ("linear_probe", "fine_tune")
INITS = ("mlip", "random")


class FeatureStandardizer(nn.BatchNorm1d):
    """``BatchNorm1d`` without affine parameters: standardises each feature over the batch (running
    statistics in evaluation), the normalisation MoCo v3 and MAE put before a linear probe.

    A batch of one (the last, short batch of an epoch) is standardised with the running statistics instead
    of failing: there is no batch variance to use.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, E]`` -> ``[B, E]``."""
        if self.training and features.shape[0] == 1:
            return F.batch_norm(features, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(features)


class CXRClassifier(nn.Module):
    """A vision tower's global features and a linear head.

    Args:
        encoder: the vision tower (pre-trained or not).
        num_classes: outputs (1 for a binary finding).
        freeze_encoder: linear probe: the encoder gets no gradient and stays in eval mode (no dropout, no
            stochastic depth) even while the head trains, and the head reads standardised features
            (:class:`FeatureStandardizer`), which gave the better probes on the synthetic 10 % splits
            (``docs/experiments.md``).
    """

    def __init__(self, encoder: VisionTower, num_classes: int = 1, freeze_encoder: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = FeatureStandardizer(encoder.embed_dim) if freeze_encoder else nn.Identity()
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        self.freeze_encoder = freeze_encoder
        encoder.requires_grad_(not freeze_encoder)

    def train(self, mode: bool = True) -> CXRClassifier:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    @property
    def rebuild_config(self) -> dict:
        """What rebuilds this architecture without the pre-training run
        (:func:`~monai_mlip.downstream.saved.network_config`)."""
        return {
            "network": "classifier",
            "encoder": encoder_config(self.encoder),
            "num_classes": self.head.out_features,
            "freeze_encoder": self.freeze_encoder,
        }

    @property
    def normalization(self) -> tuple[float, float]:
        """``(mean, std)`` of the grey input the encoder expects (:attr:`VisionTower.normalization`)."""
        return self.encoder.normalization

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, num_classes]`` logits."""
        return self.head(self.norm(self.encoder(image).global_features))


def classifier_from_pretrained(
    models_dir: str | os.PathLike,
    mode: str = "linear_probe",
    init: str = "mlip",
    num_classes: int = 1,
) -> CXRClassifier:
    """A classifier on the image encoder of a pre-training run (its ``models/encoder``; no text tower).

    Args:
        models_dir: the pre-training bundle's ``models`` folder.
        mode: ``linear_probe`` (frozen encoder) or ``fine_tune`` (everything trains).
        init: ``mlip`` (the pre-trained weights) or ``random`` (the same architecture, random init: the
            baseline).
        num_classes: outputs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    tower = load_encoder(Path(models_dir) / ENCODER_DIR, weights=SAVED if init == "mlip" else None)
    return CXRClassifier(tower, num_classes=num_classes, freeze_encoder=mode == "linear_probe")


class ZeroShotLogits(nn.Module):
    """Zero-shot prompt-ensemble scores as logits: ``[B, C, H, W]`` -> ``[B, F]``.

    With ``score="global"`` the logit of finding ``f`` is ``scale * (cos(image, positive_f) -
    cos(image, negative_f))``; with ``score="local"`` it is ``local_scale * (OT(patches, positive_f) -
    OT(patches, negative_f))``, the patch-sentence OT similarity of MLIP's local loss. Either way its sigmoid
    is exactly the two-class softmax probability of :class:`ZeroShotClassifier`'s ``scores`` or
    ``local_scores``. The prompt embeddings are computed once, at construction, and kept as buffers.

    Args:
        model: the pre-trained MLIP model.
        findings: finding names with built-in prompts, or keys of ``prompts``.
        prompts: custom prompt sets, ``{name: {"positive": [...], "negative": [...]}}``.
        score: ``"global"`` or ``"local"``.
        ot_epsilon: entropic regularisation of the local score's OT.
    """

    def __init__(
        self,
        model: MLIP,
        findings: Sequence[str],
        prompts: Mapping[str, Mapping] | None = None,
        score: str = "global",
        ot_epsilon: float = 0.05,
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.encoder = ImageEncoder.from_mlip(model)
        self.score = score
        self.ot_epsilon = ot_epsilon
        with torch.no_grad():
            classifier = ZeroShotClassifier(model, findings, prompts)
            if score == "global":
                classes = classifier.class_embeddings()  # [F, 2, D]
                self.register_buffer("direction", classes[:, 1] - classes[:, 0])  # [F, D]
                self.register_buffer("scale", classifier.scale())
            else:
                sentences = classifier.class_sentences()
                self.register_buffer("sentences", sentences.embeds)  # [F, 2, S, D]
                self.register_buffer("sentence_mask", sentences.mask)  # [F, 2, S]
                self.register_buffer("scale", classifier.local_scale())
        self.findings = list(findings)

    @property
    def image_size(self) -> int:
        return self.encoder.vision.image_size

    @property
    def normalization(self) -> tuple[float, float]:
        """``(mean, std)`` of the grey input the encoder expects (:attr:`VisionTower.normalization`)."""
        return self.encoder.vision.normalization

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, F]`` logits."""
        if self.score == "global":
            return self.scale * self.encoder(image) @ self.direction.t()
        sentences = PromptSentences(self.sentences, self.sentence_mask)
        logits = prompt_local_logits(self.encoder.patches(image), sentences, self.scale, self.ot_epsilon)
        return logits[..., 1] - logits[..., 0]


def check_trainable(mode: str) -> None:
    """Refuse to train in ``zero_shot`` mode (there is nothing to train) with a message that says what to run."""
    if mode == "zero_shot":
        raise ValueError("mode 'zero_shot' trains nothing: run the bundle's evaluate.json with --mode zero_shot")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {('zero_shot', *MODES)}, got {mode!r}")


def build_classifier(
    pretrained_dir: str | os.PathLike,
    mode: str,
    init: str = "mlip",
    findings: Sequence[str] = ("Pneumonia",),
    prompts: Mapping[str, Mapping] | None = None,
    zero_shot_score: str = "global",
) -> nn.Module:
    """The downstream bundles' network for a mode: ``zero_shot`` (:class:`ZeroShotLogits` on the pre-trained
    model, one logit per finding), ``linear_probe`` or ``fine_tune`` (:class:`CXRClassifier`, one logit per
    finding).

    Args:
        pretrained_dir: the pre-training bundle's ``models`` folder.
        mode: ``zero_shot``, ``linear_probe`` or ``fine_tune``.
        init: ``mlip`` or ``random`` (trained modes only).
        findings: the findings scored (their prompts, for zero-shot).
        prompts: custom prompt sets for zero-shot.
        zero_shot_score: ``global`` or ``local`` (the OT patch-sentence score), for zero-shot.
    """
    if mode == "zero_shot":
        return ZeroShotLogits(load_pretrained(pretrained_dir).eval(), findings, prompts, score=zero_shot_score)
    return classifier_from_pretrained(pretrained_dir, mode=mode, init=init, num_classes=len(findings))
