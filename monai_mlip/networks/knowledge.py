"""The knowledge encoder of the knowledge-guided recipe (``mlip_kg``, Li et al., CVPR 2024).

Each concept of the knowledge file (:mod:`monai_mlip.data.knowledge`) is described in one text (name,
definition, locations, synonyms); the report encoder reads those texts and a projection of its own maps
them into the shared space. The paper encodes UMLS knowledge; sharing the report encoder (rather than a
second language model) is this reconstruction's choice: the knowledge embeddings then live in the same
space as the report tokens they guide, and a term that is off costs only this projection.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from monai_mlip.data.knowledge import Knowledge

__all__ = ["KnowledgeEncoder"]


class KnowledgeEncoder(nn.Module):
    """Concept descriptions -> ``[C, D]`` L2-normalised knowledge embeddings.

    Args:
        knowledge: the concepts.
        tokenizer: the report encoder's tokenizer.
        hidden_size: ``H``, the report encoder's width.
        embed_dim: ``D``, the shared space.
        max_length: token budget of a description.
    """

    def __init__(
        self, knowledge: Knowledge, tokenizer: Any, hidden_size: int, embed_dim: int, max_length: int = 64
    ) -> None:
        super().__init__()
        texts = [concept.description() for concept in knowledge.concepts]
        tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        # rebuilt from the knowledge file with the model, so not part of the saved state
        self.register_buffer("input_ids", tokens["input_ids"], persistent=False)
        self.register_buffer("attention_mask", tokens["attention_mask"], persistent=False)
        self.register_buffer("category_of", torch.tensor(knowledge.category_of()), persistent=False)
        self.projection = nn.Linear(hidden_size, embed_dim, bias=False)

    @property
    def num_concepts(self) -> int:
        """``C``."""
        return int(self.input_ids.shape[0])

    def forward(self, text_tower: nn.Module) -> torch.Tensor:
        """Encode the descriptions with ``text_tower`` (a :class:`~monai_mlip.networks.TextTower`): ``[C, D]``."""
        features = text_tower(self.input_ids, self.attention_mask).global_features
        return F.normalize(self.projection(features), dim=-1)
