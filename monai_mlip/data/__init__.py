"""Data layer: chest X-ray readers, reports, masks, dataset manifests and preprocessing."""

from monai_mlip.data.image_io import LoadCXR, LoadCXRd, read_cxr
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
    "CXR_MEAN",
    "CXR_STD",
    "BoxesToMaskd",
    "LoadCXR",
    "LoadCXRd",
    "RLEToMaskd",
    "TokenizeReportd",
    "boxes_to_mask",
    "clean_text",
    "cxr_transforms",
    "parse_report",
    "read_cxr",
    "read_report",
    "report_text",
    "rle_decode",
    "rle_encode",
    "rle_union",
    "split_sentences",
    "tokenize_sentences",
]
