"""Writing rendered radiographs as DICOM files with realistic, label-free headers.

Files are Explicit VR Little Endian, 16 bits allocated with 12 or 16 stored. The rendered ``[0, 1]``
image is stored linearly between two raw levels ``low`` and ``high`` (inverted for ``MONOCHROME1``)
and the window (center, width) maps exactly that range onto the display range, so that
:func:`monai_mlip.data.read_cxr` (modality LUT, VOI window, min-max, ``MONOCHROME1`` inversion) gives
the rendered image back within quantisation. No value depends on the wall clock or on the findings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["DicomHeader", "sample_header", "write_dicom"]

_SOP_CLASSES = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
}


@dataclass(frozen=True)
class DicomHeader:
    """Header values of one file.

    Attributes:
        patient_id, patient_name: identifiers (anonymised datasets use the same value or ``"___"``).
        sex: ``"F"`` or ``"M"``; age: ``"063Y"``-style string.
        study_uid, series_uid, sop_uid: the instance's UIDs.
        study_date, study_time: ``YYYYMMDD`` and ``HHMMSS.ffffff`` strings (drawn, never the clock).
        modality: ``"CR"`` or ``"DX"``.
        view: ``"PA"``, ``"AP"`` or ``"LATERAL"`` (written as ``LL`` for the view code).
        pixel_spacing: mm per pixel.
        bits_stored: 12 or 16.
        monochrome1: store inverted values with ``PhotometricInterpretation`` ``MONOCHROME1``.
        low, high: fractions of the stored range that the image's 0 and 1 map to.
        description: ``StudyDescription``.
    """

    patient_id: str
    patient_name: str
    sex: str
    age: str
    study_uid: str
    series_uid: str
    sop_uid: str
    study_date: str
    study_time: str
    modality: str
    view: str
    pixel_spacing: float
    bits_stored: int
    monochrome1: bool
    low: float
    high: float
    description: str = "CHEST"


def sample_header(
    rng: np.random.Generator,
    *,
    patient_id: str,
    patient_name: str,
    sex: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    view: str,
    pixel_spacing: float,
    study_date: str = "19010101",
    study_time: str = "000000.00",
    description: str = "CHEST",
) -> DicomHeader:
    """Draw the free header values (age, modality, bit depth, photometric interpretation, raw range).

    ``rng`` must be an identifier stream, so no value depends on the image content.
    """
    return DicomHeader(
        patient_id=patient_id,
        patient_name=patient_name,
        sex=sex,
        age=f"{int(rng.integers(18, 95)):03d}Y",
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        study_date=study_date,
        study_time=study_time,
        modality="CR" if rng.random() < 0.6 else "DX",
        view=view,
        pixel_spacing=pixel_spacing,
        bits_stored=12 if rng.random() < 0.7 else 16,
        monochrome1=bool(rng.random() < 0.12),
        low=float(rng.uniform(0.0, 0.08)),
        high=float(rng.uniform(0.85, 1.0)),
        description=description,
    )


def write_dicom(path: str | os.PathLike, image: np.ndarray, header: DicomHeader) -> None:
    """Write a float32 ``[H, W]`` image in ``[0, 1]`` as a DICOM file.

    Args:
        path: the ``.dcm`` file to write (its folder must exist).
        image: the rendered radiograph (bright = dense).
        header: the header values.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    top = (1 << header.bits_stored) - 1
    low, high = round(header.low * top), round(header.high * top)
    scaled = np.clip(image, 0.0, 1.0).astype(np.float64) * (high - low)
    stored = (high - scaled) if header.monochrome1 else (low + scaled)
    pixels = np.rint(stored).astype("<u2")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SOP_CLASSES[header.modality]
    meta.MediaStorageSOPInstanceUID = header.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = header.sop_uid
    ds.StudyDate = header.study_date
    ds.StudyTime = header.study_time
    ds.AccessionNumber = ""
    ds.Modality = header.modality
    ds.ConversionType = "WSD" if header.modality == "CR" else ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = header.description
    ds.SeriesDescription = f"view: {header.view}"
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = header.sex
    ds.PatientAge = header.age
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "LL" if header.view == "LATERAL" else header.view
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    # Rows run towards the patient's left (frontal, as displayed) or back (lateral, facing left); columns to the feet.
    ds.PatientOrientation = ["P", "F"] if header.view == "LATERAL" else ["L", "F"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if header.monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
    spacing = f"{header.pixel_spacing:.6f}".rstrip("0")
    ds.PixelSpacing = [spacing, spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = header.bits_stored
    ds.HighBit = header.bits_stored - 1
    ds.PixelRepresentation = 0
    # Linear window whose ends are exactly the stored levels of the image's 0 and 1.
    ds.WindowCenter = f"{(low + high) / 2 + 0.5:g}"
    ds.WindowWidth = f"{high - low + 1:g}"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    ds.PixelData = pixels.tobytes()
    ds.save_as(os.fspath(path), enforce_file_format=True)
