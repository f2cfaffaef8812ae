"""The metrics on hand-computed cases (MONAI's tests/metrics style): known ranks, known hits, known overlaps."""

from __future__ import annotations

import pytest
import torch

from monai_mlip.metrics import best_f1, flat_maps, heatmap_iou, pointing_game, random_map_scores, retrieval_recall


def _unit_rows(similarity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and text embeddings whose dot products are ``similarity`` (images: identity rows)."""
    return torch.eye(len(similarity)), similarity.t().clone()


def test_retrieval_recall_of_a_three_by_three_similarity_with_known_ranks():
    # image 0: its report ranks 1st; image 1: 2nd (behind report 2); image 2: 3rd
    similarity = torch.tensor([[0.9, 0.1, 0.2], [0.3, 0.5, 0.8], [0.7, 0.6, 0.1]])
    images, texts = _unit_rows(similarity)
    recall = retrieval_recall(images, texts, ks=(1, 2, 3))
    assert recall["i2t_R@1"] == pytest.approx(1 / 3)
    assert recall["i2t_R@2"] == pytest.approx(2 / 3)
    assert recall["i2t_R@3"] == pytest.approx(1.0)
    # text-to-image reads the columns: report 0 ranks image 0 first, report 1 image 1 second, report 2 image 2 third
    assert recall["t2i_R@1"] == pytest.approx(1 / 3) and recall["t2i_R@2"] == pytest.approx(2 / 3)


def test_a_report_is_correct_for_every_image_of_its_study():
    similarity = torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.0, 0.1, 0.5]])
    images, texts = _unit_rows(similarity)
    # image 0 ranks report 1 first (a miss on the diagonal); images 1 and 2 rank their own first
    assert retrieval_recall(images, texts, ks=(1,))["i2t_R@1"] == pytest.approx(2 / 3)
    # images 0 and 1 are one study: report 1 is correct for image 0 too
    assert retrieval_recall(images, texts, ids=["a", "a", "b"], ks=(1,))["i2t_R@1"] == pytest.approx(1.0)


def _box_target(size: int = 8, rows=slice(2, 4), cols=slice(5, 7)) -> torch.Tensor:
    target = torch.zeros(1, size, size, dtype=torch.bool)
    target[0, rows, cols] = True
    return target


def test_the_pointing_game_hits_when_the_hottest_pixel_is_in_the_box():
    inside = torch.zeros(1, 8, 8)
    inside[0, 3, 5] = 1.0
    outside = torch.zeros(1, 8, 8)
    outside[0, 6, 1] = 1.0
    assert pointing_game(inside, _box_target()).tolist() == [True]
    assert pointing_game(outside, _box_target()).tolist() == [False]


def test_heatmap_iou_of_a_map_half_over_the_box():
    heat = torch.zeros(1, 8, 8)
    heat[0, 2:4, 6:8] = 1.0  # 4 pixels, 2 of them in the 4-pixel box: IoU 2 / 6
    assert heatmap_iou(heat, _box_target(), threshold=0.5).tolist() == pytest.approx([2 / 6])
    assert heatmap_iou(_box_target().float(), _box_target()).tolist() == pytest.approx([1.0])


def test_random_maps_hit_a_box_as_often_as_its_share_of_the_image():
    whole = torch.ones(1, 8, 8, dtype=torch.bool)
    hits, ious = random_map_scores(whole, grid=(8, 8), draws=4)
    assert hits.tolist() == [1.0] and 0.0 < ious.item() <= 1.0
    quarter = torch.zeros(1, 8, 8, dtype=torch.bool)
    quarter[0, :4, :4] = True
    hits, _ = random_map_scores(quarter, grid=(8, 8), draws=400)
    assert hits.item() == pytest.approx(0.25, abs=0.07)


def test_flat_maps_are_found():
    maps = torch.stack([torch.full((2, 2), 0.25), torch.tensor([[0.4, 0.2], [0.2, 0.2]])])
    assert flat_maps(maps).tolist() == [True, False]


def test_best_f1_of_a_hand_worked_case():
    # scores 0.9 (1), 0.8 (0), 0.6 (1), 0.3 (0): the best threshold is 0.6 -> TP 2, FP 1, FN 0, F1 0.8
    result = best_f1(torch.tensor([0.9, 0.8, 0.6, 0.3]), torch.tensor([1, 0, 1, 0]))
    assert result["f1"] == pytest.approx(0.8)
    assert result["threshold"] == pytest.approx(0.6)
    assert result["accuracy"] == pytest.approx(0.75)
