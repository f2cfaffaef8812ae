"""Inferers beside MONAI's: the grounding inferer that turns patch-sentence OT plans into phrase heatmaps."""

from monai_mlip.inferers.grounding import GroundingInferer, phrase_heatmaps

__all__ = ["GroundingInferer", "phrase_heatmaps"]
