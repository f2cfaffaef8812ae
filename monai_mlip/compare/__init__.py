"""Evidence at equal budget: pre-train several recipes the same way and compare them
(``python -m monai_mlip.compare --help``)."""

from monai_mlip.compare.harness import SCALES, compare, run_cell, summary_table
from monai_mlip.compare.probe import EncodedItems, encode_items, linear_probe_auc, segmentation_dice

__all__ = [
    "SCALES",
    "EncodedItems",
    "compare",
    "encode_items",
    "linear_probe_auc",
    "run_cell",
    "segmentation_dice",
    "summary_table",
]
