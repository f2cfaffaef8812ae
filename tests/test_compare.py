"""The comparison harness end to end at a toy scale, its resumption, the table, and the frozen-encoder probes."""

from __future__ import annotations

import json

import pytest
import torch

from monai_mlip.compare import EncodedItems, compare, harness, linear_probe_auc, segmentation_dice, summary_table

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_the_linear_probe_separates_separable_features():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    features = torch.randn(40, 8, generator=generator) + 3.0 * labels[:, None].float()
    items = EncodedItems(features, torch.zeros(40, 8, 2, 2), labels, None)
    assert linear_probe_auc(items, items) == pytest.approx(1.0)


def test_the_segmentation_head_learns_a_mask_the_features_show():
    masks = torch.zeros(24, 1, 8, 8)
    masks[::2, :, :4, :4] = 1.0  # every other image has a lesion in the top-left quarter
    patches = torch.zeros(24, 4, 2, 2)
    patches[:, 0] = masks[:, 0, ::4, ::4]  # one channel says where the lesion is
    items = EncodedItems(torch.zeros(24, 4), patches, (torch.arange(24) + 1) % 2, masks)
    assert segmentation_dice(items, items, steps=200, lr=0.1) > 0.9
    with pytest.raises(ValueError, match="mask transform"):
        segmentation_dice(items._replace(masks=None), items)


def test_the_table_gives_means_and_intervals():
    table = summary_table({"clip": {"a": [0.5, 0.7, 0.6]}, "mlip": {"a": [0.8], "b": [0.1, 0.1]}})
    lines = table.splitlines()
    assert lines[0] == "| metric | clip | mlip |"
    assert lines[2].startswith("| a | 0.600 ± 0.248 | 0.800 |")  # t(0.975, 2) * 0.1 / sqrt(3) = 0.248
    assert lines[3] == "| b |  | 0.100 ± 0.000 |"


@pytest.mark.slow
def test_the_harness_runs_end_to_end_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("MONAI_MLIP_CACHE", str(tmp_path / "cache"))
    out_json, out_table = tmp_path / "comparison.json", tmp_path / "comparison.md"
    record = compare(["clip", "mlip"], [0], "toy", tmp_path / "work", out_json, out_table, REPO / "bundles")
    assert set(record["results"]) == {"clip", "mlip"} and record["settings"]["scale"] == "toy"
    for recipe in ("clip", "mlip"):
        metrics = record["results"][recipe]
        for name in ("grounding/pointing_game", "rsna/probe_auc_0.1", "siim/dice_0.1"):
            assert len(metrics[name]) == 1 and 0.0 <= metrics[name][0] <= 1.0, (recipe, name)
    assert json.loads(out_json.read_text()) == record and "| grounding/pointing_game |" in out_table.read_text()

    def no_work(*args, **kwargs):
        raise AssertionError("a finished cell was computed again")

    monkeypatch.setattr(harness, "run_cell", no_work)
    assert compare(["clip", "mlip"], [0], "toy", tmp_path / "work", out_json, out_table, REPO / "bundles") == record
