"""Grounding scores: a phrase that is its report's only sentence gives a flat map, counted apart."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from monai_mlip.handlers import GroundingMetric
from monai_mlip.inferers import phrase_heatmaps
from monai_mlip.losses import patch_sentence_plans
from monai_mlip.metrics import flat_maps


def test_a_lone_phrase_gives_a_flat_map_and_is_skipped_not_missed():
    g = torch.Generator().manual_seed(0)
    patches = F.normalize(torch.randn(2, 16, 8, generator=g), dim=-1)
    sentences = F.normalize(torch.randn(2, 3, 8, generator=g), dim=-1)
    sentence_mask = torch.tensor([[True, False, False], [True, True, True]])  # item 0: the phrase alone
    plans = patch_sentence_plans(patches, torch.ones(2, 16, dtype=torch.bool), sentences, sentence_mask)
    maps = phrase_heatmaps(plans, (4, 4))
    assert flat_maps(maps).tolist() == [True, False]

    masks = torch.zeros(3, 1, 32, 32)
    masks[:, :, 24:, 24:] = 1  # bottom-right corner: the flat map's argmax (0, 0) would miss it
    peaked = torch.zeros(4, 4)
    peaked[3, 3] = 1.0  # a map pointing into the box
    heatmaps = torch.stack([maps[0], peaked, peaked])
    metric = GroundingMetric(random_draws=2)
    metric.update((heatmaps, masks))
    results = metric.compute()
    assert results["grounding/phrases_skipped"] == 1 and results["grounding/phrases"] == 2
    assert results["grounding/pointing_game"] == 1.0


def test_only_flat_maps_give_no_score():
    metric = GroundingMetric(random_draws=2)
    metric.update((torch.full((2, 4, 4), 1 / 16), torch.ones(2, 1, 8, 8)))
    results = metric.compute()
    assert results["grounding/phrases"] == 0 and results["grounding/phrases_skipped"] == 2
    assert results["grounding/pointing_game"] != results["grounding/pointing_game"]  # NaN: nothing to score
