"""Dataset manifests built from the native layouts, as lists of dicts for MONAI datasets."""

from monai_mlip.data.manifests.chexpert import CHEXPERT_5X200_CLASSES, build_chexpert_5x200_manifest
from monai_mlip.data.manifests.common import (
    PREPARED_REPORT,
    BuildReport,
    Manifest,
    is_prepared,
    read_csv_rows,
    sample_fraction,
    split_by_key,
)
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS, MIMIC_SPLITS, build_mimic_cxr_manifest
from monai_mlip.data.manifests.ms_cxr import attach_reports, build_ms_cxr_manifest
from monai_mlip.data.manifests.prepared import COLUMNS_NAME, PREPARED_INDEX, build_prepared_manifest
from monai_mlip.data.manifests.rsna import RSNA_SPLITS, build_rsna_manifest, parse_rsna_patient, read_rsna_label_rows
from monai_mlip.data.manifests.siim import SIIM_SPLITS, build_siim_manifest, find_image_files, read_siim_rle

__all__ = [
    "CHEXPERT_5X200_CLASSES",
    "CHEXPERT_LABELS",
    "COLUMNS_NAME",
    "MIMIC_SPLITS",
    "PREPARED_INDEX",
    "PREPARED_REPORT",
    "RSNA_SPLITS",
    "SIIM_SPLITS",
    "BuildReport",
    "Manifest",
    "attach_reports",
    "build_chexpert_5x200_manifest",
    "build_mimic_cxr_manifest",
    "build_ms_cxr_manifest",
    "build_prepared_manifest",
    "build_rsna_manifest",
    "build_siim_manifest",
    "find_image_files",
    "is_prepared",
    "parse_rsna_patient",
    "read_csv_rows",
    "read_rsna_label_rows",
    "read_siim_rle",
    "sample_fraction",
    "split_by_key",
]
