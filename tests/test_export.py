"""The image encoder travels on its own: export and reload, the model card, and the run's files written together."""

from __future__ import annotations

import json
import os

import pytest
import timm
import torch
from ignite.engine import Engine, Events

from monai_mlip.downstream import CXRClassifier, PublishBestModel, load_trained_network
from monai_mlip.handlers import FinalModelSaver, encoder_card
from monai_mlip.networks import ENCODER_DIR, MODEL_CONFIG, load_encoder, load_pretrained, save_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def images():
    return torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def test_export_and_reload_give_identical_embeddings(pretrained_model, tmp_path, images):
    _, mlip = pretrained_model
    folder = save_encoder(mlip.vision, tmp_path / "encoder", card="# card\n")
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [1, 32, 32]  # channels and size of the tower
    assert (config["pretrained_cfg"]["mean"], config["pretrained_cfg"]["std"]) == ([0.5], [0.25])
    reloaded = load_encoder(folder).eval()
    with torch.no_grad():
        expected = mlip.vision(images)
        got = reloaded(images)
        torch.testing.assert_close(got.global_features, expected.global_features, rtol=0, atol=0)
        torch.testing.assert_close(got.patch_features, expected.patch_features, rtol=0, atol=0)
        through_timm = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()  # timm alone
        torch.testing.assert_close(through_timm(images), expected.global_features, rtol=0, atol=0)
    assert reloaded.normalization == mlip.vision.normalization


def test_an_export_replaces_the_previous_one_whole(pretrained_model, tmp_path):
    _, mlip = pretrained_model
    save_encoder(mlip.vision, tmp_path / "encoder", card="old")
    save_encoder(mlip.vision, tmp_path / "encoder")
    assert not (tmp_path / "encoder" / "README.md").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["encoder"]  # no staging or previous folder left
    with pytest.raises(FileNotFoundError, match="models/encoder when it completes"):
        load_encoder(tmp_path / "nothing")


def test_a_random_baseline_has_the_architecture_and_the_preprocessing(pretrained_model, images):
    models_dir, mlip = pretrained_model
    random = load_encoder(models_dir / ENCODER_DIR, weights=None)
    assert random.state_dict().keys() == mlip.vision.state_dict().keys()
    assert not torch.equal(random.state_dict()["trunk.pos_embed"], mlip.vision.state_dict()["trunk.pos_embed"])
    assert random.normalization == mlip.vision.normalization


def test_the_model_card_is_in_the_hugging_face_format_with_the_run_metrics(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"epoch": 3, "zero_shot_auc/mean": 0.8123, "retrieval/mean_R@1": 0.25}))
    card = encoder_card("An encoder", metrics, "tiny", {"image_size": 32}, "synthetic MIMIC", (0.5, 0.25))
    header, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "library_name: timm" in header and "license: apache-2.0" in header
    assert "| zero_shot_auc/mean | 0.812 |" in body and "| retrieval/mean_R@1 | 0.250 |" in body
    assert "epoch" not in body.split("## Loading")[0].split("| metric")[1]  # integers are not metrics
    assert "mean 0.5, std 0.25" in body and 'load_encoder("path/to/this/folder")' in body
    assert "No validation metrics recorded." in encoder_card("x", tmp_path / "absent.json", "tiny")


def _engine(fail_at: int | None = None) -> Engine:
    def step(engine, batch):
        if engine.state.iteration == fail_at:
            raise RuntimeError("the run stops here")

    return Engine(step)


def test_the_final_saver_writes_weights_encoder_and_config_together_only_when_training_completes(
    pretrained_model, tmp_path
):
    _, mlip = pretrained_model
    record = {"preset": "tiny", "text_model": "text_model", "overrides": {}}
    saver = FinalModelSaver(
        mlip, tmp_path / "model.pt", record, tmp_path / MODEL_CONFIG, tmp_path / "encoder", card=lambda: "card"
    )
    failing = _engine(fail_at=2)
    saver.attach(failing)
    with pytest.raises(RuntimeError, match="stops here"):
        failing.run([0, 1, 2], max_epochs=1)
    assert list(tmp_path.iterdir()) == []  # nothing of a run that did not complete
    finished = _engine()
    saver.attach(finished)
    finished.run([0, 1], max_epochs=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["encoder", MODEL_CONFIG, "model.pt"]
    assert json.loads((tmp_path / MODEL_CONFIG).read_text()) == record
    assert (tmp_path / "encoder" / "README.md").read_text() == "card"


def test_a_failed_downstream_run_leaves_the_previous_pair_and_a_finished_one_replaces_it(
    pretrained_models_dir, tmp_path, images
):
    from monai_mlip.downstream import classifier_from_pretrained

    models, staging = tmp_path / "models", tmp_path / "models" / "staging"
    network = classifier_from_pretrained(pretrained_models_dir, mode="fine_tune").eval()
    publish = PublishBestModel(staging / "model.pt", models / "model.pt", network, models / "network_config.json")

    def run(fail_at, weight):
        engine = _engine(fail_at)

        @engine.on(Events.EPOCH_COMPLETED)
        def save_best(engine):  # what CheckpointSaver does after a validation that improved
            with torch.no_grad():
                network.head.bias.fill_(weight)
            staging.mkdir(parents=True, exist_ok=True)
            torch.save(network.state_dict(), staging / "model.pt")

        publish.attach(engine)
        engine.run([0, 1, 2], max_epochs=2)

    run(None, 1.0)
    first = (models / "model.pt").read_bytes()
    with pytest.raises(RuntimeError):
        run(5, 2.0)  # validated (staged new weights) in epoch 1, failed in epoch 2
    assert (models / "model.pt").read_bytes() == first
    rebuilt = load_trained_network(models)  # from the bundle's own folder: no pre-training run, no text tower
    assert isinstance(rebuilt, CXRClassifier)
    rebuilt.load_state_dict(torch.load(models / "model.pt", weights_only=True))
    assert rebuilt.head.bias.item() == 1.0
    run(None, 3.0)
    rebuilt.load_state_dict(torch.load(models / "model.pt", weights_only=True))
    assert rebuilt.head.bias.item() == 3.0
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(images), network(images))


def test_the_pretrained_run_still_loads_whole_for_zero_shot(pretrained_models_dir):
    assert load_pretrained(pretrained_models_dir).text is not None
