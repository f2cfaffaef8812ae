"""Exceptions raised by ``monai_mlip``.

Every data error names the item it is about (a file, a report, an RLE row, a patient) and the reason,
so that a failure deep inside a run over a 200,000-image dataset can be traced to one input.
"""

from __future__ import annotations

__all__ = [
    "BoxError",
    "CheckpointError",
    "ImageReadError",
    "KnowledgeFileError",
    "LabelFileError",
    "MLIPDataError",
    "MLIPError",
    "ManifestError",
    "NonFiniteLossError",
    "NonFiniteWeightsError",
    "PretrainedNotFoundError",
    "RLEError",
    "ReportError",
]


class MLIPError(Exception):
    """Base class of every exception the package raises on purpose."""


class MLIPDataError(MLIPError, ValueError):
    """Bad input data.

    Args:
        item: what the error is about (a path, an image id, a patient id).
        reason: why the item cannot be used.
    """

    def __init__(self, item: object, reason: str) -> None:
        self.item = str(item)
        self.reason = reason
        super().__init__(f"{self.item}: {reason}")

    def __reduce__(self):  # keep the two-argument constructor picklable across DataLoader workers
        return type(self), (self.item, self.reason)


class ImageReadError(MLIPDataError):
    """An image file is missing, unreadable, corrupt or of an unsupported kind."""


class ReportError(MLIPDataError):
    """A radiology report is missing, empty, not UTF-8 or has no usable text."""


class RLEError(MLIPDataError):
    """A run-length encoded mask is malformed."""


class BoxError(MLIPDataError):
    """A bounding box is negative, empty or lies outside the image."""


class CheckpointError(MLIPDataError):
    """A checkpoint or weights file is empty, truncated or not a torch file that loads with ``weights_only``."""


class ManifestError(MLIPDataError):
    """A dataset layout or index file is missing or malformed."""


class KnowledgeFileError(MLIPDataError):
    """A knowledge file that cannot be read or lacks a field."""


class LabelFileError(MLIPDataError):
    """A MONAI Label datastore label file cannot be read as the label the bundle needs."""


class NonFiniteWeightsError(MLIPError, RuntimeError):
    """A model about to be saved holds NaN or infinite values; the file is not written."""


class NonFiniteLossError(MLIPError, RuntimeError):
    """Too many consecutive training iterations produced a NaN or infinite loss."""


class PretrainedNotFoundError(MLIPError, FileNotFoundError):
    """Pretrained weights were asked for but are neither a local path nor in the local cache."""
