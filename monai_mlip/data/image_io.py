"""Reading chest radiographs from DICOM, JPG/PNG and NIfTI files as MONAI transforms.

Every reader returns a float32 ``MetaTensor`` of shape ``[1, H, W]`` (rows first) scaled to ``[0, 1]``
where higher values are brighter (more attenuation, as a radiologist sees it), with metadata:

- ``filename_or_obj``: the source path,
- ``pixel_spacing``: ``(row, column)`` spacing in mm, or ``None`` when the file does not say,
- ``view_position``: the DICOM ``ViewPosition`` (``PA``, ``AP``, ``LL``, ...) or ``""``,
- ``photometric_interpretation``: as stored in the file (``MONOCHROME1``, ``MONOCHROME2``, ``RGB``, ...),
- ``bits_stored``, ``original_shape`` and ``format`` (``dicom``, ``png``, ``jpeg``, ``nifti``).

Scaling to ``[0, 1]``: DICOM pixels go through the modality and VOI LUTs, then min-max; 8-bit rasters are
divided by 255; 16-bit rasters by ``2**bits - 1`` where ``bits`` is the PNG's declared significant bits
(its ``sBIT`` chunk, e.g. 12 for 12-bit detector values stored in 16 bits) and 16 otherwise (a 12-bit image
saved without ``sBIT`` comes out in ``[0, 1/16]``: write it with ``sBIT`` or as 8-bit); float images are
min-max scaled.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, PILWriter
from monai.transforms import MapTransform, Transform

from monai_mlip.errors import ImageReadError

__all__ = ["LoadCXR", "LoadCXRd", "RowsFirstPILWriter", "check_image_header", "find_images", "read_cxr"]

DICOM_SUFFIXES = {".dcm", ".dicom", ""}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
NIFTI_SUFFIXES = {".nii", ".nii.gz"}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _scale_to_unit(pixels: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Map ``[lower, upper]`` linearly onto ``[0, 1]`` (clipping outside), float32."""
    pixels = pixels.astype(np.float32, copy=False)
    if not np.isfinite(pixels).all():
        raise ValueError("pixel values are not finite")
    if upper <= lower:
        return np.zeros_like(pixels, dtype=np.float32)
    return np.clip((pixels - lower) / (upper - lower), 0.0, 1.0)


def _min_max(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.float32, copy=False)
    if pixels.size == 0:
        raise ValueError("the image is empty")
    if not np.isfinite(pixels).all():
        raise ValueError("pixel values are not finite")
    return _scale_to_unit(pixels, float(pixels.min()), float(pixels.max()))


def _dicom_luts():
    """The modality and VOI LUT functions of the installed pydicom (3.x moved them)."""
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    return apply_modality_lut, apply_voi_lut


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            try:
                row, col = float(value[0]), float(value[1])
            except (TypeError, ValueError):
                continue
            if row > 0 and col > 0:
                return row, col
    return None


def _infer_transfer_syntax(ds: Any) -> None:
    """Give a data set read without file meta the transfer syntax it was read with (pydicom 3 will not
    decode pixels without one). Such files are almost always implicit VR little endian, the DICOM default."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(ds, "original_encoding", None) or (ds.is_implicit_VR, ds.is_little_endian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    syntaxes = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian}
    meta.TransferSyntaxUID = syntaxes.get((bool(implicit), bool(little)), ExplicitVRBigEndian)


def _has_pixel_data_tag(path: Path) -> bool:
    """Whether the file holds the (7FE0,0010) Pixel Data tag (little or big endian) that pydicom did not read."""
    data = path.read_bytes()
    return b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data


def _read_dicom(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        try:
            ds = pydicom.dcmread(str(path))
        except InvalidDicomError:
            # Old files without the 128-byte preamble and file meta: read the bare data set.
            ds = pydicom.dcmread(str(path), force=True)
            if "Rows" not in ds and "PixelData" not in ds:
                raise ImageReadError(
                    path,
                    "not a DICOM image: no 'DICM' prefix or file meta, and read as a bare data set it has no image",
                ) from None
            _infer_transfer_syntax(ds)
    except ImageReadError:
        raise
    except Exception as err:  # truncated headers raise EOFError, struct.error, OSError, ...
        raise ImageReadError(path, f"unreadable DICOM header ({type(err).__name__}: {err})") from err
    if "PixelData" not in ds:
        if _has_pixel_data_tag(path):
            raise ImageReadError(path, "the file is truncated: its pixel data element ends before its stated length")
        raise ImageReadError(path, "the DICOM file has no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError) as err:
        raise ImageReadError(path, f"invalid NumberOfFrames or SamplesPerPixel ({err})") from err
    if frames > 1:
        raise ImageReadError(path, f"multi-frame DICOM ({frames} frames); a single radiograph is expected")
    if samples != 1 or photometric in ("RGB", "PALETTE COLOR") or photometric.startswith("YBR"):
        raise ImageReadError(
            path, f"colour DICOM (PhotometricInterpretation {photometric}, {samples} samples per pixel)"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(path, f"unsupported PhotometricInterpretation {photometric or '(missing)'}")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = ds.pixel_array
    except Exception as err:  # no handler for the syntax, truncated pixel data, bad lengths, ...
        name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
        if "less than expected" in str(err):
            raise ImageReadError(path, f"the file is truncated: {str(err).split(' - ')[0]}") from err
        raise ImageReadError(path, f"cannot decode pixel data ({name}): {err}") from err
    if stored.ndim != 2:
        raise ImageReadError(path, f"expected a 2D image, got pixel array of shape {tuple(stored.shape)}")
    apply_modality_lut, apply_voi_lut = _dicom_luts()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = apply_modality_lut(stored, ds)
            has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
            if has_voi:
                values = apply_voi_lut(values, ds, index=0)
        pixels = _min_max(np.asarray(values))
    except ImageReadError:
        raise
    except Exception as err:
        raise ImageReadError(path, f"cannot apply the modality/VOI LUT: {err}") from err
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
    meta = {
        "pixel_spacing": _pixel_spacing(ds),
        "view_position": str(ds.get("ViewPosition", "") or "").strip().upper(),
        "photometric_interpretation": photometric,
        "bits_stored": int(ds.get("BitsStored", 0) or 0),
        "voi_applied": bool(has_voi),
        "format": "dicom",
    }
    return pixels, meta


def _png_significant_bits(path: Path) -> int | None:
    """The grey channel's significant bits from a PNG's ``sBIT`` chunk, or ``None`` without one.

    Read here because Pillow does not expose ``sBIT`` when it opens a file. Chunks are walked up to the
    first ``IDAT`` (``sBIT`` must precede it), so only the header is read.
    """
    with open(path, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while header := handle.read(8):
            if len(header) < 8:
                return None
            length, kind = struct.unpack(">I4s", header)
            if kind in (b"IDAT", b"IEND"):
                return None
            data = handle.read(length)
            handle.seek(4, os.SEEK_CUR)  # CRC
            if kind == b"sBIT" and data:
                return data[0]
    return None


def _read_raster(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                # 16-bit grey: Pillow opens it as I;16* (or I for some PNGs). The range is the PNG's declared
                # significant bits (sBIT: 12 for 12-bit detector values stored in 16) or else the full 16 bits.
                declared = _png_significant_bits(path) if image.format == "PNG" else None
                bits = declared if declared and 1 <= declared <= 16 else 16
                pixels = _scale_to_unit(np.asarray(image, dtype=np.float32), 0.0, float(2**bits - 1))
            elif mode == "F":
                pixels = _min_max(np.asarray(image, dtype=np.float32))
                bits = 32
            else:
                grey = image if mode == "L" else image.convert("L")
                pixels = _scale_to_unit(np.asarray(grey, dtype=np.float32), 0.0, 255.0)
                bits = 8
            image_format = (image.format or path.suffix.lstrip(".")).lower()
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            path,
            f"{err} Pillow refuses images this large as a decompression-bomb guard; if the file is genuine, raise "
            "PIL.Image.MAX_IMAGE_PIXELS (or resize it once with python -m monai_mlip.prepare)",
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as err:
        raise ImageReadError(path, f"unreadable or corrupt image ({type(err).__name__}: {err})") from err
    if pixels.ndim != 2:
        raise ImageReadError(path, f"expected a 2D image, got shape {tuple(pixels.shape)}")
    meta = {
        "pixel_spacing": None,
        "view_position": "",
        "photometric_interpretation": "MONOCHROME2" if mode in ("L", "I", "F") or mode.startswith("I;16") else mode,
        "bits_stored": bits,
        "format": image_format,
    }
    return pixels, meta


def _read_nifti(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as err:
        raise ImageReadError(path, f"unreadable NIfTI file ({type(err).__name__}: {err})") from err
    data = np.squeeze(data)
    if data.ndim != 2:
        raise ImageReadError(path, f"expected a 2D image, got NIfTI data of shape {tuple(image.shape)}")
    # NIfTI stores (i = column, j = row); the radiograph is rows first.
    try:
        pixels = _min_max(data.T)
    except ValueError as err:
        raise ImageReadError(path, str(err)) from err
    zooms = image.header.get_zooms()
    meta = {
        "pixel_spacing": (float(zooms[1]), float(zooms[0])) if len(zooms) >= 2 else None,
        "view_position": "",
        "photometric_interpretation": "MONOCHROME2",
        "bits_stored": 32,
        "format": "nifti",
    }
    return pixels, meta


def check_image_header(path: str | os.PathLike) -> tuple[int, int]:
    """Open an image's header without decoding its pixels: ``(H, W)``, or an :class:`ImageReadError`.

    A cheap pass over a whole dataset before training (:func:`~monai_mlip.data.verify_images`): it finds
    missing, empty, truncated-header and wrong-kind files, and images too large for Pillow. A file whose
    header is sound but whose pixel data is damaged is found when it is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "the file is empty")
    suffix = _suffix(path)
    if suffix in RASTER_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return image.height, image.width
        except Image.DecompressionBombError as err:
            raise ImageReadError(path, f"{err} (Pillow's decompression-bomb guard)") from err
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as err:
            raise ImageReadError(path, f"unreadable image header ({type(err).__name__}: {err})") from err
    if suffix in DICOM_SUFFIXES:
        import pydicom

        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
            rows, columns = int(ds.Rows), int(ds.Columns)
        except AttributeError as err:
            raise ImageReadError(path, "not a DICOM image (no Rows / Columns)") from err
        except Exception as err:  # truncated headers raise EOFError, struct.error, OSError, ...
            raise ImageReadError(path, f"unreadable DICOM header ({type(err).__name__}: {err})") from err
        return rows, columns
    if suffix in NIFTI_SUFFIXES:
        import nibabel as nib

        try:
            shape = nib.load(str(path)).shape
        except Exception as err:  # nibabel raises ImageFileError, OSError, EOFError, ...
            raise ImageReadError(path, f"unreadable NIfTI header ({type(err).__name__}: {err})") from err
        return int(shape[1]), int(shape[0])
    raise ImageReadError(path, f"unsupported file type {suffix!r}")


def read_cxr(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one radiograph.

    Args:
        path: a DICOM (``.dcm``, ``.dicom`` or no suffix), PNG/JPG/TIFF or NIfTI (``.nii``, ``.nii.gz``) file.

    Returns:
        ``(pixels, meta)``: float32 ``[H, W]`` in ``[0, 1]`` and the metadata described in the module docstring.

    Raises:
        ImageReadError: the file is missing, corrupt, multi-frame, colour DICOM or of an unknown kind.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file not found")
    suffix = _suffix(path)
    try:
        if suffix in NIFTI_SUFFIXES:
            pixels, meta = _read_nifti(path)
        elif suffix in RASTER_SUFFIXES:
            pixels, meta = _read_raster(path)
        elif suffix in DICOM_SUFFIXES:
            pixels, meta = _read_dicom(path)
        else:
            raise ImageReadError(path, f"unsupported file type {suffix!r}")
    except ValueError as err:
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(path, str(err)) from err
    meta["filename_or_obj"] = str(path)
    meta["original_shape"] = tuple(int(s) for s in pixels.shape)
    return pixels, meta


def _to_meta_tensor(pixels: np.ndarray, meta: dict[str, Any]) -> MetaTensor:
    spacing = meta.get("pixel_spacing") or (1.0, 1.0)
    affine = torch.diag(torch.tensor([spacing[0], spacing[1], 1.0], dtype=torch.float64))
    meta = {**meta, "spatial_shape": np.asarray(pixels.shape), "original_channel_dim": 0}
    if meta.get("pixel_spacing") is None:
        meta["pixel_spacing"] = (float("nan"), float("nan"))  # collatable placeholder: unknown spacing
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(pixels))[None], affine=affine, meta=meta)


class LoadCXR(Transform):
    """Load a radiograph file as a float32 ``MetaTensor`` ``[1, H, W]`` in ``[0, 1]``.

    See :func:`read_cxr` for the supported formats and the metadata.
    """

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        return _to_meta_tensor(*read_cxr(path))


class LoadCXRd(MapTransform):
    """Dictionary version of :class:`LoadCXR`.

    Args:
        keys: keys whose values are paths; each is replaced by the loaded ``[1, H, W]`` image.
        allow_missing_keys: do not raise when a key is absent.
        blank_size: with a size, a value of ``None`` (a report without an image, in unpaired data:
            :func:`~monai_mlip.data.mix_unpaired`) becomes a blank ``[1, blank_size, blank_size]`` image;
            without one it is an error like any unreadable path.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, blank_size: int | None = None) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCXR()
        self.blank_size = blank_size

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key] is None and self.blank_size is not None:
                d[key] = torch.zeros(1, self.blank_size, self.blank_size)
            else:
                d[key] = self.loader(d[key])
        return d


def find_images(folder: str | os.PathLike, recursive: bool = True) -> list[str]:
    """The files under ``folder`` that :func:`read_cxr` reads, by suffix (``.dcm``, ``.png``, ``.jpg``, ``.nii.gz``...),
    sorted.

    Raises:
        ImageReadError: the folder does not exist or holds no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(folder, "folder not found")
    known = RASTER_SUFFIXES | NIFTI_SUFFIXES | {".dcm", ".dicom"}
    paths = folder.rglob("*") if recursive else folder.iterdir()
    found = sorted(str(p) for p in paths if p.is_file() and _suffix(p) in known)
    if not found:
        raise ImageReadError(folder, f"no image files ({', '.join(sorted(known))}) in the folder")
    return found


class RowsFirstPILWriter(PILWriter):
    """MONAI's ``PILWriter`` for the readers' rows-first ``[C, H, W]`` arrays (``SaveImaged(writer=...)``).

    MONAI's own PNG convention is columns first (its ``PILReader`` swaps the axes on reading and
    ``PILWriter`` swaps them back on writing); the arrays here are rows first, so a mask written with the
    stock writer would come out transposed.
    """

    def write(self, filename: str | os.PathLike, verbose: bool = False, **kwargs: Any) -> None:
        super().write(filename, verbose=verbose, reverse_indexing=False, **kwargs)
