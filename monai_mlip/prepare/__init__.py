"""One-off preparation of a dataset for training at real size: resized images and one index file.

Run ``python -m monai_mlip.prepare --help``; scripts call :func:`prepare_mimic_cxr`, :func:`prepare_rsna`,
:func:`prepare_siim` or :func:`prepare_chexpert`. Each writes a set that the manifests read in place of the
source (recognised by its ``prepare_report.json``), and each continues a stopped run without redoing
finished images.
"""

from monai_mlip.prepare.chexpert import prepare_chexpert
from monai_mlip.prepare.images import prepare_image, prepared_sizes, resize_mask
from monai_mlip.prepare.mimic import prepare_mimic_cxr, write_prepared_columns
from monai_mlip.prepare.rsna import prepare_rsna
from monai_mlip.prepare.siim import prepare_siim

__all__ = [
    "prepare_chexpert",
    "prepare_image",
    "prepare_mimic_cxr",
    "prepare_rsna",
    "prepare_siim",
    "prepared_sizes",
    "resize_mask",
    "write_prepared_columns",
]
