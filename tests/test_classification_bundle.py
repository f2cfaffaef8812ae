"""The RSNA pneumonia classification bundle: config properties, metadata, short train + evaluate, zero-shot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_mlip.bundle import bundle_workflow, synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "rsna_pneumonia_classification"
CONFIGS = BUNDLE / "configs"
FAST = {"batch_size": 8, "num_workers": 0, "max_epochs": 2, "validate#dataloader#batch_size": 16}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return synthetic_dataset("rsna", n=80, seed=1, image_size=64, root=tmp_path_factory.mktemp("rsna"))


def _workflow(root: Path, dataset_dir: str, models: Path, files=("train.json",), **overrides) -> ConfigWorkflow:
    return bundle_workflow(
        CONFIGS, files, root, dataset_dir=dataset_dir, pretrained_dir=str(models), **{**FAST, **overrides}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset_dir, pretrained_models_dir) -> Path:
    root = tmp_path_factory.mktemp("rsna_bundle")
    workflow = _workflow(root, dataset_dir, pretrained_models_dir)
    workflow.run()
    workflow.finalize()
    return root


def test_train_config_properties(tmp_path, dataset_dir, pretrained_models_dir):
    assert _workflow(tmp_path, dataset_dir, pretrained_models_dir).check_properties() == []


def test_linear_probe_trains_and_writes_its_outputs(trained, pretrained_models_dir):
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["mode"] == "linear_probe" and metrics["init"] == "mlip"
    assert 0 <= metrics["val_auc"] <= 1 and metrics["val_auc"] == pytest.approx(metrics["pneumonia/auc"])
    assert 0 <= metrics["pneumonia/f1"] <= 1 and 0 <= metrics["pneumonia/accuracy"] <= 1
    assert (trained / "eval" / "roc_val.png").is_file() and list((trained / "runs").iterdir())
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    pretrained = torch.load(pretrained_models_dir / "model.pt", weights_only=True)
    encoder = {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}
    assert encoder, "no encoder weights saved"
    for key, value in encoder.items():  # a linear probe leaves the pre-trained encoder as it was
        torch.testing.assert_close(value, pretrained[f"vision.{key}"])
    assert state["head.weight"].shape == (1, 32)


def test_evaluate_the_trained_model_on_the_test_split(trained, dataset_dir, pretrained_models_dir):
    workflow = _workflow(trained, dataset_dir, pretrained_models_dir, files=("train.json", "evaluate.json"))
    workflow.run()
    metrics = json.loads((trained / "eval" / "metrics_test_linear_probe.json").read_text())
    assert metrics["split"] == "test" and metrics["pneumonia/cases"] > 0 and 0 <= metrics["val_auc"] <= 1
    assert (trained / "eval" / "roc_test_linear_probe.png").is_file()


def test_zero_shot_scores_without_training(tmp_path, dataset_dir, pretrained_models_dir):
    files = ("train.json", "evaluate.json")
    workflow = _workflow(tmp_path, dataset_dir, pretrained_models_dir, files, mode="zero_shot")
    workflow.run()
    metrics = json.loads((tmp_path / "eval" / "metrics_test_zero_shot.json").read_text())
    assert metrics["mode"] == "zero_shot" and 0 <= metrics["pneumonia/auc"] <= 1
    assert not (tmp_path / "models" / "model.pt").exists()


def test_training_in_zero_shot_mode_is_refused(tmp_path, dataset_dir, pretrained_models_dir):
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the config expression's error
        _workflow(tmp_path, dataset_dir, pretrained_models_dir, mode="zero_shot")
    assert isinstance(raised.value.__cause__, ValueError) and "evaluate.json" in str(raised.value.__cause__)


def test_inference_scores_a_folder_of_images(trained, dataset_dir, pretrained_models_dir):
    overrides = {"dataset_dir": dataset_dir, "pretrained_dir": str(pretrained_models_dir), "dataloader#num_workers": 0}
    workflow = bundle_workflow(CONFIGS, ["inference.json"], trained, **overrides)
    assert workflow.check_properties() == []
    workflow.run()
    rows = (trained / "eval" / "inference" / "scores.csv").read_text().splitlines()
    images = list(Path(dataset_dir, "stage_2_train_images").glob("*.dcm"))
    assert len(rows) == len(images) > 0
    assert all(0.0 <= float(row.rsplit(",", 1)[1]) <= 1.0 for row in rows)
