"""Image-supported masked language modelling (the entity-driven MLM of ``mmclip``, Wu et al.).

The report with its entity tokens masked is encoded by the report encoder; one transformer decoder layer
(self-attention over the tokens, cross-attention to the image's patch features, feed-forward: torch's
``TransformerDecoderLayer``) lets each token read the image, and a BERT-style head predicts the masked
tokens with the output weights tied to the report encoder's word embeddings. A learned "no image" key is
always among the keys, so a report without an image (unpaired data) still has something to attend to.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from monai_mlip.networks.vision import uniform_noise

__all__ = ["ImageSupportedMLMHead", "mask_entity_tokens"]


def mask_entity_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    concept_index: torch.Tensor,
    mask_token_id: int,
    entity_prob: float = 0.5,
    other_prob: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask entity tokens (``concept_index >= 0``) with probability ``entity_prob`` and other real tokens
    with ``other_prob``.

    Args:
        input_ids: ``[B, L]`` long.
        attention_mask: ``[B, L]``, 1 for real tokens.
        concept_index: ``[B, L]`` long, the concept of each token (``-1``: none; special tokens are ``-1``).
        mask_token_id: the tokenizer's ``[MASK]`` id.

    Returns:
        The masked ids ``[B, L]`` and the labels ``[B, L]`` (the original id where masked, ``-100`` elsewhere).
    """
    draw = uniform_noise(tuple(input_ids.shape), input_ids.device, generator)
    entity = concept_index >= 0
    # the first token ([CLS]) and the last real one ([SEP]) are never "other" tokens to mask
    inner = attention_mask.bool() & (torch.arange(input_ids.shape[1], device=input_ids.device) > 0)
    inner &= torch.cumsum(attention_mask.flip(1), 1).flip(1) > 1
    chosen = (entity & (draw < entity_prob)) | (~entity & inner & (draw < other_prob))
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return torch.where(chosen, torch.full_like(input_ids, mask_token_id), input_ids), labels


class ImageSupportedMLMHead(nn.Module):
    """Token states ``[B, L, H]`` + patch features ``[B, N, E]`` -> logits of the selected tokens ``[K, V]``.

    Args:
        hidden_size: ``H``, the report encoder's width.
        image_dim: ``E``, the vision tower's width.
        vocab_size: ``V``.
        num_heads: attention heads of the fusion layer.
    """

    def __init__(self, hidden_size: int, image_dim: int, vocab_size: int, num_heads: int = 4) -> None:
        super().__init__()
        self.image_to_text = nn.Linear(image_dim, hidden_size)
        self.no_image = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.fusion = nn.TransformerDecoderLayer(
            hidden_size, num_heads, dim_feedforward=4 * hidden_size, dropout=0.0, batch_first=True, norm_first=True
        )
        self.transform = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size))
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(
        self,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor,
        patches: torch.Tensor,
        has_image: torch.Tensor,
        selected: torch.Tensor,
        word_embeddings: torch.Tensor,
    ) -> torch.Tensor:
        """Predict the selected tokens.

        Args:
            tokens: ``[B, L, H]`` token states of the masked report.
            attention_mask: ``[B, L]``, 1 for real tokens.
            patches: ``[B, N, E]`` patch features of the image.
            has_image: ``[B]`` bool; a sample without an image attends only to the "no image" key.
            selected: ``[B, L]`` bool, the tokens to predict.
            word_embeddings: ``[V, H]`` the report encoder's input embeddings (the tied output weights).

        Returns:
            ``[K, V]`` logits, ``K = selected.sum()``.
        """
        memory = torch.cat([self.no_image.expand(len(tokens), -1, -1), self.image_to_text(patches)], dim=1)
        hidden = ~has_image.bool()[:, None].expand(-1, patches.shape[1])
        memory_padding = torch.cat([torch.zeros_like(hidden[:, :1]), hidden], dim=1)
        fused = self.fusion(
            tokens, memory, tgt_key_padding_mask=~attention_mask.bool(), memory_key_padding_mask=memory_padding
        )
        return F.linear(self.transform(fused[selected]), word_embeddings, self.bias)
