"""The pre-training bundle: config properties, metadata, a short run, resume, export, inference and torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow, ckpt_export, verify_net_in_out

from monai_mlip.bundle import bundle_workflow, synthetic_dataset
from monai_mlip.data import find_data_error
from monai_mlip.errors import ImageReadError
from monai_mlip.losses import build_objective
from monai_mlip.networks import load_encoder, load_pretrained

pytestmark = pytest.mark.slow  # the integration tier: bundle runs and two-process torchrun

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "mlip_pretrain"
CONFIGS = BUNDLE / "configs"
META = str(CONFIGS / "metadata.json")

# a run that takes seconds: small batches, no loader workers, two epochs
FAST = {
    "batch_size": 8,
    "num_workers": 0,
    "max_epochs": 2,
    "warmup_epochs": 1,
    "validate#dataloader#batch_size": 16,
    "validate#grounding#dataloader#batch_size": 16,
    "val_split": ["validate", "test"],  # the tiny dataset's validation split alone has 4 images
    "validate#key_metric#zero_shot_auc/mean#min_cases": 1,
    "validate#metrics#zero_shot_local_auc/mean#min_cases": 1,
}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return synthetic_dataset("mimic", n=64, seed=0, image_size=64, root=tmp_path_factory.mktemp("synthetic"))


def _workflow(bundle_root: Path, dataset_dir: str, files=("train.json",), **overrides) -> ConfigWorkflow:
    return bundle_workflow(CONFIGS, files, bundle_root, dataset_dir=dataset_dir, **{**FAST, **overrides})


def _record_losses(workflow: ConfigWorkflow, record: list) -> None:
    """Append ``(iteration, loss)`` to ``record`` after every training step."""
    trainer = workflow.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: record.append((e.state.iteration, e.state.output["loss"]))
    )


def _run(workflow: ConfigWorkflow, record: list | None = None) -> ConfigWorkflow:
    if record is not None:
        _record_losses(workflow, record)
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset_dir) -> tuple[Path, list]:
    """One short training run shared by the tests that need its outputs."""
    root = tmp_path_factory.mktemp("pretrain")
    losses: list = []
    _run(_workflow(root, dataset_dir), losses)
    return root, losses


def test_train_config_properties(tmp_path, dataset_dir):
    assert _workflow(tmp_path, dataset_dir).check_properties() == []


@pytest.mark.parametrize(("presets", "floor"), [((), 0.3 * 5e-4), (("configs/model/paper.json",), 0.0)])
def test_learning_rate_floor_of_each_preset(presets, floor):
    """The tiny default's cosine stops at 30 % of the peak (its CPU run is too short to learn pneumothorax
    on a schedule that reaches 0); the paper preset's decays to 0."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), *(str(REPO / preset) for preset in presets)])
    assert parser.get_parsed_content("lr_scheduler#end_lr") == pytest.approx(floor)


def test_unreadable_images_are_skipped_before_training(tmp_path, dataset_dir):
    """Under on_error="skip" the header pass drops a broken image from the manifest and counts it; under
    "raise" the bundle stops before training, naming the file."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(dataset_dir, copy)
    workflow = _workflow(tmp_path / "run", str(copy), on_error="skip")
    first = workflow.parser.get_parsed_content("train_index")[0]["image"]
    Path(first).write_bytes(b"")
    manifest = _workflow(tmp_path / "run", str(copy), on_error="skip").parser.get_parsed_content("train_manifest")
    assert first not in {item["image"] for item in manifest} and manifest.report.n_skipped == 1
    loader = _workflow(tmp_path / "run", str(copy), on_error="skip").parser.get_parsed_content("train#dataloader")
    assert loader.collate_fn.__name__ == "skip_bad_collate"
    with pytest.raises(Exception) as info:
        _workflow(tmp_path / "run", str(copy)).parser.get_parsed_content("train_manifest")
    error = find_data_error(info.value)
    assert isinstance(error, ImageReadError) and Path(first).name in str(error)


def test_a_run_on_the_prepared_set(tmp_path, dataset_dir):
    """prepare -> the mimic_cxr_prepared data preset -> a short run: plain decoding of the small images
    (no in-memory cache of the training set), grounding on the prepared images."""
    from monai_mlip.prepare import prepare_mimic_cxr

    prepare_mimic_cxr(dataset_dir, tmp_path / "prepared", longest_side=48, num_workers=0, progress=False)
    workflow = bundle_workflow(
        CONFIGS,
        ["train.json", str(REPO / "configs" / "data" / "mimic_cxr_prepared.json")],
        tmp_path / "run",
        dataset_dir=str(tmp_path / "prepared"),
        grounding_csv=str(Path(dataset_dir) / "MS_CXR_Local_Alignment_v1.1.0.csv"),
        **{**FAST, "max_epochs": 1},
    )
    assert type(workflow.parser.get_parsed_content("train#dataset")).__name__ == "Dataset"
    assert all(item["image"].endswith(".png") for item in workflow.parser.get_parsed_content("grounding_manifest"))
    _run(workflow)
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["grounding/phrases"] > 0 and (tmp_path / "run" / "models" / "model.pt").is_file()


def test_two_process_torchrun_on_the_prepared_set(tmp_path, dataset_dir):
    """The real run's shape at tiny size: prepare, then two DDP processes on the prepared preset."""
    from monai_mlip.prepare import prepare_mimic_cxr

    prepare_mimic_cxr(dataset_dir, tmp_path / "prepared", longest_side=48, num_workers=0, progress=False)
    files = [CONFIGS / "train.json", CONFIGS / "multi_gpu_train.json", REPO / "configs/data/mimic_cxr_prepared.json"]
    settings = {**FAST, "max_epochs": 1, "grounding_csv": str(Path(dataset_dir) / "MS_CXR_Local_Alignment_v1.1.0.csv")}
    overrides = [arg for key, value in settings.items() for arg in (f"--{key}", str(value))]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "monai.bundle", "run", "--config_file", str([str(f) for f in files]), "--bundle_root", str(tmp_path),
        "--dataset_dir", str(tmp_path / "prepared"), *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["grounding/phrases"] > 0 and (tmp_path / "models" / "model.pt").is_file()


def test_inference_config_properties(trained):
    root, _ = trained
    workflow = bundle_workflow(CONFIGS, ["inference.json"], root, input_dir=str(root / "eval"))
    assert workflow.check_properties() == []


def test_short_run_writes_every_output(trained):
    root, losses = trained
    assert [iteration for iteration, _ in losses] == list(range(1, len(losses) + 1)) and len(losses) >= 4
    assert all(np.isfinite(loss) for _, loss in losses)
    models, evaluation = root / "models", root / "eval"
    assert (models / "model.pt").is_file() and (models / "checkpoint_epoch=2.pt").is_file()
    state = torch.load(models / "checkpoint_epoch=2.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "lr_scheduler", "trainer"}
    assert state["trainer"]["iteration"] == len(losses)
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["epoch"] == 2
    figures = ("retrieval/i2t_R@1", "retrieval/t2i_R@5", "zero_shot_auc/mean", "zero_shot_local_auc/mean")
    for key in (*figures, "grounding/pointing_game"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert "grounding/pointing_game_random" in metrics and metrics["grounding/phrases"] > 0
    assert (evaluation / "phi_map.png").is_file() and list((evaluation / "grounding").glob("grounding_*.png"))
    assert list((root / "runs").iterdir())  # TensorBoard event files
    # the encoder for sharing, with its card from this run's metrics, and the config that rebuilds the model
    card = (models / "encoder" / "README.md").read_text()
    assert (
        card.startswith("---\nlibrary_name: timm")
        and f"| zero_shot_auc/mean | {metrics['zero_shot_auc/mean']:.3f} |" in card
    )
    model = load_pretrained(models).eval()
    image = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(
            load_encoder(models / "encoder").eval()(image).global_features, model.vision(image).global_features
        )


def test_resumed_run_continues_like_an_uninterrupted_one(tmp_path, dataset_dir, trained):
    _, uninterrupted = trained
    interrupted: list = []
    first = _workflow(tmp_path, dataset_dir)
    _record_losses(first, interrupted)
    first.parser.get_parsed_content("train#trainer").add_event_handler(
        Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate()
    )
    first.run()
    assert (tmp_path / "models" / "checkpoint_epoch=1.pt").is_file()

    resumed: list = []
    _run(_workflow(tmp_path, dataset_dir, resume=True), resumed)
    per_epoch = len(uninterrupted) // 2
    assert [i for i, _ in resumed] == list(range(per_epoch + 1, 2 * per_epoch + 1))  # the step count continues
    continued = [loss for _, loss in interrupted + resumed]
    np.testing.assert_allclose(continued, [loss for _, loss in uninterrupted], rtol=1e-5)


def test_evaluate_config_writes_test_metrics(trained, dataset_dir):
    root, _ = trained
    _run(_workflow(root, dataset_dir, files=("train.json", "evaluate.json"), val_split="test"))
    metrics = json.loads((root / "eval" / "metrics_test.json").read_text())
    assert metrics["split"] == "test" and 0 <= metrics["retrieval/i2t_R@1"] <= 1


def test_inference_writes_embeddings_and_zero_shot_scores(trained, dataset_dir):
    root, _ = trained
    _run(bundle_workflow(CONFIGS, ["inference.json"], root, dataset_dir=dataset_dir))
    out = root / "eval" / "inference"
    saved = np.load(out / "embeddings.npz")
    assert saved["embeddings"].shape[0] == len(saved["paths"]) >= 64  # every frontal (and lateral) image
    np.testing.assert_allclose(np.linalg.norm(saved["embeddings"], axis=1), 1.0, atol=1e-4)
    rows = (out / "zero_shot_scores.csv").read_text().splitlines()
    assert rows[0].startswith("image,Pneumonia,Pneumothorax") and len(rows) == len(saved["paths"]) + 1


def test_image_encoder_verifies_and_exports(trained, tmp_path):
    root, _ = trained
    common = {"meta_file": META, "config_file": str(CONFIGS / "inference.json"), "bundle_root": str(root)}
    verify_net_in_out(net_id="image_encoder", **common)
    exported = tmp_path / "image_encoder.ts"
    ckpt_export(
        net_id="image_encoder",
        filepath=str(exported),
        ckpt_file=str(root / "models" / "model.pt"),
        use_trace=True,
        input_shape=[1, 1, 128, 128],
        **common,
    )
    scripted = torch.jit.load(str(exported))
    image = torch.rand(2, 1, 128, 128)
    from monai_mlip.networks import ImageEncoder

    expected = ImageEncoder.from_mlip(load_pretrained(root / "models").eval())(image)
    torch.testing.assert_close(scripted(image), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "switch",
    [
        {},
        {"term_weights#local": 0},
        {"recipe": "mlip_no_sie"},
        {"term_weights#mip": 0},
        {"recipe": "clip"},
        {"grounding_csv": "/none.csv"},
        {"recipe": "mlip_kg"},
        {"recipe": "mmclip"},
        {"configs": ["mimic_unpaired.json"], "synthetic#studies": 64, "synthetic#image_size": 64},
    ],
    ids=["mlip", "no_local", "no_sie", "no_mip", "recipe_clip", "no_grounding_data", "mlip_kg", "mmclip", "unpaired"],
)
def test_two_process_torchrun(tmp_path, dataset_dir, switch):
    """DDP (without find_unused_parameters) runs the full objective, each term switched off and the other
    recipes (mmclip also on the preset that mixes in unpaired data): a term that is off leaves no parameter
    without a gradient, which DDP would refuse at the second iteration."""
    switch = dict(switch)
    presets = [str(REPO / "configs" / "data" / name) for name in switch.pop("configs", [])]
    config = str([str(CONFIGS / "train.json"), *presets, str(CONFIGS / "multi_gpu_train.json")])
    settings = {**FAST, "max_epochs": 1, **switch}
    overrides = [arg for key, value in settings.items() for arg in (f"--{key}", str(value))]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "monai.bundle", "run", "--config_file", config, "--bundle_root", str(tmp_path),
        "--dataset_dir", dataset_dir, *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file() and (tmp_path / "eval" / "metrics.json").is_file()
    assert ("grounding/phrases" in json.loads((tmp_path / "eval" / "metrics.json").read_text())) == (
        "grounding_csv" not in switch
    )
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    recipe = switch.get("recipe", "mmclip" if presets else "mlip")
    weights = {key.split("#")[1]: float(value) for key, value in switch.items() if key.startswith("term_weights#")}
    heads = build_objective(recipe, weights=weights).model_heads()  # the parts each recipe and switch builds
    for switch_name, prefix in (
        ("use_mip", "decoder."),
        ("use_sie", "sie."),
        ("use_local", "local_logit_scale"),
        ("use_knowledge", "knowledge."),
        ("use_teacher", "teacher."),
        ("use_mlm", "mlm."),
    ):
        assert any(k.startswith(prefix) for k in state) == heads[switch_name], switch_name
    assert load_pretrained(tmp_path / "models").load_state_dict(state)  # the recorded config rebuilds it
