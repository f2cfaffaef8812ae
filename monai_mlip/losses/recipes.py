"""Named training objectives ("recipes"): which terms are on, their weights and settings, and the masking.

A recipe lists its terms and their weights (:data:`~monai_mlip.losses.registry.TERM_TYPES`: ``global``
image-report contrastive, ``local`` patch-sentence OT contrastive, ``mip`` masked image prediction), the
terms' settings where they differ from the defaults, whether the SIE weights the contrastive terms, and
the mask ratio of the training view (``None``: the model preset's). The pre-training bundle takes one by
name (``--recipe clip``); :func:`~monai_mlip.losses.build_objective` makes its loss, whose
``model_heads()`` and :meth:`Recipe.model_settings` make the model, so a term that is off is neither
computed nor built. open_clip's named model configs are the model; these name objectives instead of
architectures.

Grounding: every recipe names the phrase heatmap its model is read with (:attr:`Recipe.grounding`,
:class:`~monai_mlip.inferers.GroundingInferer`): the OT plan by default, the phrase's attention over the
patches for ``mlip_kg`` and ``mmclip``, which learn patch attention instead of OT.

- ``clip``: the global term on whole images (ConVIRT / CLIP): no masking, no SIE, no OT, no MIP.
- ``mlip``: Liu et al. (ISBI 2024): all three terms on the masked view, SIE-weighted (the default).
- ``mlip_no_ot``, ``mlip_no_sie``, ``mlip_no_mip``: MLIP without one part.
- ``mlip_no_mask``: MLIP on whole images: the global and OT terms without masking; the SIE and MIP,
  which exist only for a masked view, go with it.
- ``mlip_kg``: Li et al. (CVPR 2024, arXiv 2402.02045), reconstructed from the abstract (the paper's
  equations and code were not available). On whole images (the paper does not mask). Choices made here,
  each a setting:

  - divergence encoder: an EMA of both towers and projections whose similarity distribution is a soft
    target (:mod:`~monai_mlip.losses.divergence`; ALBEF's momentum distillation); weight 0.4 (ALBEF's
    alpha: ``--term_weights#divergence``), EMA decay ``teacher_momentum`` 0.995 (model setting), teacher
    temperature ``--term_settings#divergence#teacher_scale`` (default: the model's own);
  - knowledge: the packaged chest X-ray knowledge file (``knowledge_file`` model setting), encoded by the
    report encoder with a projection of its own instead of a UMLS encoder;
  - token-knowledge-patch alignment: query = mention + knowledge embedding (``fusion``), softmax attention
    over the patches at ``temperature`` 0.1, InfoNCE from mentions to images (``knowledge_local``);
  - category-level contrast: knowledge embeddings as prototypes, per concept (``level="concept"``) or per
    expert category, for images and reports (``modalities``); targets from the non-negated mentions
    (``knowledge_category``).

  Grounding: the phrase's attention over the patches.
- ``mmclip``: Wu et al. (arXiv 2407.19546), reconstructed from the abstract. Choices made here:

  - AttMIM: the report's word tokens attend over the patches of the whole image (softmax of projected
    cosine similarity at ``attention_temperature`` 0.1, averaged over the words, no gradient); the
    most-attended patches are hidden (``attention_share`` 1.0 of the hidden ones; the rest random) at the
    preset's mask ratio, and the MIP decoder reconstructs them. The contrastive term and the MLM's image
    support read the whole image (``contrastive_view="whole"``): a view whose most-attended patches are
    hidden has lost what the report names (with the contrastive term on that view, a 6-epoch run stayed at
    chance: docs/experiments.md);
  - EntMLM: entity tokens (the knowledge file's terms) masked with probability ``mlm_entity_prob`` 0.5,
    other tokens ``mlm_other_prob`` 0.0; one transformer decoder layer lets the tokens read the visible
    patches; the output layer is tied to the word embeddings (:mod:`~monai_mlip.networks.mlm`);
  - unpaired data: images with labels get disease prompts (:func:`~monai_mlip.data.disease_prompt`),
    reports without images train EntMLM alone (the global and MIP terms leave them out); the preset
    ``configs/data/mimic_unpaired.json`` mixes them in (``report_only_fraction`` 0.2).

  Grounding: the phrase's attention over the patches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from monai_mlip.losses.registry import TERM_TYPES, WEIGHTING

__all__ = ["RECIPES", "Recipe", "get_recipe", "list_recipes"]


@dataclass(frozen=True)
class Recipe:
    """A training objective.

    Attributes:
        name: the recipe's name.
        terms: term name (:data:`~monai_mlip.losses.registry.TERM_TYPES`) to weight; a term not listed is off.
        settings: term name (or ``"sie"``) -> keyword arguments of its class where the recipe departs from
            the defaults.
        sie: the SIE weights the contrastive terms (needs masking).
        mask_ratio: the training view's mask ratio, or ``None`` for the model preset's.
        model: further :func:`~monai_mlip.networks.create_mlip` settings (``{"mask_strategy": "attention"}``).
        grounding: the phrase heatmap of this recipe's model, ``"ot"`` or ``"attention"``.
        description: one line for listings.
    """

    name: str
    terms: Mapping[str, float] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sie: bool = False
    mask_ratio: float | None = None
    model: Mapping[str, Any] = field(default_factory=dict)
    grounding: str = "ot"
    description: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.terms) - set(TERM_TYPES)) + sorted(set(self.settings) - set(TERM_TYPES) - {WEIGHTING})
        if unknown or not self.terms:
            raise ValueError(f"recipe {self.name!r}: terms must be among {sorted(TERM_TYPES)}, got unknown {unknown}")
        if self.grounding not in ("ot", "attention"):
            raise ValueError(f"recipe {self.name!r}: grounding must be 'ot' or 'attention', got {self.grounding!r}")
        if self.mask_ratio == 0.0 and (self.sie or "mip" in self.terms):
            raise ValueError(f"recipe {self.name!r}: the SIE and MIP need a masked view (mask_ratio > 0)")

    def model_settings(self) -> dict[str, Any]:
        """:func:`~monai_mlip.networks.create_mlip` overrides of this recipe (its model settings and the mask
        ratio, when it sets one)."""
        return {**self.model, **({} if self.mask_ratio is None else {"mask_ratio": self.mask_ratio})}


_ALL = {"global": 1.0, "local": 1.0, "mip": 1.0}
RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("clip", {"global": 1.0}, mask_ratio=0.0, description="global contrastive on whole images"),
        Recipe("mlip", _ALL, sie=True, description="global + OT + MIP on the masked view, SIE-weighted"),
        Recipe("mlip_no_ot", {"global": 1.0, "mip": 1.0}, sie=True, description="MLIP without the OT term"),
        Recipe("mlip_no_sie", _ALL, description="MLIP without the SIE weighting"),
        Recipe("mlip_no_mip", {"global": 1.0, "local": 1.0}, sie=True, description="MLIP without MIP"),
        Recipe(
            "mlip_no_mask",
            {"global": 1.0, "local": 1.0},
            mask_ratio=0.0,
            description="global + OT on whole images (no masking, so no SIE or MIP)",
        ),
        Recipe(
            "mlip_kg",
            {"global": 1.0, "divergence": 0.4, "knowledge_local": 1.0, "knowledge_category": 1.0},
            mask_ratio=0.0,
            grounding="attention",
            description="Li et al. 2024: global + divergence encoder + token-knowledge-patch + knowledge categories",
        ),
        Recipe(
            "mmclip",
            {"global": 1.0, "mip": 1.0, "entity_mlm": 1.0},
            model={"mask_strategy": "attention", "contrastive_view": "whole"},
            grounding="attention",
            description="Wu et al. 2024: global + attention-masked MIP + entity MLM with the image's support",
        ),
    )
}


def list_recipes() -> list[str]:
    """The recipe names."""
    return sorted(RECIPES)


def get_recipe(name: str | os.PathLike) -> Recipe:
    """The recipe ``name``, or one written as a JSON file (a path ending in ``.json`` whose object holds
    :class:`Recipe`'s fields: ``{"name": "mine", "terms": {"global": 1.0, "local": 0.5}, "sie": false}``).

    Raises:
        ValueError: an unknown name (the message lists the recipes) or a recipe file with unknown fields.
        FileNotFoundError: a recipe file that does not exist.
    """
    if str(name).endswith(".json"):
        record = json.loads(Path(name).read_text())
        unknown = sorted(set(record) - {f.name for f in fields(Recipe)})
        if unknown:
            raise ValueError(f"{name}: unknown recipe field(s) {unknown}")
        return Recipe(**record)
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {list_recipes()} or a recipe .json file")
    return RECIPES[name]
