"""MONAI Label training tasks for the downstream bundles (MONAI Label's ``BundleTrainTask``, minimally changed).

- Both: the bundle's ``pretrained_dir`` points at the app's pre-trained models folder; validation runs on
  the training items when the datastore is too small for the requested split (the bundle's own validation
  set is its synthetic default, never what the team labelled); no labelled image is a clear error.
- Classification: each label file becomes the integer class the bundle's loss takes (:func:`class_datalist`).
- Segmentation: images with a mask file train (:func:`mask_datalist`), read by the app's preprocessing
  (:func:`mask_file_preprocessing`) instead of the bundle's dataset-annotation decoding.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.bundle import BundleTrainTask

from monai_mlip.label.labels import class_datalist, mask_datalist
from monai_mlip.label.recipes import mask_file_preprocessing

__all__ = ["ClassificationTrainTask", "SegmentationTrainTask"]

logger = logging.getLogger(__name__)


class _PretrainedBundleTrainTask(BundleTrainTask):
    """A bundle training task whose config's ``pretrained_dir`` is set by the app."""

    def __init__(self, path: str, conf: dict[str, str], pretrained_dir: str | os.PathLike) -> None:
        self.pretrained_dir = str(pretrained_dir)
        super().__init__(path, conf)

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        # The downstream bundles have no multi_gpu_train.json; with MONAI Label's default (multi_gpu true) a
        # machine with several GPUs would log a warning and train nothing.
        return super().__call__({**request, "multi_gpu": False}, datastore)

    def _labelled(self, datalist: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The datastore's (image, label file) pairs in the form the bundle trains on."""
        raise NotImplementedError

    def _fetch_datalist(self, request: dict[str, Any], datastore: Datastore) -> list[dict[str, Any]]:
        datalist = self._labelled(super()._fetch_datalist(request, datastore))
        if not datalist:
            raise ValueError(
                f"{request.get('model')}: no labelled image in the datastore for this model; "
                "put labels first (PUT /datastore/label?image=ID&tag=final)"
            )
        return datalist

    def _partition_datalist(
        self, datalist: list[dict[str, Any]], request: dict[str, Any], shuffle: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        train, validation = super()._partition_datalist(datalist, request, shuffle)
        if not validation:
            logger.warning("%d labelled images are too few to split: validating on the training images", len(train))
            validation = train
        return train, validation

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        overrides["pretrained_dir"] = self.pretrained_dir
        return overrides


class ClassificationTrainTask(_PretrainedBundleTrainTask):
    """Fine-tunes a classification bundle on image-level labels (JSON files or label images)."""

    def _labelled(self, datalist: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return class_datalist(datalist)


class SegmentationTrainTask(_PretrainedBundleTrainTask):
    """Fine-tunes a segmentation bundle on mask files."""

    def _labelled(self, datalist: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return mask_datalist(datalist)

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        overrides = super()._update_overrides(overrides)
        overrides["train#preprocessing"] = mask_file_preprocessing(train=True)
        overrides["validate#preprocessing"] = mask_file_preprocessing(train=False)
        return overrides
