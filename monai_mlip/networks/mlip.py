"""The MLIP model: vision and text towers, projections into a shared space, SIE and the MIP decoder.

:class:`MLIP` computes everything the MLIP loss needs in one forward pass and returns it as a
:class:`MLIPOutput` of named tensors; :mod:`monai_mlip.losses` turns that into the global contrastive,
patch-sentence OT and masked-image-prediction terms. The ``encode_*`` methods give unmasked
embeddings for zero-shot classification and grounding.

The parts that serve one loss term only (the local logit scale, the SIE, the MIP decoder; for the other
recipes the knowledge encoder, the divergence encoder and the image-supported MLM head) are built and run
only when that term is on (``use_local``, ``use_sie``, ``use_mip``, ``use_knowledge``, ``use_teacher``,
``use_mlm``): a term that is off costs nothing, and DDP finds no parameter without a gradient.

Masking is random (MAE) or, with ``mask_strategy="attention"`` (MMCLIP's AttMIM), hides the patches the
report attends to most, found by a gradient-free pass over the whole image before the masked one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from monai_mlip.data.knowledge import Knowledge
from monai_mlip.networks.knowledge import KnowledgeEncoder
from monai_mlip.networks.mip import MaskedImageDecoder, patchify
from monai_mlip.networks.mlm import ImageSupportedMLMHead, mask_entity_tokens
from monai_mlip.networks.sie import SemanticIntegrityEstimator
from monai_mlip.networks.text import TextTower, pool_sentences
from monai_mlip.networks.vision import VisionTower, num_visible, uniform_noise

__all__ = ["MLIP", "MLIPOutput", "SentenceEmbeddings", "unwrap"]


@dataclass
class MLIPOutput:
    """Named outputs of :meth:`MLIP.forward`.

    Shapes: ``B`` batch, ``D`` shared embedding width, ``P`` patches in the grid, ``N`` visible patches
    (``int(P * (1 - mask_ratio))``, the same for every sample), ``M = P - N`` hidden patches, ``S``
    sentence slots (``max_sentences``), ``K = C * p * p`` pixels per patch.

    Attributes:
        image_embeds: ``[B, D]`` L2-normalised global image embeddings (of the masked image in training).
        text_embeds: ``[B, D]`` L2-normalised global ([CLS]) report embeddings.
        patch_embeds: ``[B, N, D]`` L2-normalised embeddings of the visible patches (of the view the
            contrastive terms read: the masked view, or the whole image with ``contrastive_view="whole"``).
        patch_index: ``[B, N]`` long, row-major grid index of each visible patch (ascending).
        visible: ``[B, P]`` bool, ``True`` for visible patches.
        sentence_embeds: ``[B, S, D]`` L2-normalised sentence embeddings, zero for absent sentences.
        sentence_mask: ``[B, S]`` bool, ``True`` for real sentences.
        integrity: ``[B]`` SIE weight ``w`` of each sample's mask (``None`` without SIE).
        patch_scores: ``[B, N]`` SIE ``phi`` of each visible patch, for an SIE-weighted patch marginal
            (``None`` without SIE).
        mip_pred: ``[B, M, K]`` decoder prediction of the hidden patches (per-patch-normalised pixels;
            ``None`` without MIP).
        mip_target: ``[B, M, K]`` per-patch-normalised pixels of the hidden patches (``None`` without MIP).
        masked_index: ``[B, M]`` long, grid index of each hidden patch (ascending).
        logit_scale: scalar, ``exp`` of the global logit scale (the stored logarithm is kept within
            ``[0, log(max_logit_scale)]`` by :meth:`MLIP.clamp_logit_scales_` after each optimiser step).
        local_logit_scale: scalar, the same for the local (patch-sentence) similarities (``None`` without
            the local term).
        knowledge_embeds: ``[C, D]`` L2-normalised embeddings of the knowledge file's concepts (``None``
            without the knowledge encoder; so are the next four).
        concept_embeds: ``[B, C, D]`` L2-normalised mean projected state of the report tokens that name each
            concept, zero where the report does not name it.
        concept_mask: ``[B, C]`` bool, the concepts each report names.
        concept_labels: ``[B, C]`` float, the concepts each report asserts (not negated).
        concept_categories: ``[C]`` long, the expert category of each concept.
        knowledge_logit_scale: scalar, ``exp`` of the knowledge terms' logit scale.
        teacher_image_embeds: ``[B, D]`` the divergence encoder's (EMA teacher's) global image embeddings of
            the whole image, no gradient (``None`` without it; so is the next).
        teacher_text_embeds: ``[B, D]`` its report embeddings.
        mlm_logits: ``[K, V]`` vocabulary logits of the ``K`` masked report tokens (``None`` without MLM).
        mlm_labels: ``[K]`` their token ids (``-100``: a placeholder row when nothing was masked).
        attention_map: ``[B, P]`` the report-to-patch attention that chose the hidden patches (attention
            masking only).
        has_image: ``[B]`` bool, the samples that have an image (unpaired reports do not).
    """

    image_embeds: torch.Tensor
    text_embeds: torch.Tensor
    patch_embeds: torch.Tensor
    patch_index: torch.Tensor
    visible: torch.Tensor
    sentence_embeds: torch.Tensor
    sentence_mask: torch.Tensor
    integrity: torch.Tensor | None
    patch_scores: torch.Tensor | None
    mip_pred: torch.Tensor | None
    mip_target: torch.Tensor | None
    masked_index: torch.Tensor
    logit_scale: torch.Tensor
    local_logit_scale: torch.Tensor | None
    knowledge_embeds: torch.Tensor | None = None
    concept_embeds: torch.Tensor | None = None
    concept_mask: torch.Tensor | None = None
    concept_labels: torch.Tensor | None = None
    concept_categories: torch.Tensor | None = None
    knowledge_logit_scale: torch.Tensor | None = None
    teacher_image_embeds: torch.Tensor | None = None
    teacher_text_embeds: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    mlm_labels: torch.Tensor | None = None
    attention_map: torch.Tensor | None = None
    has_image: torch.Tensor | None = None


class SentenceEmbeddings(NamedTuple):
    """``embeds`` ``[B, S, D]`` (L2-normalised, zero for absent sentences) and ``mask`` ``[B, S]`` bool."""

    embeds: torch.Tensor
    mask: torch.Tensor


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


class MLIP(nn.Module):
    """Medical Language-Image Pre-training with masked local representation learning.

    Args:
        vision: the vision tower.
        text: the text tower.
        embed_dim: ``D``, width of the shared space. One linear projection per modality maps both the
            global and the local (patch / sentence) features into it.
        mask_ratio: fraction of patches hidden in training mode.
        decoder_dim: MIP decoder width.
        decoder_depth: MIP decoder blocks.
        decoder_heads: MIP decoder attention heads.
        logit_scale_init: initial value of both logit scales (inverse temperatures).
        max_logit_scale: upper bound of both logit scales (:meth:`clamp_logit_scales_`).
        sie_init: SIE weight of every mask at initialisation.
        use_local: build the local logit scale (the patch-sentence term is on).
        use_sie: build the semantic integrity estimator.
        use_mip: build the masked-image-prediction decoder.
        knowledge: the knowledge file's concepts; with it the knowledge encoder is built (``use_knowledge``).
        use_teacher: build the divergence encoder, an exponential moving average of both towers and
            projections (torch's ``AveragedModel``), updated by :meth:`after_optimizer_step`.
        teacher_momentum: its EMA decay.
        use_mlm: build the image-supported MLM head (needs the tokenizer's ``[MASK]`` token).
        mlm_entity_prob: probability of masking each entity token (a token of a concept mention).
        mlm_other_prob: probability of masking each other real token.
        mask_strategy: ``"random"`` or ``"attention"`` (hide the most-attended patches).
        attention_temperature: softmax temperature of the report-to-patch attention.
        attention_share: with attention masking, the share of the hidden patches chosen by attention; the
            rest are random.
        contrastive_view: what the contrastive terms (and the MLM's image support) read in training:
            ``"masked"`` (MLIP's masked contrastive learning) or ``"whole"`` (the whole image, encoded beside
            the masked view, which then serves MIP alone).
    """

    def __init__(
        self,
        vision: VisionTower,
        text: TextTower,
        embed_dim: int = 512,
        mask_ratio: float = 0.5,
        decoder_dim: int = 512,
        decoder_depth: int = 2,
        decoder_heads: int = 16,
        logit_scale_init: float = 1 / 0.03,
        max_logit_scale: float = 100.0,
        sie_init: float = 1.0,
        use_local: bool = True,
        use_sie: bool = True,
        use_mip: bool = True,
        knowledge: Knowledge | None = None,
        use_teacher: bool = False,
        teacher_momentum: float = 0.995,
        use_mlm: bool = False,
        mlm_entity_prob: float = 0.5,
        mlm_other_prob: float = 0.0,
        mask_strategy: str = "random",
        attention_temperature: float = 0.1,
        attention_share: float = 1.0,
        contrastive_view: str = "masked",
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        if mask_strategy not in ("random", "attention"):
            raise ValueError(f"mask_strategy must be 'random' or 'attention', got {mask_strategy!r}")
        if contrastive_view not in ("masked", "whole"):
            raise ValueError(f"contrastive_view must be 'masked' or 'whole', got {contrastive_view!r}")
        if not 0.0 <= attention_share <= 1.0:
            raise ValueError(f"attention_share must be in [0, 1], got {attention_share}")
        self.vision = vision
        self.text = text
        self.config: Any = None  # the MLIPConfig when built by create_mlip
        self.mask_ratio = mask_ratio
        self.max_logit_scale = max_logit_scale
        self.image_projection = nn.Linear(vision.embed_dim, embed_dim, bias=False)
        self.text_projection = nn.Linear(text.hidden_size, embed_dim, bias=False)
        # Logit scales are stored as logarithms (CLIP) and kept in [0, log(max_logit_scale)] after each step.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))
        self.local_logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init))) if use_local else None
        self.sie = SemanticIntegrityEstimator(vision.grid_size, init_weight=sie_init) if use_sie else None
        self.decoder = (
            MaskedImageDecoder(
                vision.embed_dim,
                vision.grid_size,
                vision.patch_size,
                in_chans=vision.in_chans,
                decoder_dim=decoder_dim,
                depth=decoder_depth,
                num_heads=decoder_heads,
            )
            if use_mip
            else None
        )
        self.mask_strategy = mask_strategy
        self.attention_temperature = attention_temperature
        self.attention_share = attention_share
        self.contrastive_view = contrastive_view
        self.knowledge = None
        self.knowledge_logit_scale = None
        if knowledge is not None:
            self.knowledge = KnowledgeEncoder(knowledge, text.tokenizer, text.hidden_size, embed_dim)
            self.knowledge_logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))
        self.teacher = None
        if use_teacher:
            parts = self._teacher_parts()
            self.teacher = AveragedModel(parts, multi_avg_fn=get_ema_multi_avg_fn(teacher_momentum), use_buffers=True)
            self.teacher.requires_grad_(False)
        self.mlm = None
        if use_mlm:
            if text.tokenizer.mask_token_id is None:
                raise ValueError("use_mlm needs a tokenizer with a [MASK] token")
            vocab = text.model.get_input_embeddings().num_embeddings
            self.mlm = ImageSupportedMLMHead(text.hidden_size, vision.embed_dim, vocab)
            self.mlm_entity_prob, self.mlm_other_prob = mlm_entity_prob, mlm_other_prob

    @property
    def embed_dim(self) -> int:
        """``D``, width of the shared space."""
        return self.image_projection.out_features

    @property
    def tokenizer(self) -> Any:
        """The text tower's Hugging Face tokenizer (loaded from the local source on first use)."""
        return self.text.tokenizer

    @torch.no_grad()
    def clamp_logit_scales_(self) -> None:
        """Keep the stored log logit scales in ``[0, log(max_logit_scale)]``; call after each optimiser step.

        Clamping the stored value (open_clip's way) rather than ``exp(...)`` in the forward keeps the
        gradient alive: a scale that overshoots is put back on the bound and can move down again.
        """
        for scale in (self.logit_scale, self.local_logit_scale, self.knowledge_logit_scale):
            if scale is not None:
                scale.clamp_(0.0, math.log(self.max_logit_scale))

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """What follows each optimiser step: clamp the logit scales and move the divergence encoder's average."""
        self.clamp_logit_scales_()
        if self.teacher is not None:
            self.teacher.update_parameters(self._teacher_parts())

    def _teacher_parts(self) -> nn.ModuleDict:
        """The modules the divergence encoder averages (a view of this model's own, not a copy)."""
        return nn.ModuleDict(
            {
                "vision": self.vision,
                "text": self.text,
                "image_projection": self.image_projection,
                "text_projection": self.text_projection,
            }
        )

    def no_weight_decay(self) -> set[str]:
        """Names of parameters kept out of weight decay besides biases and norms (timm's convention):
        position embeddings, class / register / mask tokens, the logit scales and the SIE's ``phi``."""
        names = {"logit_scale", "local_logit_scale", "knowledge_logit_scale", "sie.phi.weight", "decoder.mask_token"}
        trunk = self.vision.trunk
        names |= {f"vision.trunk.{name}" for name in getattr(trunk, "no_weight_decay", set)()}
        parameters = dict(self.named_parameters())
        return {name for name in names if name in parameters}

    def forward(
        self,
        image: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sentence_index: torch.Tensor,
        concept_index: torch.Tensor | None = None,
        concept_labels: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        mask_noise: torch.Tensor | None = None,
    ) -> MLIPOutput:
        """Encode a batch of image-report pairs for the MLIP loss.

        Args:
            image: ``[B, C, H, W]``, ``C`` = ``vision.in_chans`` or 1, ``H = W = vision.image_size``.
            input_ids: ``[B, L]`` long token ids.
            attention_mask: ``[B, L]``, 1 for real tokens.
            sentence_index: ``[B, L]`` long sentence number of each token, -1 for special and padding tokens.
            concept_index: ``[B, L]`` long concept of each token, -1 for none
                (:class:`~monai_mlip.data.knowledge.TagConceptsd`; needed in training by the knowledge
                encoder and MLM, whose outputs evaluation without it leaves out, as it does the teacher's).
            concept_labels: ``[B, C]`` float, the concepts each report asserts (needed by the knowledge encoder).
            has_image: ``[B]`` bool, ``False`` for reports without an image (default: all have one).
            mask_ratio: fraction of patches to hide; ``None``: ``self.mask_ratio`` in training mode, 0 in eval.
            generator: random source of the patch masks.
            mask_noise: ``[B, P]`` explicit mask noise (lowest values kept), overriding ``generator``.
        """
        if mask_ratio is None:
            mask_ratio = self.mask_ratio if self.training else 0.0
        pixels = self.vision.prepare_input(image)
        # the view the contrastive terms read: the masked one (MLIP), or the whole image beside it
        whole = self.vision(pixels) if self.contrastive_view == "whole" and mask_ratio > 0 else None
        attention_map = text = None
        if self.mask_strategy == "attention" and mask_ratio > 0 and mask_noise is None:
            text = self.text(input_ids, attention_mask, sentence_index)
            seen = whole.patch_features.detach() if whole is not None else None
            attention_map = self.report_attention(pixels, text.token_features, sentence_index, seen)
            mask_noise = self._attention_noise(attention_map, mask_ratio, generator)
        vision = self.vision(pixels, mask_ratio=mask_ratio, generator=generator, noise=mask_noise)
        if text is None:
            text = self.text(input_ids, attention_mask, sentence_index)
        view = whole if whole is not None else vision
        if has_image is None:
            has_image = torch.ones(len(input_ids), dtype=torch.bool, device=input_ids.device)

        num_masked = vision.visible.shape[1] - vision.patch_index.shape[1]
        # hidden patches sort first (0 < 1); stable sorting keeps them in grid order
        masked_index = torch.argsort(vision.visible.to(torch.uint8), dim=1, stable=True)[:, :num_masked]
        mip_pred = mip_target = None
        if self.decoder is not None:
            mip_pred, mip_target = self._predict_hidden(pixels, vision.patch_features, vision.patch_index, masked_index)

        return MLIPOutput(
            image_embeds=F.normalize(self.image_projection(view.global_features), dim=-1),
            text_embeds=F.normalize(self.text_projection(text.global_features), dim=-1),
            patch_embeds=F.normalize(self.image_projection(view.patch_features), dim=-1),
            patch_index=view.patch_index,
            visible=view.visible,
            sentence_embeds=self._sentence_embeds(text.sentence_features, text.sentence_mask),
            sentence_mask=text.sentence_mask,
            integrity=self.sie(view.visible) if self.sie is not None else None,
            patch_scores=self.sie.patch_scores(view.patch_index) if self.sie is not None else None,
            mip_pred=mip_pred,
            mip_target=mip_target,
            masked_index=masked_index,
            logit_scale=self.logit_scale.exp(),
            local_logit_scale=self.local_logit_scale.exp() if self.local_logit_scale is not None else None,
            attention_map=attention_map,
            has_image=has_image,
            **self._knowledge_outputs(text.token_features, concept_index, concept_labels),
            **self._teacher_outputs(pixels, input_ids, attention_mask),
            **self._mlm_outputs(input_ids, attention_mask, concept_index, view.patch_features, has_image, generator),
        )

    @torch.no_grad()
    def report_attention(
        self,
        pixels: torch.Tensor,
        token_features: torch.Tensor,
        sentence_index: torch.Tensor,
        patch_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, P]`` how much the report's word tokens attend to each patch of the whole image (no gradient).

        Each word token (``sentence_index >= 0``) spreads a softmax over the patches of its image by projected
        cosine similarity at ``attention_temperature``; the map is the mean over the report's word tokens.
        ``patch_features`` ``[B, P, E]`` of the whole image are used when given, else the image is encoded.
        """
        if patch_features is None:
            patch_features = self.vision(pixels).patch_features
        patches = F.normalize(self.image_projection(patch_features), dim=-1)
        tokens = F.normalize(self.text_projection(token_features), dim=-1)
        words = (sentence_index[:, : tokens.shape[1]] >= 0).to(tokens.dtype)
        attention = torch.einsum("bld,bpd->blp", tokens, patches).div(self.attention_temperature).softmax(dim=-1)
        return (attention * words[..., None]).sum(dim=1) / words.sum(dim=1, keepdim=True).clamp(min=1)

    def _attention_noise(
        self, attention: torch.Tensor, mask_ratio: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Mask noise (lowest kept) that hides the most-attended ``attention_share`` of the hidden patches."""
        batch, patches = attention.shape
        hidden = patches - num_visible(patches, mask_ratio)
        by_attention = round(self.attention_share * hidden)
        noise = uniform_noise((batch, patches), attention.device, generator)
        top = attention.topk(by_attention, dim=1).indices
        return noise.scatter(1, top, 2.0)  # above every random value: these are hidden first

    def _knowledge_outputs(
        self, token_features: torch.Tensor, concept_index: torch.Tensor | None, concept_labels: torch.Tensor | None
    ) -> dict[str, Any]:
        if self.knowledge is None or (not self.training and concept_index is None):
            return {}  # evaluation reads the embeddings alone
        if concept_index is None or concept_labels is None:
            raise ValueError("the knowledge encoder needs concept_index and concept_labels (data.TagConceptsd)")
        pooled, mask = pool_sentences(
            token_features, concept_index[:, : token_features.shape[1]], self.knowledge.num_concepts
        )
        return {
            "knowledge_embeds": self.knowledge(self.text),
            "concept_embeds": F.normalize(self.text_projection(pooled), dim=-1) * mask.unsqueeze(-1),
            "concept_mask": mask,
            "concept_labels": concept_labels.float(),
            "concept_categories": self.knowledge.category_of,
            "knowledge_logit_scale": self.knowledge_logit_scale.exp(),
        }

    @torch.no_grad()
    def _teacher_outputs(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if self.teacher is None or not self.training:
            return {}
        teacher = self.teacher.module.eval()  # targets without dropout, normalised by the averaged statistics
        image = teacher["image_projection"](teacher["vision"](pixels).global_features)
        text = teacher["text_projection"](teacher["text"](input_ids, attention_mask).global_features)
        return {"teacher_image_embeds": F.normalize(image, dim=-1), "teacher_text_embeds": F.normalize(text, dim=-1)}

    def _mlm_outputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        concept_index: torch.Tensor | None,
        patch_features: torch.Tensor,
        has_image: torch.Tensor,
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor]:
        if self.mlm is None or (not self.training and concept_index is None):
            return {}
        if concept_index is None:
            raise ValueError("the MLM head masks entity tokens and needs concept_index (data.TagConceptsd)")
        masked_ids, labels = mask_entity_tokens(
            input_ids,
            attention_mask,
            concept_index,
            self.text.tokenizer.mask_token_id,
            self.mlm_entity_prob,
            self.mlm_other_prob,
            generator,
        )
        states = self.text(masked_ids, attention_mask).token_features
        labels = labels[:, : states.shape[1]]
        selected = labels != -100
        if not selected.any():  # one placeholder row keeps every MLM parameter in the graph
            selected = torch.zeros_like(selected)
            selected[0, 0] = True
        word_embeddings = self.text.model.get_input_embeddings().weight
        logits = self.mlm(
            states, attention_mask[:, : states.shape[1]], patch_features, has_image, selected, word_embeddings
        )
        return {"mlm_logits": logits, "mlm_labels": labels[selected]}

    def _predict_hidden(
        self, pixels: torch.Tensor, features: torch.Tensor, patch_index: torch.Tensor, masked_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder predictions and targets of the hidden patches, ``[B, M, K]`` each (``M`` may be 0: the empty
        prediction still comes from the decoder, so its parameters stay in the graph, as DDP needs)."""
        pred = self.decoder(features, patch_index)
        target = patchify(pixels, self.vision.patch_size)
        take = masked_index.unsqueeze(-1).expand(-1, -1, pred.shape[-1])
        return pred.gather(1, take), target.gather(1, take)

    def _sentence_embeds(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(features), dim=-1) * mask.unsqueeze(-1)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, D]`` L2-normalised global embeddings of the whole (unmasked) image."""
        return F.normalize(self.image_projection(self.vision(image).global_features), dim=-1)

    def encode_image_patches(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, P, D]`` L2-normalised embeddings of every patch, in row-major grid order."""
        return F.normalize(self.image_projection(self.vision(image).patch_features), dim=-1)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, L]`` tokens -> ``[B, D]`` L2-normalised global ([CLS]) embeddings (``sentence_index`` is unused)."""
        return F.normalize(self.text_projection(self.text(input_ids, attention_mask).global_features), dim=-1)

    def encode_sentences(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sentence_index: torch.Tensor
    ) -> SentenceEmbeddings:
        """``[B, L]`` tokens with their sentence numbers -> sentence embeddings ``[B, S, D]`` and mask ``[B, S]``."""
        text = self.text(input_ids, attention_mask, sentence_index)
        return SentenceEmbeddings(self._sentence_embeds(text.sentence_features, text.sentence_mask), text.sentence_mask)

    def phi_map(self) -> torch.Tensor | None:
        """The SIE map ``phi`` on the patch grid, ``[rows, columns]`` (detached); ``None`` without SIE."""
        return self.sie.phi_map() if self.sie is not None else None
