"""Dataset identifiers in the native formats, drawn from the seed and never from labels.

Every layout draws its identifiers from its own stream of the run seed, separate from the streams
that render the studies: file names, UIDs, dates and header values say nothing about what an image
shows.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np

__all__ = [
    "LAYOUT_CODES",
    "dicom_uid",
    "identifier_rng",
    "item_rng",
    "mimic_dicom_id",
    "rsna_patient_id",
    "siim_uids",
    "stream",
    "unique_integers",
]

LAYOUT_CODES = {"mimic": 1, "rsna": 2, "siim": 3}
_CONTENT, _IDENTIFIERS = 0, 1
# The fixed UID root of SIIM-ACR's anonymised files.
_SIIM_ROOT = "1.2.276.0.7230010.3.1"
# (UID kind, fraction offset) of the study, series and image UIDs.
SIIM_PARTS = ((2, 1), (3, 0), (4, 2))


def stream(seed: int, layout: str, *key: int) -> np.random.SeedSequence:
    """The seed sequence of ``key`` within ``layout``'s part of the run ``seed``."""
    return np.random.SeedSequence(seed, spawn_key=(LAYOUT_CODES[layout], *key))


def item_rng(seed: int, layout: str, index: int) -> np.random.Generator:
    """The rendering generator of item ``index``: the same whatever the number of workers or items."""
    return np.random.default_rng(stream(seed, layout, _CONTENT, index))


def identifier_rng(seed: int, layout: str) -> np.random.Generator:
    """The generator of a layout's identifiers (ids, UIDs, dates, header values)."""
    return np.random.default_rng(stream(seed, layout, _IDENTIFIERS))


def unique_integers(rng: np.random.Generator, low: int, high: int, count: int) -> np.ndarray:
    """``count`` distinct integers in ``[low, high)``, in random order."""
    return low + rng.choice(high - low, size=count, replace=False)


def mimic_dicom_id(rng: np.random.Generator) -> str:
    """A MIMIC-CXR ``dicom_id``: five dash-separated groups of eight hex digits."""
    digits = rng.bytes(20).hex()
    return "-".join(digits[i : i + 8] for i in range(0, 40, 8))


def rsna_patient_id(rng: np.random.Generator) -> str:
    """An RSNA ``patientId``: a random (version 4) UUID."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def siim_uids(number: int, rng: np.random.Generator) -> tuple[str, str, str]:
    """SIIM-style ``(StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID)`` for image ``number``.

    The SOP Instance UID is the ImageId, ``1.2.276.0.7230010.3.1.4.8323329.<n>.<time>.<fraction>``.
    """
    time = 1517875160 + int(rng.integers(0, 100))
    fraction = int(rng.integers(100000, 999990))
    study, series, image = (
        f"{_SIIM_ROOT}.{kind}.8323329.{number}.{time}.{fraction + step}" for kind, step in SIIM_PARTS
    )
    return study, series, image


def dicom_uid(*parts: object) -> str:
    """A deterministic UID ``2.25.<integer>`` (a UUID-derived UID) hashed from ``parts`` (seed, layout, item, role)."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode("utf-8")).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"
