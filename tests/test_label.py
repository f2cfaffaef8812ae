"""The MONAI Label app's own pieces that need no MONAI Label: label files, masks, geometry, bundle installation.

The app's MONAI Label tasks and the server are tested end to end in ``test_label_server.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from monai_mlip.bundle import run_bundle
from monai_mlip.data import LoadCXRd, cxr_transforms, read_cxr
from monai_mlip.errors import ImageReadError, LabelFileError
from monai_mlip.label import (
    LoadMaskd,
    bundle_kind,
    check_app_folder,
    check_pretrained_dir,
    class_datalist,
    find_bundles,
    install_bundle,
    invert_to_image,
    mask_datalist,
    mask_extension,
    mask_file_preprocessing,
    read_image_label,
    read_mask,
    select_bundles,
    write_mask,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLES = find_bundles(REPO / "bundles")


def _bundle(kind: str) -> Path:
    return next(path for name, path in BUNDLES.items() if bundle_kind(name) == kind)


def _png(path: Path, values: np.ndarray) -> str:
    Image.fromarray(values.astype(np.uint8)).save(path)
    return str(path)


def _chest(height: int = 40, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A non-square 8-bit image with a bright off-centre rectangle, and the rectangle's 0/1 mask."""
    mask = np.zeros((height, width), np.uint8)
    mask[8:20, 36:60] = 1
    return (40 + 200 * mask).astype(np.uint8), mask


def test_image_level_labels_from_json_files_and_label_images(tmp_path):
    for value, expected in ((1, 1), (0, 0), (True, 1), (False, 0)):
        path = tmp_path / f"{value}.json"
        path.write_text(json.dumps({"label": value}))
        assert read_image_label(path) == expected
    empty, marked = np.zeros((8, 6)), np.zeros((8, 6))
    marked[2, 3] = 1
    assert read_image_label(_png(tmp_path / "empty.png", empty)) == 0
    assert read_image_label(_png(tmp_path / "marked.png", marked)) == 1
    assert read_image_label(write_mask(marked, tmp_path / "marked.nii.gz")) == 1


@pytest.mark.parametrize("content", ["{not json", '{"label": 2}', '{"class": 1}', "[1]", '{"label": "yes"}'])
def test_a_bad_json_label_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "case_7.json"
    path.write_text(content)
    with pytest.raises(LabelFileError, match=r"case_7\.json"):
        read_image_label(path)


def test_datalists_for_classification_and_segmentation(tmp_path):
    positive = tmp_path / "a.json"
    positive.write_text('{"label": 1}')
    mask = _png(tmp_path / "b.png", np.eye(4))
    datalist = [{"image": "a.dcm", "label": str(positive)}, {"image": "b.png", "label": mask}]
    assert class_datalist(datalist) == [{"image": "a.dcm", "label": 1}, {"image": "b.png", "label": 1}]
    assert mask_datalist(datalist) == [{"image": "b.png", "label": mask}]


@pytest.mark.parametrize("suffix", [".png", ".nii.gz"])
def test_masks_are_written_as_uint8_label_images_on_the_image_grid(tmp_path, suffix):
    _, mask = _chest()
    path = write_mask(torch.from_numpy(mask)[None].float(), tmp_path / f"mask{suffix}", pixel_spacing=(0.5, 0.25))
    np.testing.assert_array_equal(read_mask(path), mask)  # rows first, whichever the format
    if suffix == ".png":
        stored = np.asarray(Image.open(path))
        assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 1}
    else:
        assert read_cxr(path)[1]["pixel_spacing"] == (0.5, 0.25)


def test_mask_extension_follows_the_image_or_the_request():
    assert mask_extension("/data/1.2.3.dcm") == ".png" and mask_extension("x.jpg") == ".png"
    assert mask_extension("/data/case.nii.gz") == ".nii.gz"
    assert mask_extension("x.dcm", ".nii.gz") == ".nii.gz"
    with pytest.raises(ValueError, match=r"\.nrrd"):
        mask_extension("x.dcm", ".nrrd")


def test_load_maskd_reads_the_mask_of_the_loaded_image_and_checks_its_size(tmp_path):
    image, mask = _chest()
    item = {"image": _png(tmp_path / "image.png", image), "label": _png(tmp_path / "mask.png", mask)}
    loaded = LoadMaskd("label")(LoadCXRd("image")(item))
    assert loaded["label"].shape == (1, 40, 64) and loaded["label"].dtype == torch.uint8
    np.testing.assert_array_equal(loaded["label"][0].numpy(), mask)
    item["label"] = _png(tmp_path / "small.png", mask[:, :32])
    with pytest.raises(ImageReadError, match=r"small\.png.*32"):
        LoadMaskd("label")(LoadCXRd("image")(item))


def test_a_prediction_is_mapped_back_onto_the_original_image(tmp_path):
    image, mask = _chest()
    preprocessing = [LoadCXRd("image"), cxr_transforms("image", image_size=32)]
    data = {"image": _png(tmp_path / "image.png", image)}
    for transform in preprocessing:
        data = transform(data)
    assert data["image"].shape == (1, 32, 32)
    data["pred"] = data["image"].as_tensor().clone()  # a "prediction" that is bright where the rectangle is
    restored = invert_to_image(data, preprocessing)["pred"]
    assert restored.shape == (1, 40, 64)
    agreement = ((restored[0] > 0).numpy() == mask.astype(bool)).mean()
    assert agreement > 0.95, agreement


def test_find_bundles_serves_the_downstream_bundles_only(tmp_path):
    assert {"rsna_pneumonia_classification", "siim_pneumothorax_segmentation"} <= set(BUNDLES)
    assert all(bundle_kind(name) in ("classification", "segmentation") for name in BUNDLES)
    (tmp_path / "chest_classification" / "configs").mkdir(parents=True)  # no configs: not a bundle to serve
    assert find_bundles(tmp_path) == {}
    with pytest.raises(FileNotFoundError, match="--conf bundles"):
        find_bundles(tmp_path / "missing")


def test_select_bundles_by_name_or_all():
    assert select_bundles(REPO / "bundles") == BUNDLES
    one = next(iter(BUNDLES))
    assert select_bundles(REPO / "bundles", f" {one} ,") == {one: BUNDLES[one]}
    with pytest.raises(ValueError, match=r"\['mlip_pretrain'\] to serve.*rsna_pneumonia_classification"):
        select_bundles(REPO / "bundles", f"{one},mlip_pretrain")


def test_the_pretrained_dir_must_hold_a_pretraining_run(tmp_path, pretrained_models_dir):
    assert check_pretrained_dir(pretrained_models_dir) == pretrained_models_dir.resolve()
    with pytest.raises(FileNotFoundError, match=r"encoder/config\.json.*mlip_pretrain/configs/train\.json"):
        check_pretrained_dir(tmp_path)


def test_install_bundle_seeds_weights_from_the_pretrained_encoder_and_keeps_fine_tuned_ones(
    tmp_path, pretrained_models_dir
):
    installed = install_bundle(_bundle("classification"), tmp_path / "model", pretrained_models_dir)
    configs = installed / "configs"
    for name in ("train.json", "inference.json"):  # copies of what the bundle's (possibly linked) configs hold
        assert (configs / name).is_file() and not (configs / name).is_symlink()
    state = torch.load(installed / "models" / "model.pt", weights_only=True)
    pretrained = torch.load(pretrained_models_dir / "model.pt", weights_only=True)
    encoder = {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")}
    assert encoder, "no encoder weights seeded"
    for key, value in encoder.items():
        torch.testing.assert_close(value, pretrained[f"vision.{key}"])
    parser = ConfigParser()  # the inference network (as MONAI Label builds it) takes the seeded weights as they are
    parser.read_meta(str(configs / "metadata.json"))
    parser.read_config(str(configs / "inference.json"))
    parser.update({"bundle_root": str(installed), "pretrained_dir": str(pretrained_models_dir)})
    parser.get_parsed_content("network_def").load_state_dict(state, strict=True)

    torch.save({"fine": torch.ones(1)}, installed / "models" / "model.pt")
    (configs / "train.json").unlink()
    install_bundle(_bundle("classification"), tmp_path / "model", pretrained_models_dir)
    assert (configs / "train.json").is_file()  # the configs are copied again
    assert "fine" in torch.load(installed / "models" / "model.pt", weights_only=True)  # the weights are kept


def test_a_segmentation_bundle_trains_on_mask_files(tmp_path, pretrained_model):
    models_dir = pretrained_model[0]
    installed = install_bundle(_bundle("segmentation"), tmp_path / "model", models_dir)
    image, mask = _chest()
    items = [
        {"image": _png(tmp_path / f"image{i}.png", image), "label": _png(tmp_path / f"mask{i}.png", mask * i)}
        for i in range(2)
    ]
    seeded = torch.load(installed / "models" / "model.pt", weights_only=True)
    overrides = {
        "pretrained_dir": str(models_dir),
        "train#dataset#data": items,
        "validate#dataset#data": items,
        "train#preprocessing": mask_file_preprocessing(train=True),
        "validate#preprocessing": mask_file_preprocessing(train=False),
        "max_epochs": 1,
        "num_workers": 0,
    }
    run_bundle(installed / "configs", ["train.json"], installed, **overrides)
    trained = torch.load(installed / "models" / "model.pt", weights_only=True)
    assert trained.keys() == seeded.keys()
    assert not torch.equal(trained["out.conv.conv.weight"], seeded["out.conv.conv.weight"])


def test_the_app_runs_from_a_folder_its_user_names(tmp_path, capsys):
    from monai_mlip.label.__main__ import main
    from monai_mlip.label.app_folder import ENTRY_FILE

    assert main(["init", str(tmp_path / "app")]) == 0
    assert (tmp_path / "app" / "main.py").read_text() == ENTRY_FILE.read_text()
    assert "--app" in capsys.readouterr().out
    assert check_app_folder(tmp_path / "app") == (tmp_path / "app").resolve()
    with pytest.raises(ValueError, match=r"inside the installed monai_mlip package.*monai_mlip\.label init"):
        check_app_folder(ENTRY_FILE.parent)  # model/ and logs/ would land in the package
