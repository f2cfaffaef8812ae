"""Data layer: chest X-ray readers, reports, masks, dataset manifests and preprocessing."""

from monai_mlip.data.image_io import LoadCXR, LoadCXRd, read_cxr
from monai_mlip.data.manifests import (
    CHEXPERT_5X200_CLASSES,
    CHEXPERT_LABELS,
    BuildReport,
    Manifest,
    build_chexpert_5x200_manifest,
    build_mimic_cxr_manifest,
    build_ms_cxr_manifest,
    build_rsna_manifest,
    build_siim_manifest,
    read_siim_rle,
    sample_fraction,
    split_by_key,
)
from monai_mlip.data.masks import BoxesToMaskd, RLEToMaskd, boxes_to_mask, rle_decode, rle_encode, rle_union
from monai_mlip.data.reports import (
    TokenizeReportd,
    clean_text,
    parse_report,
    read_report,
    report_text,
    split_sentences,
    tokenize_sentences,
)
from monai_mlip.data.transforms import CXR_MEAN, CXR_STD, cxr_transforms

__all__ = [
    "CHEXPERT_5X200_CLASSES",
    "CHEXPERT_LABELS",
    "CXR_MEAN",
    "CXR_STD",
    "BoxesToMaskd",
    "BuildReport",
    "LoadCXR",
    "LoadCXRd",
    "Manifest",
    "RLEToMaskd",
    "TokenizeReportd",
    "boxes_to_mask",
    "build_chexpert_5x200_manifest",
    "build_mimic_cxr_manifest",
    "build_ms_cxr_manifest",
    "build_rsna_manifest",
    "build_siim_manifest",
    "clean_text",
    "cxr_transforms",
    "parse_report",
    "read_cxr",
    "read_report",
    "read_siim_rle",
    "report_text",
    "rle_decode",
    "rle_encode",
    "rle_union",
    "sample_fraction",
    "split_by_key",
    "split_sentences",
    "tokenize_sentences",
]
