"""Every bundle's metadata passes MONAI's schema (an offline copy; skipped with a reason where it is absent), and
a downstream bundle's metadata names the bundle and the dataset its shared configs serve."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import sys
import warnings
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow, verify_metadata

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema.json"
BUNDLES = sorted(path.parent.parent for path in (REPO / "bundles").glob("*/configs/metadata.json"))
DOWNSTREAM_KINDS = ("classification", "segmentation")
DOWNSTREAM = [bundle for bundle in BUNDLES if bundle.name.endswith(("_classification", "_segmentation"))]


def test_every_bundle_is_covered():
    names = {bundle.name for bundle in BUNDLES}
    downstream = {f"{data}_{task}" for data in ("rsna_pneumonia", "siim_pneumothorax") for task in DOWNSTREAM_KINDS}
    assert {"mlip_pretrain", *downstream} <= names


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"MONAI's metadata schema is not at {SCHEMA} (offline copy)")
@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda path: path.name)
def test_metadata_is_valid(bundle, tmp_path):
    """Against MONAI's schema, less its requirement of ``optional_packages_version``: MONAI 1.6 reads that
    key as a deprecated name of ``required_packages_version`` and replaces the latter with it, so a bundle
    that has it loses its package list (tested below)."""
    schema = json.loads(SCHEMA.read_text())
    schema["required"] = [name for name in schema["required"] if name != "optional_packages_version"]
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(tmp_path / "schema.json"))


@pytest.mark.parametrize("bundle", DOWNSTREAM, ids=lambda path: path.name)
def test_a_downstream_bundle_runs_its_shared_configs_as_itself(bundle, monkeypatch):
    """The README's way (``--config_file bundles/<name>/configs/train.json`` from the repository root, no
    meta file): MONAI reads the metadata beside the shared config's copy, which names this bundle and its dataset."""
    from monai_mlip.downstream import DATASETS

    monkeypatch.chdir(REPO)
    workflow = ConfigWorkflow(config_file=f"bundles/{bundle.name}/configs/train.json", workflow_type="train")
    meta = workflow.parser["_meta_"]
    assert meta["downstream"]["bundle"] == bundle.name and meta["downstream"]["dataset"] in DATASETS
    assert bundle.name.startswith(meta["downstream"]["dataset"])
    dataset = workflow.parser.get_parsed_content("downstream")
    channels = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert channels == {"0": dataset.finding.lower()}
    assert workflow.parser.get_parsed_content("bundle_root") == str(bundle)


@pytest.mark.parametrize("bundle", DOWNSTREAM, ids=lambda path: path.name)
def test_what_monai_label_builds_from_inference_json_leaves_the_dataset_alone(bundle, tmp_path):
    """MONAI Label instantiates ``preprocessing``, ``inferer`` and ``postprocessing`` of ``inference.json``
    in its server: none may reach the dataset (the synthetic default would be generated in there)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    overrides = {"image_size": 32, "image_normalization": [0.5, 0.25], "dataset_dir": "$int('the dataset was read')"}
    parser.update({"bundle_root": str(tmp_path), **overrides})
    for key in ("preprocessing", "inferer", "postprocessing"):
        parser.get_parsed_content(key)


def test_bundle_roots_from_the_repository_and_from_inside_a_bundle(monkeypatch):
    from monai_mlip.bundle import bundle_root

    monkeypatch.setattr(sys, "argv", ["python"])  # no command line to read: the working directory decides
    monkeypatch.chdir(REPO)
    assert bundle_root("mlip_pretrain") == str(REPO / "bundles" / "mlip_pretrain")
    inside = REPO / "bundles" / "rsna_pneumonia_classification"
    monkeypatch.chdir(inside)
    assert bundle_root("rsna_pneumonia_classification") == str(inside)


@pytest.mark.parametrize(
    "argv",
    [
        ["--config_file", "{configs}/train.json"],
        ["--config_file", "['{configs}/train.json', '/elsewhere/data.json']"],
        ["--config_file={configs}/inference.json", "--dataset_dir", "/data"],
    ],
)
def test_a_copied_bundle_resolves_its_root_from_its_configs_in_any_working_directory(tmp_path, monkeypatch, argv):
    from monai_mlip.bundle import bundle_root, pretrained_models_dir

    copy = tmp_path / "zoo" / "rsna_pneumonia_classification"
    shutil.copytree(REPO / "bundles" / "rsna_pneumonia_classification", copy)
    (tmp_path / "zoo" / "mlip_pretrain" / "models").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(copy / "configs", elsewhere)
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", *(a.format(configs=relative) for a in argv)])
    assert bundle_root("rsna_pneumonia_classification") == str(copy)
    assert pretrained_models_dir(copy) == str(tmp_path / "zoo" / "mlip_pretrain" / "models")  # beside it


def test_the_bundles_hold_real_copies_of_the_shared_configs():
    """No symbolic links (a copied or zipped bundle must run); each copy equals its source in configs/downstream."""
    sync = runpy.run_path(str(REPO / ".ci" / "sync_bundle_configs.py"))
    pairs = sync["shared_copies"]()
    assert len(pairs) == 3 * len(DOWNSTREAM)
    for source, copy in pairs:
        assert not copy.is_symlink(), f"{copy} is a link: run python .ci/sync_bundle_configs.py"
        assert copy.read_bytes() == source.read_bytes(), (
            f"{copy} differs from {source}: run python .ci/sync_bundle_configs.py"
        )
    assert not [path for path in (REPO / "bundles").rglob("*") if path.is_symlink()]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda path: path.name)
def test_metadata_keeps_its_packages_and_says_what_a_version_gives(bundle):
    """An empty ``optional_packages_version`` made MONAI drop ``required_packages_version`` (deprecated name);
    each version has a changelog entry; the measured figures and the data terms travel with the bundle."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MONAI warns when it renames the deprecated key
        parser.read_meta(str(bundle / "configs" / "metadata.json"))
    meta = parser["_meta_"]
    assert "optional_packages_version" not in meta and "monai_mlip" in meta["required_packages_version"]
    assert meta["version"] in meta["changelog"]
    assert meta["eval_metrics"] and all(0.0 <= value <= 1.0 for value in meta["eval_metrics"].values())
    assert "PhysioNet" in (bundle / "docs" / "data_license.txt").read_text()


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda path: path.name)
def test_each_bundle_has_a_model_card_in_the_zoo_template(bundle):
    card = (bundle / "docs" / "README.md").read_text()
    sections = [line[3:] for line in card.splitlines() if line.startswith("## ")]
    expected = ["Model overview", "Data", "Training configuration", "Input and output", "Performance"]
    assert sections[:5] == expected and sections[-3:] == ["MONAI bundle commands", "References", "License"]
    performance = card.split("## Performance")[1].split("## ")[0]
    assert len(card.splitlines()) <= 150 and "```bash" in performance  # one table and the command that made it
