"""Bad images under ``on_error="skip"``: a header pass before training, and items dropped at load time.

:func:`verify_images` opens every image header of a manifest (in threads: the work is file I/O) and
raises, or drops and counts in the manifest's report, the files that cannot be read. What only decoding
finds (damaged pixel data behind a sound header) surfaces when the item is loaded:
:class:`SkipDataErrors` turns such an item into ``None`` and :func:`skip_bad_collate` drops it from its
batch, recording how many were dropped as ``skipped_items`` (the MLIP trainer adds them up in
``engine.state.skipped_items``). Only data errors (:class:`~monai_mlip.errors.MLIPDataError`, also when
MONAI wraps them) are skipped; anything else still stops the run.

A dataset that decodes every image when it is built (MONAI's ``CacheDataset`` at ``cache_rate`` 1) meets
a damaged image before any of this applies: the error names the file; run :func:`verify_images` first and
drop the file, or use a dataset that decodes at load time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from monai.data import list_data_collate

from monai_mlip.data.image_io import check_image_header
from monai_mlip.data.manifests import Manifest
from monai_mlip.data.manifests.common import ErrorPolicy, OnError
from monai_mlip.errors import MLIPDataError

__all__ = ["SkipDataErrors", "find_data_error", "skip_bad_collate", "verify_images"]

logger = logging.getLogger("monai_mlip.data")


def verify_images(manifest: Manifest, key: str = "image", on_error: OnError = "skip", num_workers: int = 8) -> Manifest:
    """Check the header of every item's image; raise, or drop and count (``on_error="skip"``) the bad ones.

    Args:
        manifest: a manifest whose items hold an image path under ``key``.
        key: the image key.
        on_error: ``"raise"`` the first bad file's :class:`~monai_mlip.errors.ImageReadError`, or ``"skip"``.
        num_workers: threads opening headers.

    Returns:
        A manifest of the items whose headers read, with the same report (skips added, ``kept`` updated).
    """
    policy = ErrorPolicy(on_error, manifest.report)
    with ThreadPoolExecutor(max(1, num_workers)) as pool:
        outcomes = list(pool.map(_header_error, (item[key] for item in manifest)))
    kept = []
    for item, error in zip(manifest, outcomes, strict=True):
        if error is None:
            kept.append(item)
        else:
            policy.reject(error)
    return Manifest(kept, manifest.report)


def _header_error(path: str) -> MLIPDataError | None:
    try:
        check_image_header(path)
    except MLIPDataError as error:
        return error
    return None


def find_data_error(error: BaseException) -> MLIPDataError | None:
    """The :class:`~monai_mlip.errors.MLIPDataError` behind ``error`` (MONAI wraps transform errors in a
    ``RuntimeError`` whose cause is the original), or ``None``."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MLIPDataError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class SkipDataErrors(torch.utils.data.Dataset):
    """A dataset whose items that fail with a data error are ``None`` (logged with the error naming the file).

    Args:
        dataset: any map-style dataset (MONAI ``Dataset``, ``PersistentDataset``, ...).
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except Exception as error:
            data_error = find_data_error(error)
            if data_error is None:
                raise
            logger.warning("item %d dropped from its batch: %s", index, data_error)
            return None


def skip_bad_collate(batch: Sequence[Any]) -> dict[str, Any]:
    """MONAI's ``list_data_collate`` over the items that loaded, with ``skipped_items`` (an int) added.

    Raises:
        MLIPDataError: no item of the batch loaded (the warnings above name each file).
    """
    kept = [item for item in batch if item is not None]
    if not kept:
        raise MLIPDataError("batch", f"none of its {len(batch)} items could be loaded (see the warnings)")
    collated = list_data_collate(kept)
    collated["skipped_items"] = len(batch) - len(kept)
    return collated
