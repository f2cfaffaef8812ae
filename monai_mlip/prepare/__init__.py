"""One-off preparation of a dataset for training at real size: resized images and one index file.

Run ``python -m monai_mlip.prepare --help``; scripts call :func:`prepare_mimic_cxr`.
"""

from monai_mlip.prepare.images import prepare_image, prepared_sizes
from monai_mlip.prepare.mimic import INDEX_NAME, REPORT_NAME, prepare_mimic_cxr, write_prepared_columns

__all__ = [
    "INDEX_NAME",
    "REPORT_NAME",
    "prepare_image",
    "prepare_mimic_cxr",
    "prepared_sizes",
    "write_prepared_columns",
]
