"""A downstream bundle copied out of the repository runs from any working directory with the pip package alone:
training needs only the pre-training run's exported encoder, inference only the bundle's own folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monai_mlip.bundle import synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cwd: Path, config: str, *overrides: str) -> None:
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, *overrides]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_copied_bundle_trains_and_infers_from_another_directory(tmp_path, pretrained_models_dir):
    dataset = synthetic_dataset("rsna", n=40, seed=1, image_size=64, root=tmp_path / "data")
    zoo = tmp_path / "zoo"
    bundle = shutil.copytree(REPO / "bundles" / "rsna_pneumonia_classification", zoo / "rsna_pneumonia_classification")
    # beside it, only the encoder of a pre-training run: no mlip_config.json, no text model, no tokenizer
    shutil.copytree(pretrained_models_dir / "encoder", zoo / "mlip_pretrain" / "models" / "encoder")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    configs = os.path.relpath(bundle / "configs", elsewhere)
    fast = ["--dataset_dir", dataset, "--max_epochs", "1", "--batch_size", "8", "--num_workers", "0"]
    _run(elsewhere, f"{configs}/train.json", *fast, "--mode", "fine_tune")
    assert sorted(path.name for path in (bundle / "models").iterdir()) == ["model.pt", "network_config.json", "staging"]
    assert list(elsewhere.iterdir()) == []  # everything went to the bundle, nothing to the working directory

    shutil.rmtree(zoo / "mlip_pretrain")  # inference needs only the bundle's own folder
    images = Path(dataset) / "stage_2_train_images"
    _run(elsewhere, f"{configs}/inference.json", "--input_dir", str(images))
    header, *rows = (bundle / "eval" / "inference" / "scores.csv").read_text().splitlines()
    assert header == "image,pneumonia" and len(rows) == len(list(images.glob("*.dcm")))
