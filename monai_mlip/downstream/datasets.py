"""The downstream datasets, and which one a bundle serves.

The classification bundles of RSNA and SIIM share one set of configs (``configs/downstream/``), and so do
the segmentation bundles; what differs between the two datasets lives here: the manifest builder, the
finding the label means (and so the zero-shot prompt set), how a segmentation mask is made from the
dataset's annotation, the images folder and the synthetic layout. A bundle names its dataset in its
``configs/metadata.json`` under ``"downstream"``, which :func:`downstream_dataset` reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai.transforms import MapTransform

from monai_mlip.bundle import synthetic_dataset
from monai_mlip.data import BoxesToMaskd, RLEToMaskd, build_rsna_manifest, build_siim_manifest

__all__ = ["DATASETS", "DownstreamDataset", "downstream_dataset"]


@dataclass(frozen=True)
class DownstreamDataset:
    """What a downstream bundle needs to know about its dataset.

    Attributes:
        name: ``rsna`` or ``siim`` (also the synthetic layout's name).
        finding: the CheXpert finding an image-level label of 1 means; names the zero-shot prompt set.
        images_subdir: the folder of the dataset's images (the default input of ``inference.json``).
        synthetic_seed: the seed of the synthetic layout generated when no ``dataset_dir`` is given.
        build_manifest: ``(dataset_dir, split=, fraction=, seed=, on_error=, **options) -> Manifest``.
        mask_transform: a transform that puts the item's ``[1, H, W]`` 0/1 mask under ``label``.
    """

    name: str
    finding: str
    images_subdir: str
    synthetic_seed: int
    build_manifest: Callable[..., list[dict[str, Any]]]
    mask_transform: Callable[[], MapTransform]

    def manifest(
        self,
        dataset_dir: str | os.PathLike,
        split: str,
        fraction: float = 1.0,
        seed: int = 0,
        on_error: str = "raise",
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Items of ``split`` (``train``, ``valid``, ``test``), a seeded, label-stratified ``fraction`` of it;
        ``options`` go to the dataset's builder (e.g. SIIM's ``image_shape``)."""
        return self.build_manifest(dataset_dir, split=split, fraction=fraction, seed=seed, on_error=on_error, **options)

    def synthetic(self, studies: int, image_size: int = 256) -> str:
        """The folder of this dataset's synthetic layout (generated on first use, cached)."""
        return synthetic_dataset(self.name, n=studies, seed=self.synthetic_seed, image_size=image_size)

    def images_dir(self, dataset_dir: str | os.PathLike) -> str:
        """The folder holding the dataset's images."""
        return str(Path(dataset_dir) / self.images_subdir)


DATASETS: dict[str, DownstreamDataset] = {
    "rsna": DownstreamDataset(
        name="rsna",
        finding="Pneumonia",
        images_subdir="stage_2_train_images",
        synthetic_seed=1,
        build_manifest=build_rsna_manifest,
        mask_transform=lambda: BoxesToMaskd(keys="boxes", image_key="image", mask_key="label", id_key="patient_id"),
    ),
    "siim": DownstreamDataset(
        name="siim",
        finding="Pneumothorax",
        images_subdir="dicom-images-train",
        synthetic_seed=2,
        # the RLE extent is checked against each loaded image (synthetic images are not 1024 px);
        # configs/data/siim.json checks real data up front with image_shape [1024, 1024]
        build_manifest=lambda dataset_dir, **kwargs: build_siim_manifest(
            dataset_dir, **{"image_shape": None, **kwargs}
        ),
        mask_transform=lambda: RLEToMaskd(keys="rle", image_key="image", mask_key="label"),
    ),
}


def downstream_dataset(name: str) -> DownstreamDataset:
    """The entry of :data:`DATASETS` a bundle names in its metadata (``"downstream": {"dataset": name}``).

    Raises:
        ValueError: ``name`` is not in :data:`DATASETS`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown downstream dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]
