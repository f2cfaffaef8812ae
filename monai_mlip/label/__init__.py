"""MONAI Label for the downstream bundles: serve and fine-tune them on a clinical team's own labels.

The app (its folder made by ``python -m monai_mlip.label init DIR``, started with ``python -m
monailabel.main start_server --app DIR ...``) needs
MONAI Label, which lives in its own virtual environment (``monai_mlip/label/requirements.txt``); its MONAI
Label tasks are in ``infer_tasks``, ``train_tasks`` and ``application``. The pieces they use need no MONAI
Label and import from the main environment too:

- :func:`read_image_label`, :func:`class_datalist`, :func:`mask_datalist`: what a datastore label file means
  for a classification or a segmentation bundle;
- :class:`LoadMaskd`, :func:`read_mask`, :func:`write_mask`: 2D label images in and out;
- :func:`invert_to_image`: a prediction back onto the original image's pixel grid;
- :func:`mask_file_preprocessing`: a segmentation bundle's preprocessing for datastore (image, mask) pairs;
- :func:`create_app_folder`, :func:`check_app_folder`: the app's folder, which the user names;
- :func:`select_bundles`, :func:`check_pretrained_dir`, :func:`install_bundle`: the bundles an app serves, copied
  into its ``model`` folder with weights built on the pre-trained encoder.
"""

from monai_mlip.label.app_folder import check_app_folder, create_app_folder
from monai_mlip.label.bundles import (
    BUNDLE_KINDS,
    bundle_kind,
    check_pretrained_dir,
    find_bundles,
    install_bundle,
    seed_model,
    select_bundles,
)
from monai_mlip.label.geometry import invert_to_image
from monai_mlip.label.labels import class_datalist, mask_datalist, read_image_label
from monai_mlip.label.masks import LoadMaskd, mask_extension, read_mask, write_mask
from monai_mlip.label.recipes import mask_file_preprocessing

__all__ = [
    "BUNDLE_KINDS",
    "LoadMaskd",
    "bundle_kind",
    "check_app_folder",
    "check_pretrained_dir",
    "class_datalist",
    "create_app_folder",
    "find_bundles",
    "install_bundle",
    "invert_to_image",
    "mask_datalist",
    "mask_extension",
    "mask_file_preprocessing",
    "read_image_label",
    "read_mask",
    "seed_model",
    "select_bundles",
    "write_mask",
]
