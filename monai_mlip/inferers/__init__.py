"""Inferers beside MONAI's: the grounding inferer (phrase heatmaps from OT plans or patch attention)."""

from monai_mlip.inferers.grounding import GroundingInferer, attention_plans, phrase_heatmaps

__all__ = ["GroundingInferer", "attention_plans", "phrase_heatmaps"]
