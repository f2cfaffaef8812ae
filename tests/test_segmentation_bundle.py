"""The segmentation bundles (SIIM pneumothorax, RSNA pneumonia; one shared set of configs): config properties,
short train + evaluate, frozen encoder, inference, and the few-shot grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_mlip.bundle import bundle_workflow, synthetic_dataset
from tests.conftest import DownstreamCase as Case

pytestmark = pytest.mark.slow  # the integration tier: bundle runs and the few-shot grid

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
FAST = {"batch_size": 4, "num_workers": 0, "max_epochs": 2, "validate#dataloader#batch_size": 8}

STEM = "vit.patch_embedding.patch_embeddings."  # the tower's convolutional stem inside UNETR


CASES = [
    Case("siim_pneumothorax_segmentation", "siim", "dicom-images-train/**/*.dcm"),
    Case("rsna_pneumonia_segmentation", "rsna", "stage_2_train_images/*.dcm"),
]
SIIM = CASES[0]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.dataset)
def case(request) -> Case:
    return request.param


def _synthetic(layout: str, root: Path) -> str:
    return synthetic_dataset(layout, n=40, seed=2, image_size=64, root=root)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, case) -> str:
    return _synthetic(case.dataset, tmp_path_factory.mktemp(case.dataset))


@pytest.fixture(scope="module")
def models_dir(pretrained_model) -> Path:
    return pretrained_model[0]


def _workflow(
    case: Case, root: Path, dataset_dir: str, models: Path, files=("train.json",), **overrides
) -> ConfigWorkflow:
    return case.workflow(root, dataset_dir, models, files, **{**FAST, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, case, dataset_dir, models_dir) -> Path:
    return case.train(tmp_path_factory.mktemp(case.bundle), dataset_dir, models_dir, **FAST)


def test_train_config_properties(tmp_path, case, dataset_dir, models_dir):
    assert _workflow(case, tmp_path, dataset_dir, models_dir).check_properties() == []


def test_dice_on_positives_leaves_out_images_without_a_lesion(tmp_path, case, dataset_dir, models_dir):
    parser = _workflow(case, tmp_path, dataset_dir, models_dir).parser
    lesion = torch.zeros(1, 8, 8)
    lesion[0, 2:5, 2:5] = 1
    pred = [lesion.clone(), lesion.clone()]  # a false positive on the empty image, a hit on the lesion
    label = [torch.zeros(1, 8, 8), lesion.clone()]
    for key, expected in (("validate#key_metric#val_dice", 0.5), ("validate#metrics#val_dice_positive", 1.0)):
        metric = parser.get_parsed_content(f"{key}#metric_fn")
        metric(y_pred=pred, y=label)
        assert float(metric.aggregate()) == pytest.approx(expected), key


def test_the_loss_takes_the_soft_dice_over_the_whole_batch(tmp_path, case, dataset_dir, models_dir):
    # MGCA's 10 * focal - log(soft Dice) flattens the batch: a false positive on a lesion-free image then
    # costs Dice too, where a per-image Dice of an empty mask is the same whatever the network predicts
    loss = _workflow(case, tmp_path, dataset_dir, models_dir).parser.get_parsed_content("loss")
    lesion = torch.zeros(1, 1, 8, 8)
    lesion[..., 2:5, 2:5] = 1
    logits = torch.cat([lesion, lesion]) * 12.0 - 6.0  # a hit on the lesion, a false positive on the empty image
    label = torch.cat([lesion, torch.zeros_like(lesion)])
    as_one_image = loss.dice(
        logits.permute(1, 2, 0, 3).reshape(1, 1, 8, 16), label.permute(1, 2, 0, 3).reshape(1, 1, 8, 16)
    )
    torch.testing.assert_close(loss.dice(logits, label), as_one_image)


def test_a_small_fraction_trains_for_the_minimum_number_of_steps(tmp_path, case, dataset_dir, models_dir):
    fast = {key: value for key, value in FAST.items() if key != "max_epochs"}
    case.check_step_floor(tmp_path, dataset_dir, models_dir, fraction=0.5, **fast)


def test_short_training_writes_dice_overlays_and_the_model(trained):
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["init"] == "mlip" and 0 <= metrics["val_dice"] <= 1
    assert 0 <= metrics["val_dice_positive"] <= 1  # Dice over the images whose ground truth has a lesion
    overlays = list((trained / "eval" / "overlays_val").glob("overlay_*.png"))
    assert overlays and overlays[0].read_bytes()[:4] == b"\x89PNG"
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    assert any(key.startswith(STEM) for key in state) and "out.conv.conv.weight" in state


def test_evaluate_on_the_test_split(trained, case, dataset_dir, models_dir):
    workflow = _workflow(case, trained, dataset_dir, models_dir, files=("train.json", "evaluate.json"))
    workflow.run()
    metrics = json.loads((trained / "eval" / "metrics_test.json").read_text())
    assert metrics["split"] == "test" and 0 <= metrics["val_dice"] <= 1 and 0 <= metrics["val_dice_positive"] <= 1
    assert list((trained / "eval" / "overlays_test").glob("overlay_*.png"))


def test_frozen_encoder_training_leaves_the_encoder_unchanged(tmp_path, models_dir):
    dataset_dir = _synthetic(SIIM.dataset, tmp_path / "data")
    workflow = _workflow(SIIM, tmp_path, dataset_dir, models_dir, freeze_encoder=True, max_epochs=1)
    workflow.run()
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    pretrained = torch.load(models_dir / "model.pt", weights_only=True)
    stem = {key[len(STEM) :]: value for key, value in state.items() if key.startswith(STEM)}
    assert stem
    for key, value in stem.items():
        torch.testing.assert_close(value, pretrained["vision.trunk.patch_embed.backbone." + key])
    # the 2-block tower sits in UNETR blocks 6 and 12 (counting from 1); the blocks between stay identities
    torch.testing.assert_close(
        state["vit.blocks.5.attn.qkv.weight"], pretrained["vision.trunk.blocks.0.attn.qkv.weight"]
    )
    assert not state["vit.blocks.0.attn.out_proj.weight"].any() and not state["vit.blocks.0.mlp.linear2.weight"].any()


def test_inference_writes_a_mask_image_per_input(trained, case, dataset_dir, models_dir):
    from PIL import Image

    overrides = {"dataset_dir": dataset_dir, "pretrained_dir": str(models_dir), "dataloader#num_workers": 0}
    workflow = bundle_workflow(case.configs, ["inference.json"], trained, **overrides)
    assert workflow.check_properties() == []
    workflow.run()
    masks = sorted((trained / "eval" / "inference").glob("*_mask.png"))
    images = list(Path(dataset_dir).glob(case.images))
    assert len(masks) == len(images) > 0
    values = np.asarray(Image.open(masks[0]))
    assert values.shape == (64, 64) and set(np.unique(values)) <= {0, 1}  # the image's grid, not the network's 32


def test_few_shot_grid_writes_one_table(tmp_path, models_dir):
    from monai_mlip.downstream.grid import run_grid

    dataset_dir = _synthetic(SIIM.dataset, tmp_path / "siim")
    rsna = synthetic_dataset("rsna", n=60, seed=1, image_size=64, root=tmp_path / "rsna")
    fast = {"num_workers": 0, "max_epochs": 1, "batch_size": 8}
    overrides = {
        "rsna_classification": {**fast, "dataset_dir": rsna},
        "siim_segmentation": {**fast, "dataset_dir": dataset_dir},
    }
    runs = tmp_path / "runs"
    tasks = list(overrides)
    table = run_grid(models_dir, runs, fractions=(0.5,), tasks=tasks, overrides=overrides, bundles_dir=BUNDLES)
    lines = table.splitlines()
    assert lines[0].count("|") == 8  # the linear probe by two inits, and Dice on all and on positive images by two
    assert "RSNA linear-probe AUC, mlip init" in lines[0] and "SIIM Dice, random init" in lines[0]
    assert "SIIM Dice on positives, mlip init" in lines[0]
    cells = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert cells[0] == "50 %" and all(cell == "n/a" or 0 <= float(cell) <= 1 for cell in cells[1:])
    for line, row in zip(lines[3:], ("zero-shot", "zero-shot, OT local"), strict=True):
        zero_shot = [cell.strip() for cell in line.split("|")[1:-1]]  # classification, pre-trained encoder only
        assert zero_shot[0] == row and 0 <= float(zero_shot[1]) <= 1 and zero_shot[2:] == [""] * 5
    zero_shot_files = sorted(path.name for path in (runs / "rsna_classification_zero_shot" / "eval").glob("*.json"))
    assert zero_shot_files == ["metrics_test_zero_shot.json", "metrics_test_zero_shot_local.json"]
    assert (tmp_path / "runs" / "siim_segmentation_0.5_random" / "eval" / "metrics_test.json").is_file()


def test_few_shot_grid_refuses_overrides_it_would_ignore(tmp_path, capsys):
    from monai_mlip.downstream.grid import main, run_grid

    with pytest.raises(ValueError, match=r"does not run: \['siim_segmentaton'\]"):  # a typo, before any run
        run_grid(tmp_path, tmp_path / "runs", tasks=["siim_segmentation"], overrides={"siim_segmentaton": {}})
    assert not (tmp_path / "runs").exists()
    common = ["--pretrained_dir", str(tmp_path), "--out", str(tmp_path / "grid.md")]
    for bad in ("{not json", '{"siim_segmentation": true}'):
        with pytest.raises(SystemExit):
            main([*common, "--overrides", bad])
        assert "--overrides" in capsys.readouterr().err


def test_inference_masks_keep_a_non_square_image_geometry(trained, tmp_path, models_dir):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56), dtype=np.uint8)).save(folder / "wide.png")
    overrides = {
        "input_dir": str(folder),
        "output_dir": str(tmp_path / "masks"),
        "pretrained_dir": str(models_dir),
        "dataloader#num_workers": 0,
    }
    bundle_workflow(SIIM.configs, ["inference.json"], trained, **overrides).run()
    values = np.asarray(Image.open(tmp_path / "masks" / "wide_mask.png"))
    assert values.shape == (40, 56) and set(np.unique(values)) <= {0, 1}
