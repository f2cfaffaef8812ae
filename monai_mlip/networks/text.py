"""Text tower: a Hugging Face encoder with sentence pooling.

Any ``AutoModel`` encoder works (BERT, RoBERTa, ...): it is loaded from a local directory written by
``save_pretrained`` or from a hub name already in the local cache, never from the network
(:func:`monai_mlip.hub.resolve_hf_source`). The global text embedding is the first ([CLS]) token state
(``pooling="cls"``, MLIP's choice for a pretrained encoder) or the mean of the real tokens' states
(``pooling="mean"``: a randomly initialised BERT gives nearly the same [CLS] state for every input, cosine
about 0.9999, so contrastive training from scratch gets no gradient through it and collapses); the
embedding of sentence ``s`` is the mean of the states of the tokens whose ``sentence_index`` is ``s``
(``sentence_index`` comes from :func:`monai_mlip.data.tokenize_sentences`, ``-1`` for special and padding
tokens).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn

from monai_mlip.hub import load_tokenizer, resolve_hf_source

__all__ = ["TextFeatures", "TextTower", "pool_sentences"]


@dataclass
class TextFeatures:
    """Outputs of :class:`TextTower` (``H`` = encoder width).

    Attributes:
        token_features: ``[B, L', H]`` last hidden states, ``L'`` = the longest attention mask in the batch
            (trailing padding columns are not run through the encoder).
        global_features: ``[B, H]`` the first ([CLS]) token state, or the mean real-token state (``pooling="mean"``).
        sentence_features: ``[B, S, H]`` mean token state of each sentence, zero for absent sentences
            (``None`` when no ``sentence_index`` was given).
        sentence_mask: ``[B, S]`` bool, ``True`` for sentences that have at least one token (or ``None``).
    """

    token_features: torch.Tensor
    global_features: torch.Tensor
    sentence_features: torch.Tensor | None = None
    sentence_mask: torch.Tensor | None = None


def pool_sentences(
    token_features: torch.Tensor, sentence_index: torch.Tensor, max_sentences: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pool token states per sentence.

    Args:
        token_features: ``[B, L, H]``.
        sentence_index: ``[B, L]`` long, sentence number of each token, negative for tokens of no sentence.
            Sentences numbered ``max_sentences`` or higher are ignored.
        max_sentences: ``S``.

    Returns:
        ``[B, S, H]`` sentence features (zero where a sentence has no token) and the ``[B, S]`` bool mask.
    """
    numbers = torch.arange(max_sentences, device=sentence_index.device)
    membership = (sentence_index.unsqueeze(-1) == numbers).to(token_features.dtype)  # [B, L, S]
    counts = membership.sum(dim=1)  # [B, S]
    sums = torch.einsum("bls,blh->bsh", membership, token_features)
    return sums / counts.clamp(min=1).unsqueeze(-1), counts > 0


class TextTower(nn.Module):
    """A Hugging Face encoder returning token, sentence and [CLS] features.

    Args:
        model_name_or_path: a local ``save_pretrained`` directory or a hub name in the local cache.
        max_sentences: ``S``, sentence slots in the output. Tokens numbered ``S`` or higher (or ``-1``,
            which :func:`~monai_mlip.data.tokenize_sentences` gives the sentences past its
            ``max_sentences``) are left out of the sentence features but are encoded, so they shape the
            global features.
        pooling: the global embedding: ``"cls"`` (the first token state) or ``"mean"`` (mean over the
            attention mask).
        **model_kwargs: further ``AutoModel.from_pretrained`` arguments.

    Raises:
        PretrainedNotFoundError: the model is neither a local directory nor in the local cache.
    """

    def __init__(
        self, model_name_or_path: str | os.PathLike, max_sentences: int = 16, pooling: str = "cls", **model_kwargs: Any
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.pooling = pooling
        from transformers import AutoModel

        self.source = str(model_name_or_path)
        model_kwargs.setdefault("dtype", torch.float32)
        self.model = AutoModel.from_pretrained(resolve_hf_source(self.source), local_files_only=True, **model_kwargs)
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # unused: the global embedding is the [CLS] state (and DDP needs every param used)
        self.max_sentences = max_sentences

    @property
    def hidden_size(self) -> int:
        """Width ``H`` of the token states."""
        return int(self.model.config.hidden_size)

    @property
    def max_length(self) -> int:
        """Longest token sequence the encoder accepts (its position embeddings)."""
        return int(self.model.config.max_position_embeddings)

    @cached_property
    def tokenizer(self) -> Any:
        """The encoder's tokenizer, loaded on first use from the same local source."""
        return load_tokenizer(self.source)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor | None = None
    ) -> TextFeatures:
        """Encode right-padded token sequences.

        Args:
            input_ids: ``[B, L]`` long.
            attention_mask: ``[B, L]``, 1 for real tokens, 0 for trailing padding.
            sentence_index: ``[B, L]`` long sentence number per token, -1 for special and padding tokens.
        """
        length = max(int(attention_mask.sum(dim=1).max()), 1)
        states = self.model(
            input_ids=input_ids[:, :length], attention_mask=attention_mask[:, :length]
        ).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = attention_mask[:, :length, None].to(states.dtype)
            pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        features = TextFeatures(token_features=states, global_features=pooled)
        if sentence_index is not None:
            features.sentence_features, features.sentence_mask = pool_sentences(
                states, sentence_index[:, :length], self.max_sentences
            )
        return features
