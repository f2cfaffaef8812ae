"""The figure handlers write their PNGs and, given a log folder, the same figures to TensorBoard."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from monai_mlip.handlers import BinaryClassificationMetric, SegmentationOverlaySaver


def _images(log_dir) -> dict[str, int]:
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    return {tag: len(events.Images(tag)) for tag in events.Tags()["images"]}


def test_overlays_go_to_png_files_and_tensorboard(tmp_path):
    mask = torch.zeros(1, 16, 16)
    mask[:, 4:9, 4:9] = 1
    items = [{"image": torch.rand(1, 16, 16), "label": mask, "pred": mask.roll(2, -1)} for _ in range(3)]
    evaluator = Engine(lambda engine, batch: items)
    SegmentationOverlaySaver(tmp_path / "png", max_items=2, log_dir=tmp_path / "runs").attach(evaluator)
    evaluator.run([0], max_epochs=1)
    assert sorted(path.name for path in (tmp_path / "png").iterdir()) == ["overlay_0.png", "overlay_1.png"]
    assert _images(tmp_path / "runs") == {"overlay/0": 1, "overlay/1": 1}


def test_each_evaluation_adds_its_roc_curve_to_tensorboard(tmp_path):
    metric = BinaryClassificationMetric("pneumonia", roc_path=tmp_path / "roc_val.png", log_dir=tmp_path / "runs")
    scores, labels = torch.tensor([0.9, 0.2, 0.7, 0.4]), torch.tensor([1, 0, 0, 1])
    for _ in range(2):
        metric.reset()
        metric.update((scores, labels))
        assert metric.compute()["pneumonia/auc"] == 0.75
    assert (tmp_path / "roc_val.png").is_file()
    assert _images(tmp_path / "runs") == {"roc/roc_val": 2}
