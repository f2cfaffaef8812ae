"""Shared fixtures: offline Hugging Face, a tiny tokenizer, DICOM writing, the real reference files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPORT_CORPUS = [
    "No acute cardiopulmonary process.",
    "There is a right lower lobe consolidation concerning for pneumonia.",
    "Small left pleural effusion. No pneumothorax.",
    "The heart size is normal. The lungs are clear.",
    "Moderate cardiomegaly with mild pulmonary edema.",
    "A 2.5 cm nodule projects over the left upper lobe.",
    "Endotracheal tube terminates 4 cm above the carina.",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A BERT WordPiece tokenizer trained here on a few report sentences."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(REPORT_CORPUS * 5, vocab_size=200, min_frequency=1)
    return BertTokenizerFast(tokenizer_object=trainer._tokenizer, model_max_length=64)


def write_pretrained_models(root: Path, vision_kwargs: dict):
    """Lay out a pre-training bundle's ``models`` folder in ``root`` as a finished run leaves it: small
    tiny-preset weights (perturbed, so they differ from a fresh initialisation), the exported encoder, the
    config record and the text model. Returns the model."""
    import torch

    from monai_mlip.atomic_io import write_json_atomic
    from monai_mlip.networks import MODEL_CONFIG, build_tiny_text_model, create_mlip, model_config, save_encoder

    text_dir = build_tiny_text_model(REPORT_CORPUS * 3, root / "text_model", vocab_size=150, min_frequency=1)
    overrides = {"image_size": 32, "vision_kwargs": vision_kwargs}
    torch.manual_seed(0)
    mlip = create_mlip("tiny", text_model=text_dir, **overrides)
    with torch.no_grad():
        for parameter in mlip.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    torch.save(mlip.state_dict(), root / "model.pt")
    save_encoder(mlip.vision, root / "encoder")
    write_json_atomic(root / MODEL_CONFIG, model_config(root, "tiny", text_dir, overrides))
    return mlip.eval()


@pytest.fixture(scope="session")
def pretrained_model(tmp_path_factory):
    """``(models folder, model)`` of a pre-training run with a 2-block tower (width 32, 32 px)."""
    root = tmp_path_factory.mktemp("pretrained_models")
    return root, write_pretrained_models(root, {"embed_dim": 32, "depth": 2, "num_heads": 2})


@pytest.fixture(scope="session")
def pretrained_models_dir(pretrained_model) -> Path:
    """The ``models`` folder of :func:`pretrained_model`."""
    return pretrained_model[0]


def xrv_data_file(name: str) -> Path:
    """A real reference file shipped by torchxrayvision (skips the test where it is not installed)."""
    xrv = pytest.importorskip("torchxrayvision")
    path = Path(xrv.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"torchxrayvision does not ship {name}")
    return path


def write_dicom(path: Path, stored: np.ndarray, **attributes) -> Path:
    """Write a minimal valid DICOM (Explicit VR Little Endian).

    ``stored`` is ``[H, W]`` (one grey frame), ``[F, H, W]`` (multi-frame) or ``[H, W, 3]`` (RGB); attributes
    override any element (``BitsStored=12``, ``PhotometricInterpretation="MONOCHROME1"``, ...).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "TEST"
    colour = stored.ndim == 3 and stored.shape[-1] == 3
    ds.Rows, ds.Columns = stored.shape[:2] if colour else stored.shape[-2:]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    elif stored.ndim == 3:
        ds.NumberOfFrames = stored.shape[0]
    ds.BitsAllocated = stored.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(np.issubdtype(stored.dtype, np.signedinteger))
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass(frozen=True)
class DownstreamCase:
    """A downstream bundle under test: its folder name, synthetic layout, image glob and metric prefix."""

    bundle: str
    dataset: str
    images: str
    finding: str = ""

    @property
    def configs(self) -> Path:
        return Path(__file__).resolve().parents[1] / "bundles" / self.bundle / "configs"

    def workflow(self, root: Path, dataset_dir: str, models: Path, files=("train.json",), **overrides):
        """The initialised workflow on ``dataset_dir`` and the pre-trained ``models``, writing into ``root``."""
        from monai_mlip.bundle import bundle_workflow

        return bundle_workflow(
            self.configs, files, root, dataset_dir=dataset_dir, pretrained_dir=str(models), **overrides
        )

    def train(self, root: Path, dataset_dir: str, models: Path, **overrides) -> Path:
        """Run the bundle's ``train.json`` to the end; returns ``root``."""
        from monai_mlip.bundle import run_bundle

        run_bundle(self.configs, ["train.json"], root, dataset_dir=dataset_dir, pretrained_dir=str(models), **overrides)
        return root

    def check_step_floor(self, root: Path, dataset_dir: str, models: Path, **overrides) -> None:
        """With no ``max_epochs`` given, a fraction of a few batches an epoch trains ``min_steps`` steps and
        validates about ten times; with the trainer's epochs set outright, as MONAI Label does, it validates
        every epoch of a short run."""
        parser = self.workflow(root, dataset_dir, models, ("train.json",), **overrides).parser
        steps_per_epoch = len(parser.get_parsed_content("train#dataloader"))
        max_epochs = parser.get_parsed_content("train#trainer").state.max_epochs
        min_steps = parser.get_parsed_content("min_steps")
        assert max_epochs > parser.get_parsed_content("epochs")  # the step floor, not the epoch count, rules
        assert (max_epochs - 1) * steps_per_epoch < min_steps <= max_epochs * steps_per_epoch
        assert max_epochs // parser.get_parsed_content("val_interval") in range(10, 21)
        # MONAI Label sets the trainer's epochs outright: one epoch must still validate (and save the model)
        overrides["train#trainer#max_epochs"] = 1
        parser = self.workflow(root, dataset_dir, models, ("train.json",), **overrides).parser
        assert parser.get_parsed_content("val_interval") == 1
