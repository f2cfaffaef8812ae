"""The classification bundles (RSNA pneumonia, SIIM pneumothorax; one shared set of configs): config
properties, short train + evaluate, zero-shot, inference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_mlip.bundle import bundle_workflow, synthetic_dataset
from tests.conftest import DownstreamCase as Case

pytestmark = pytest.mark.slow  # the integration tier: bundle runs

REPO = Path(__file__).resolve().parents[1]
FAST = {"batch_size": 8, "num_workers": 0, "max_epochs": 2, "validate#dataloader#batch_size": 16}


CASES = [
    Case("rsna_pneumonia_classification", "rsna", "stage_2_train_images/*.dcm", "pneumonia"),
    Case("siim_pneumothorax_classification", "siim", "dicom-images-train/**/*.dcm", "pneumothorax"),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.dataset)
def case(request) -> Case:
    return request.param


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, case) -> str:
    return synthetic_dataset(case.dataset, n=80, seed=1, image_size=64, root=tmp_path_factory.mktemp(case.dataset))


def _workflow(
    case: Case, root: Path, dataset_dir: str, models: Path, files=("train.json",), **overrides
) -> ConfigWorkflow:
    return case.workflow(root, dataset_dir, models, files, **{**FAST, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, case, dataset_dir, pretrained_models_dir) -> Path:
    return case.train(tmp_path_factory.mktemp(case.bundle), dataset_dir, pretrained_models_dir, **FAST)


def test_train_config_properties(tmp_path, case, dataset_dir, pretrained_models_dir):
    assert _workflow(case, tmp_path, dataset_dir, pretrained_models_dir).check_properties() == []


def test_the_bundle_serves_the_dataset_its_metadata_names(tmp_path, case, dataset_dir, pretrained_models_dir):
    workflow = _workflow(case, tmp_path, dataset_dir, pretrained_models_dir)
    dataset = workflow.parser.get_parsed_content("downstream")
    assert dataset.name == case.dataset and dataset.finding.lower() == case.finding
    assert Path(workflow.parser.get_parsed_content("bundle_root")) == tmp_path  # the run's, not the metadata's


def test_a_small_fraction_trains_for_the_minimum_number_of_steps(tmp_path, case, dataset_dir, pretrained_models_dir):
    fast = {key: value for key, value in FAST.items() if key != "max_epochs"}
    case.check_step_floor(tmp_path, dataset_dir, pretrained_models_dir, fraction=0.5, **fast)


def test_an_unknown_dataset_name_is_refused_with_the_choices():
    from monai_mlip.downstream import downstream_dataset

    with pytest.raises(ValueError, match="rsna"):
        downstream_dataset("chexpert")


def test_linear_probe_trains_and_writes_its_outputs(trained, case, pretrained_models_dir):
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["mode"] == "linear_probe" and metrics["init"] == "mlip"
    assert 0 <= metrics["val_auc"] <= 1 and metrics["val_auc"] == pytest.approx(metrics[f"{case.finding}/auc"])
    assert 0 <= metrics[f"{case.finding}/f1"] <= 1 and 0 <= metrics[f"{case.finding}/accuracy"] <= 1
    assert (trained / "eval" / "roc_val.png").is_file() and list((trained / "runs").iterdir())
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    pretrained = torch.load(pretrained_models_dir / "model.pt", weights_only=True)
    encoder = {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}
    assert encoder, "no encoder weights saved"
    for key, value in encoder.items():  # a linear probe leaves the pre-trained encoder as it was
        torch.testing.assert_close(value, pretrained[f"vision.{key}"])
    assert state["head.weight"].shape == (1, 32)


def test_evaluate_the_trained_model_on_the_test_split(trained, case, dataset_dir, pretrained_models_dir):
    workflow = _workflow(case, trained, dataset_dir, pretrained_models_dir, files=("train.json", "evaluate.json"))
    workflow.run()
    metrics = json.loads((trained / "eval" / "metrics_test_linear_probe.json").read_text())
    assert metrics["split"] == "test" and metrics[f"{case.finding}/cases"] > 0 and 0 <= metrics["val_auc"] <= 1
    assert (trained / "eval" / "roc_test_linear_probe.png").is_file()


@pytest.mark.parametrize(("score", "tag"), [("global", "zero_shot"), ("local", "zero_shot_local")])
def test_zero_shot_scores_without_training(tmp_path, case, dataset_dir, pretrained_models_dir, score, tag):
    files = ("train.json", "evaluate.json")
    overrides = {"mode": "zero_shot", "zero_shot_score": score}
    workflow = _workflow(case, tmp_path, dataset_dir, pretrained_models_dir, files, **overrides)
    assert workflow.parser.get_parsed_content("network_def").score == score
    workflow.run()
    metrics = json.loads((tmp_path / "eval" / f"metrics_test_{tag}.json").read_text())
    assert metrics["mode"] == "zero_shot" and 0 <= metrics[f"{case.finding}/auc"] <= 1
    assert (tmp_path / "eval" / f"roc_test_{tag}.png").is_file()
    assert not (tmp_path / "models" / "model.pt").exists()


def test_training_in_zero_shot_mode_is_refused(tmp_path, case, dataset_dir, pretrained_models_dir):
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the config expression's error
        _workflow(case, tmp_path, dataset_dir, pretrained_models_dir, mode="zero_shot")
    assert isinstance(raised.value.__cause__, ValueError) and "evaluate.json" in str(raised.value.__cause__)


def test_inference_scores_a_folder_of_images(trained, case, dataset_dir, pretrained_models_dir):
    overrides = {"dataset_dir": dataset_dir, "pretrained_dir": str(pretrained_models_dir), "dataloader#num_workers": 0}
    workflow = bundle_workflow(case.configs, ["inference.json"], trained, **overrides)
    assert workflow.check_properties() == []
    workflow.run()
    header, *rows = (trained / "eval" / "inference" / "scores.csv").read_text().splitlines()
    images = list(Path(dataset_dir).glob(case.images))
    assert header == f"image,{case.finding}" and len(rows) == len(images) > 0
    assert all(0.0 <= float(row.rsplit(",", 1)[1]) <= 1.0 for row in rows)


@pytest.mark.parametrize("preset", ["rsna", "siim"])
def test_the_real_data_presets_point_the_bundles_at_a_dataset_folder(tmp_path, preset, pretrained_models_dir):
    """``configs/data/<dataset>.json`` serves both bundles of a dataset; here on a synthetic copy of the layout."""
    dataset_dir = synthetic_dataset(preset, n=30, seed=1, image_size=64, root=tmp_path)
    for task in ("classification", "segmentation"):
        configs = next((REPO / "bundles").glob(f"{preset}_*_{task}")) / "configs"
        workflow = bundle_workflow(
            configs,
            ["train.json", str(REPO / "configs" / "data" / f"{preset}.json")],
            tmp_path / task,
            dataset_dir=dataset_dir,
            pretrained_dir=str(pretrained_models_dir),
        )
        assert workflow.parser["on_error"] == "skip"
        assert len(workflow.parser.get_parsed_content("train_manifest")) > 0


@pytest.mark.parametrize("preset", ["rsna", "siim"])
def test_the_prepared_presets_read_a_prepared_set_without_caching_it(tmp_path, preset, pretrained_models_dir):
    """``configs/data/<dataset>_prepared.json`` on a set written by ``python -m monai_mlip.prepare``: the same
    manifests, PNG images decoded at load time, nothing cached."""
    from monai_mlip.prepare import prepare_rsna, prepare_siim

    source = synthetic_dataset(preset, n=30, seed=1, image_size=96, root=tmp_path)
    prepared = tmp_path / "prepared"
    (prepare_rsna if preset == "rsna" else prepare_siim)(source, prepared, 48, num_workers=0, progress=False)
    for task in ("classification", "segmentation"):
        configs = next((REPO / "bundles").glob(f"{preset}_*_{task}")) / "configs"
        overrides = {"dataset_dir": str(prepared), "pretrained_dir": str(pretrained_models_dir)}
        workflow = bundle_workflow(
            configs,
            ["train.json", str(REPO / "configs" / "data" / f"{preset}_prepared.json")],
            tmp_path / task,
            **overrides,
        )
        dataset = workflow.parser.get_parsed_content("train#dataset")
        assert dataset.cache_num == 0 and len(dataset) > 0
        assert dataset.data[0]["image"].endswith(".png")
        item = dataset[0]
        size = workflow.parser.get_parsed_content("image_size")
        assert tuple(item["image"].shape[-2:]) == (size, size)
        if task == "segmentation":
            assert item["label"].shape[-2:] == item["image"].shape[-2:]


def test_the_caches_hold_preprocessed_images(tmp_path, case, dataset_dir, pretrained_models_dir):
    """``CacheDataset`` caches up to the first random transform: a nested ``Compose`` would be one, leaving
    full-resolution images in memory (tens of GB on real RSNA/SIIM); the configs flatten the pipelines."""
    from monai.transforms import Randomizable

    workflow = _workflow(case, tmp_path, dataset_dir, pretrained_models_dir)
    for split in ("train", "validate"):
        pipeline = workflow.parser.get_parsed_content(f"{split}#dataset").transform
        first_random = pipeline.get_index_of_first(lambda step: isinstance(step, Randomizable))
        names = [type(step).__name__ for step in pipeline.transforms[:first_random]]
        assert "Compose" not in names and any(name.startswith("Resize") for name in names), (split, names)
