"""A segmentation bundle's preprocessing when MONAI Label supplies (image file, mask file) pairs.

The bundles make their training masks from a dataset's own annotation (SIIM RLE rows, RSNA boxes); a
MONAI Label datastore has a mask file per image instead. The app overrides the bundle's
``train#preprocessing`` and ``validate#preprocessing`` with this recipe: the same reader and the same
:func:`~monai_mlip.data.cxr_transforms` at the bundle's ``image_size``, with :class:`LoadMaskd` reading the
mask file where the bundle would decode the annotation.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mask_file_preprocessing"]


def mask_file_preprocessing(train: bool) -> dict[str, Any]:
    """The raw bundle config of the preprocessing (a ``Compose``) for ``{"image": path, "label": mask path}``
    items; ``train`` adds the random crop and affine augmentation."""
    return {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "monai_mlip.data.LoadCXRd", "keys": "image"},
            {"_target_": "monai_mlip.label.LoadMaskd", "keys": "label", "image_key": "image"},
            "$monai_mlip.data.cxr_transforms('image', mask_keys='label', image_size=@image_size, "
            f"mean=@image_normalization[0], std=@image_normalization[1], train={train})",
            {"_target_": "SelectItemsd", "keys": ["image", "label"]},
        ],
    }
