"""MONAI Label inference tasks for the downstream bundles (MONAI Label's ``BundleInferTask``, minimally changed).

- Both: the bundle's ``pretrained_dir`` points at the app's pre-trained models folder (the network is
  built from it); a bundle's pre- or post-processing may be a single transform, not only a ``Compose``;
  no ``Restored`` step is appended (it assumes 3D volumes).
- Classification: type ``classification``: the answer is JSON scores, no label file.
- Segmentation: the prediction is mapped back onto the original image (:func:`invert_to_image`), then
  written as a 2D uint8 0/1 label image (:func:`write_mask`): PNG, or NIfTI for NIfTI images; the request
  parameter ``result_extension`` (``.png``, ``.nii.gz``) chooses.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from monai.bundle import ConfigParser
from monai.transforms import Invertd, SaveImaged
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask

from monai_mlip.label.geometry import invert_to_image
from monai_mlip.label.masks import mask_extension, write_mask

__all__ = ["ClassificationInferTask", "SegmentationInferTask"]


class _PretrainedBundleInferTask(BundleInferTask):
    """A bundle inference task whose config's ``pretrained_dir`` is set by the app."""

    infer_type: InferType

    def __init__(self, path: str, conf: dict[str, str], pretrained_dir: str | os.PathLike, **kwargs: Any) -> None:
        self.pretrained_dir = str(pretrained_dir)
        super().__init__(path, conf, type=self.infer_type, add_post_restore=False, **kwargs)

    def _load_bundle_config(self, path: str, config: str) -> ConfigParser:
        parser = super()._load_bundle_config(path, config)
        parser.read_meta(os.path.join(path, "configs", "metadata.json"))  # as ``monai.bundle run`` does: ``@_meta_``
        parser["pretrained_dir"] = self.pretrained_dir
        return parser

    def _filter_transforms(self, transforms: Any, filters: Sequence[type] | None) -> list[Callable]:
        single = transforms is not None and not isinstance(transforms, list | tuple)
        return super()._filter_transforms([transforms] if single else transforms, filters)


class ClassificationInferTask(_PretrainedBundleInferTask):
    """Image-level scores of a classification bundle: ``{"prediction": [{"label": ..., "score": ...}]}``."""

    infer_type = InferType.CLASSIFICATION


class SegmentationInferTask(_PretrainedBundleInferTask):
    """A 2D mask of a segmentation bundle on the original image's pixel grid, as a label image file.

    MONAI Label inverts the preprocessing itself (:meth:`run_invert_transforms`, before the post-processing),
    so the bundle's own ``Invertd`` (for runs outside MONAI Label) is left out with its ``SaveImaged``.
    """

    infer_type = InferType.SEGMENTATION

    def __init__(self, path: str, conf: dict[str, str], pretrained_dir: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, conf, pretrained_dir, post_filter=[SaveImaged, Invertd], **kwargs)

    def run_invert_transforms(
        self, data: dict[str, Any], pre_transforms: Sequence[Callable], names: Sequence[str] | None
    ) -> dict[str, Any]:
        return invert_to_image(data, pre_transforms, self.output_label_key, self.input_key)

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[str, dict]:
        suffix = mask_extension(data.get("image_path"), extension or data.get("result_extension"))
        handle, path = tempfile.mkstemp(suffix=suffix)
        os.close(handle)
        spacing = getattr(data[self.input_key], "meta", {}).get("pixel_spacing")
        write_mask(data[self.output_label_key], path, pixel_spacing=spacing)
        return path, dict(data.get(self.output_json_key, {}))
