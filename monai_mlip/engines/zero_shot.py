"""Zero-shot classification with prompt ensembles (BioViL / CLIP style).

For each finding the normalised embeddings of its positive prompts are averaged and re-normalised,
likewise the negative prompts; an image's score is the softmax probability of the positive class
over the two cosine similarities scaled by the model's logit scale (monotone in
``cos(image, positive) - cos(image, negative)``, so its AUC is that of the similarity difference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from monai_mlip.data.reports import split_sentences, tokenize_sentences
from monai_mlip.engines.prompts import PromptSet, prompts_for

__all__ = ["ZeroShotClassifier", "tokenize_texts", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def tokenize_texts(texts: Sequence[str], tokenizer: Any, max_length: int = 64) -> dict[str, torch.Tensor]:
    """Tokenise short texts (prompts) into ``[T, L]`` ``input_ids``, ``attention_mask``, ``sentence_index``."""
    tokens = [tokenize_sentences(split_sentences(text), tokenizer, max_length) for text in texts]
    return {key: torch.stack([t[key] for t in tokens]) for key in tokens[0]}


class ZeroShotClassifier:
    """Score images for findings with prompt ensembles.

    Args:
        model: an :class:`~monai_mlip.networks.MLIP` (or a DDP wrapper of one).
        findings: finding names with built-in prompts (:data:`~monai_mlip.engines.prompts.PROMPTS`) or in ``prompts``.
        prompts: custom prompt sets, ``{name: {"positive": [...], "negative": [...]}}``.
        max_length: token length of a prompt.
    """

    def __init__(
        self,
        model: nn.Module,
        findings: Sequence[str],
        prompts: Mapping[str, PromptSet | Mapping] | None = None,
        max_length: int = 64,
    ) -> None:
        self.model = model
        self.prompt_sets = prompts_for(findings, prompts)
        self.max_length = max_length
        self._tokenizer: Any = None

    @property
    def findings(self) -> list[str]:
        return list(self.prompt_sets)

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """``[F, 2, D]``: per finding, the normalised mean embedding of its negative then positive prompts."""
        model = unwrap(self.model)
        if self._tokenizer is None:
            self._tokenizer = model.tokenizer
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            classes = []
            for prompt_set in self.prompt_sets.values():
                pair = []
                for texts in (prompt_set.negative, prompt_set.positive):
                    tokens = tokenize_texts(texts, self._tokenizer, self.max_length)
                    embeds = model.encode_text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
                    pair.append(F.normalize(embeds.float().mean(dim=0), dim=-1))
                classes.append(torch.stack(pair))
        finally:
            model.train(was_training)
        return torch.stack(classes)

    def scale(self) -> torch.Tensor:
        """The model's logit scale (exponentiated, clamped at 100, detached) applied to the cosines."""
        return unwrap(self.model).logit_scale.detach().exp().clamp(max=100.0)

    @torch.no_grad()
    def scores(self, image_embeds: torch.Tensor, class_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, D]`` normalised image embeddings -> ``[B, F]`` probabilities of each finding being present."""
        class_embeds = self.class_embeddings() if class_embeds is None else class_embeds
        logits = self.scale() * torch.einsum("bd,fkd->bfk", image_embeds.float(), class_embeds.to(image_embeds.device))
        return logits.softmax(dim=-1)[..., 1]
