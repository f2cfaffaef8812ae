"""Zero-shot classification with prompt ensembles (BioViL / CLIP style), by the global or the OT local score.

Global score: for each finding the normalised embeddings of its positive prompts are averaged and
re-normalised, likewise the negative prompts; an image's score is the softmax probability of the positive
class over the two cosine similarities scaled by the model's logit scale (monotone in
``cos(image, positive) - cos(image, negative)``, so its AUC is that of the similarity difference).

Local score: the patch-sentence OT similarity that MLIP's local loss trains
(:func:`~monai_mlip.losses.patch_sentence_similarity`), between the image's patches and the sentences of a
finding's positive prompts, against the same for its negative prompts, scaled by the local logit scale.
Each prompt set is one "report" whose sentences are the prompts' sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from monai_mlip.data.reports import split_sentences, tokenize_sentences
from monai_mlip.losses import patch_sentence_similarity
from monai_mlip.networks.mlip import unwrap
from monai_mlip.zero_shot.prompts import PromptSet, prompts_for

__all__ = ["SCORES", "PromptSentences", "ZeroShotClassifier", "prompt_local_logits", "tokenize_texts"]

SCORES = ("global", "local")


def tokenize_texts(texts: Sequence[str], tokenizer: Any, max_length: int = 64) -> dict[str, torch.Tensor]:
    """Tokenise short texts (prompts) into ``[T, L]`` ``input_ids``, ``attention_mask``, ``sentence_index``."""
    tokens = [tokenize_sentences(split_sentences(text), tokenizer, max_length) for text in texts]
    return {key: torch.stack([t[key] for t in tokens]) for key in tokens[0]}


class PromptSentences(NamedTuple):
    """Per finding, the sentences of its negative then positive prompts: ``embeds`` ``[F, 2, S, D]``
    (L2-normalised, zero on padding) and ``mask`` ``[F, 2, S]`` bool."""

    embeds: torch.Tensor
    mask: torch.Tensor


def prompt_local_logits(
    patch_embeds: torch.Tensor,
    sentences: PromptSentences,
    scale: torch.Tensor | float,
    epsilon: float = 0.05,
    max_iter: int = 100,
    chunk: int = 256,
) -> torch.Tensor:
    """OT local logits of images against prompt sets.

    Args:
        patch_embeds: ``[B, P, D]`` embeddings of every patch of each image (no masking).
        sentences: the prompt sentences of ``F`` findings.
        scale: the local logit scale.
        epsilon: entropic regularisation of the OT (as in training).
        max_iter: Sinkhorn iteration cap.
        chunk: images per OT solve (bounds the ``chunk x 2F x P x S`` cost tensor).

    Returns:
        ``[B, F, 2]``: ``scale`` times the OT similarity to the negative and to the positive prompts.
    """
    findings, _, width, dim = sentences.embeds.shape
    embeds = sentences.embeds.reshape(2 * findings, width, dim).to(patch_embeds.device)
    mask = sentences.mask.reshape(2 * findings, width).to(patch_embeds.device)
    similarity = torch.cat(
        [
            patch_sentence_similarity(
                part,
                torch.ones(part.shape[:2], dtype=torch.bool, device=part.device),
                embeds,
                mask,
                epsilon=epsilon,
                max_iter=max_iter,
            )
            for part in patch_embeds.split(chunk)
        ]
    )
    return scale * similarity.reshape(-1, findings, 2)


class ZeroShotClassifier:
    """Score images for findings with prompt ensembles.

    Args:
        model: an :class:`~monai_mlip.networks.MLIP` (or a DDP wrapper of one).
        findings: finding names with built-in prompts (:data:`~monai_mlip.zero_shot.prompts.PROMPTS`) or in ``prompts``.
        prompts: custom prompt sets, ``{name: {"positive": [...], "negative": [...]}}``.
        max_length: token length of a prompt.
        ot_epsilon: entropic regularisation of the local score's OT (the pre-training loss's).
        ot_max_iter: Sinkhorn iteration cap of the local score.
    """

    def __init__(
        self,
        model: nn.Module,
        findings: Sequence[str],
        prompts: Mapping[str, PromptSet | Mapping] | None = None,
        max_length: int = 64,
        ot_epsilon: float = 0.05,
        ot_max_iter: int = 100,
    ) -> None:
        self.model = model
        self.prompt_sets = prompts_for(findings, prompts)
        self.max_length = max_length
        self.ot_epsilon = ot_epsilon
        self.ot_max_iter = ot_max_iter
        self._tokenizer: Any = None

    @property
    def findings(self) -> list[str]:
        return list(self.prompt_sets)

    def _encode_prompts(self, encode: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> list[torch.Tensor]:
        """``encode`` of the tokenised negative, then positive prompts of each finding, in eval mode: ``2F`` results."""
        model = unwrap(self.model)
        if self._tokenizer is None:
            self._tokenizer = model.tokenizer
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            results = []
            for prompt_set in self.prompt_sets.values():
                for texts in (prompt_set.negative, prompt_set.positive):
                    tokens = tokenize_texts(texts, self._tokenizer, self.max_length)
                    results.append(encode({key: value.to(device) for key, value in tokens.items()}))
        finally:
            model.train(was_training)
        return results

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """``[F, 2, D]``: per finding, the normalised mean embedding of its negative then positive prompts."""
        model = unwrap(self.model)

        def mean_prompt(tokens: dict[str, torch.Tensor]) -> torch.Tensor:
            embeds = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
            return F.normalize(embeds.float().mean(dim=0), dim=-1)

        return torch.stack(self._encode_prompts(mean_prompt)).reshape(len(self.prompt_sets), 2, -1)

    @torch.no_grad()
    def class_sentences(self) -> PromptSentences:
        """The sentences of every prompt of each finding's negative and positive set (``[F, 2, S, D]``)."""
        model = unwrap(self.model)

        def real_sentences(tokens: dict[str, torch.Tensor]) -> torch.Tensor:
            embeds, mask = model.encode_sentences(
                tokens["input_ids"], tokens["attention_mask"], tokens["sentence_index"]
            )
            return embeds[mask].float()  # [sentences of all the set's prompts, D]

        sets = self._encode_prompts(real_sentences)
        lengths = torch.tensor([len(s) for s in sets])
        embeds = torch.nn.utils.rnn.pad_sequence(sets, batch_first=True)
        mask = torch.arange(embeds.shape[1]) < lengths[:, None]
        findings = len(self.prompt_sets)
        return PromptSentences(embeds.reshape(findings, 2, *embeds.shape[1:]), mask.reshape(findings, 2, -1))

    def scale(self) -> torch.Tensor:
        """The model's logit scale (exponentiated, within the model's ``max_logit_scale``, detached) applied to
        the cosines."""
        model = unwrap(self.model)
        return model.logit_scale.detach().exp().clamp(max=model.max_logit_scale)

    def local_scale(self) -> torch.Tensor:
        """The same for the local (patch-sentence) similarities; the global one for a model trained without
        the local term (it has no local scale)."""
        model = unwrap(self.model)
        local = model.local_logit_scale
        return self.scale() if local is None else local.detach().exp().clamp(max=model.max_logit_scale)

    @torch.no_grad()
    def scores(self, image_embeds: torch.Tensor, class_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, D]`` normalised image embeddings -> ``[B, F]`` probabilities of each finding being present."""
        class_embeds = self.class_embeddings() if class_embeds is None else class_embeds
        logits = self.scale() * torch.einsum("bd,fkd->bfk", image_embeds.float(), class_embeds.to(image_embeds.device))
        return logits.softmax(dim=-1)[..., 1]

    @torch.no_grad()
    def local_scores(self, patch_embeds: torch.Tensor, sentences: PromptSentences | None = None) -> torch.Tensor:
        """``[B, P, D]`` embeddings of every patch -> ``[B, F]`` probabilities from the OT local score."""
        sentences = self.class_sentences() if sentences is None else sentences
        logits = prompt_local_logits(
            patch_embeds.float(), sentences, self.local_scale(), self.ot_epsilon, self.ot_max_iter
        )
        return logits.softmax(dim=-1)[..., 1]
