"""A training objective assembled from named terms: ``L = sum_t lambda_t L_t``, optionally SIE-weighted.

:func:`build_objective` makes the :class:`Objective` of a recipe (:mod:`monai_mlip.losses.recipes`), with
each term's settings and weight overridable, the way open_clip's loss factory builds a loss from a model
config. The objective returns every term's loss under its own log key (``loss_<name>``) beside the total
and the terms' statistics, and :meth:`Objective.model_heads` tells the model factory which parts to build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from monai_mlip.losses.recipes import Recipe, get_recipe
from monai_mlip.losses.registry import TERM_TYPES, WEIGHTING
from monai_mlip.losses.terms import PARTS, ObjectiveTerm, SemanticIntegrityWeighting

__all__ = ["Objective", "build_objective"]


class Objective(nn.Module):
    """Weighted sum of named terms.

    Args:
        terms: name -> term (each a :class:`~monai_mlip.losses.terms.ObjectiveTerm`).
        weights: name -> weight of each term.
        weighting: the SIE weighting of the terms it lists, or ``None``.
    """

    def __init__(
        self,
        terms: Mapping[str, ObjectiveTerm],
        weights: Mapping[str, float],
        weighting: SemanticIntegrityWeighting | None = None,
    ) -> None:
        super().__init__()
        if set(terms) != set(weights):
            raise ValueError(f"every term needs a weight: terms {sorted(terms)}, weights {sorted(weights)}")
        needs_sie = sorted(name for name, term in terms.items() if "sie" in term.parts)
        if needs_sie and weighting is None:
            # the SIE is trained only through the weighting; read alone, its phi would get no gradient
            raise ValueError(
                f"term(s) {needs_sie} read the SIE's phi, which only a recipe with the SIE weighting trains"
            )
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = {name: float(weight) for name, weight in weights.items()}
        self.weighting = weighting

    def parts(self) -> set[str]:
        """The model parts (:data:`~monai_mlip.losses.terms.PARTS`) the terms need."""
        needed = {part for term in self.terms.values() for part in term.parts}
        return needed | (set(self.weighting.parts) if self.weighting is not None else set())

    def model_heads(self) -> dict[str, bool]:
        """The :func:`~monai_mlip.networks.create_mlip` switches that build exactly the parts the terms need."""
        needed = self.parts()
        return {switch: part in needed for part, (switch, _) in PARTS.items()}

    def batch_keys(self, unpaired: bool = False) -> list[str]:
        """The batch entries the model needs beyond the image and the tokens: the tagged concepts for the
        knowledge and MLM parts (:class:`~monai_mlip.data.knowledge.TagConceptsd`), and ``has_image`` when
        the data mixes in reports without images (``unpaired``).

        Raises:
            ValueError: ``unpaired`` data for an objective with a term that cannot take it.
        """
        if unpaired and not self.takes_unpaired():
            raise ValueError(
                f"unpaired data (reports without images) cannot train the term(s) {self._refusing_unpaired()}; "
                "use a recipe whose terms all take it (mmclip), or paired data"
            )
        keys = ["concept_index", "concept_labels"] if self.parts() & {"knowledge", "mlm"} else []
        return keys + (["has_image"] if unpaired else [])

    def takes_unpaired(self) -> bool:
        """Every term takes reports without an image (and no SIE weighting, whose masks need an image)."""
        return not self._refusing_unpaired()

    def _refusing_unpaired(self) -> list[str]:
        """The terms (and ``"sie"``, the weighting) that cannot take reports without an image."""
        refusing = sorted(name for name, term in self.terms.items() if not term.takes_unpaired)
        return refusing + ([WEIGHTING] if self.weighting is not None else [])

    def forward(self, output: Any) -> dict[str, torch.Tensor]:
        """Compute the terms.

        Args:
            output: an :class:`~monai_mlip.networks.MLIPOutput` (or any object with its fields).

        Returns:
            ``loss`` (the weighted total, to back-propagate), ``loss_<name>`` of every term, and the terms'
            detached statistics (``logit_scale``, ``local_logit_scale``; with the SIE ``integrity``, the mean
            ``w`` of the global batch, and ``sie_weight_min`` / ``sie_weight_max``, the bounded ``w / mean(w)``).

        Raises:
            ValueError: the model was built without a part a term needs.
        """
        self._check_parts(output)
        self._check_unpaired(output)
        sample_weights, stats = None, {}
        if self.weighting is not None:
            sample_weights, stats = self.weighting(output)
        losses = {}
        for name, term in self.terms.items():
            weighted = self.weighting is not None and name in self.weighting.weighted_terms
            result = term(output, sample_weights if weighted else None)
            losses[f"loss_{name}"] = result.loss
            stats.update(result.stats)
        total = sum(self.weights[name] * losses[f"loss_{name}"] for name in self.terms)
        return {"loss": total, **losses, **stats}

    def _check_unpaired(self, output: Any) -> None:
        has_image = getattr(output, "has_image", None)
        if has_image is None or bool(has_image.all()):
            return
        if not self.takes_unpaired():
            raise ValueError(
                f"the batch holds reports without an image, which the term(s) {self._refusing_unpaired()} "
                "cannot use; unpaired data is for recipes whose terms take it (mmclip)"
            )

    def _check_parts(self, output: Any) -> None:
        for part in sorted(self.parts()):
            switch, field = PARTS[part]
            if getattr(output, field, None) is None:
                raise ValueError(
                    f"the objective needs the model's {part!r} part ({field}), but the model was built with "
                    f"{switch}=False; build it with create_mlip(..., **objective.model_heads())"
                )


def build_objective(
    recipe: str | Recipe = "mlip",
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Objective:
    """The objective of ``recipe``, its terms' settings and weights overridden where given.

    Args:
        recipe: a recipe name (:func:`~monai_mlip.losses.list_recipes`) or a :class:`Recipe`.
        settings: term name -> keyword arguments of that term's class (``{"local": {"epsilon": 0.1}}``;
            ``"sie"`` for the SIE weighting). Settings of a term the recipe leaves off are not used.
        weights: term name -> weight, over the recipe's; a weight of 0 turns a term off.

    Raises:
        ValueError: an unknown term name or setting (the message names the term).
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    settings = {name: dict(value or {}) for name, value in (settings or {}).items()}
    unknown = sorted(set(settings) - set(TERM_TYPES) - {WEIGHTING}) + sorted(set(weights or {}) - set(TERM_TYPES))
    if unknown:
        raise ValueError(f"unknown term(s) {unknown}; the terms are {sorted(TERM_TYPES)} and {WEIGHTING!r}")
    merged = {name: float(weight) for name, weight in {**recipe.terms, **(weights or {})}.items() if float(weight)}
    terms = {
        name: _make(name, TERM_TYPES[name], {**recipe.settings.get(name, {}), **settings.get(name, {})})
        for name in merged
    }
    if not terms:
        raise ValueError(f"recipe {recipe.name!r} with weights {dict(weights or {})} leaves no term on")
    weighting = None
    if recipe.sie:
        options = {**recipe.settings.get(WEIGHTING, {}), **settings.get(WEIGHTING, {})}
        weighting = _make(WEIGHTING, SemanticIntegrityWeighting, options)
    return Objective(terms, merged, weighting)


def _make(name: str, kind: type[nn.Module], options: dict[str, Any]) -> Any:
    try:
        return kind(**options)
    except TypeError as error:
        raise ValueError(f"term {name!r} ({kind.__name__}): bad settings {sorted(options)}: {error}") from error
