"""LoadCXR / LoadCXRd on DICOM, PNG/JPG and NIfTI, and on every DICOM file pydicom ships."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from monai_mlip.data import LoadCXR, LoadCXRd, read_cxr
from monai_mlip.errors import ImageReadError
from tests.conftest import write_dicom

RAMP = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)  # distinct values, rows first


def test_dicom_16bit_min_max_scaled(tmp_path):
    stored = (RAMP * 16).astype(np.uint16)
    image = LoadCXR()(write_dicom(tmp_path / "a.dcm", stored, ViewPosition="PA", PixelSpacing=[0.139, 0.143]))
    assert isinstance(image, MetaTensor) and image.dtype == torch.float32
    assert tuple(image.shape) == (1, 64, 48)
    expected = (stored - stored.min()) / (stored.max() - stored.min())
    np.testing.assert_allclose(image[0].numpy(), expected, atol=1e-6)
    assert image.meta["view_position"] == "PA"
    assert image.meta["pixel_spacing"] == pytest.approx((0.139, 0.143))
    assert image.meta["photometric_interpretation"] == "MONOCHROME2"
    assert image.meta["filename_or_obj"].endswith("a.dcm")


def test_dicom_monochrome1_is_inverted(tmp_path):
    stored = (RAMP % 4096).astype(np.uint16)
    plain = read_cxr(write_dicom(tmp_path / "m2.dcm", stored, BitsStored=12, HighBit=11))[0]
    inverted, meta = read_cxr(
        write_dicom(tmp_path / "m1.dcm", stored, BitsStored=12, HighBit=11, PhotometricInterpretation="MONOCHROME1")
    )
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)
    assert meta["photometric_interpretation"] == "MONOCHROME1" and meta["bits_stored"] == 12


def test_dicom_rescale_and_window(tmp_path):
    stored = np.linspace(0, 4000, 64 * 64).astype(np.uint16).reshape(64, 64)
    # Rescale to [-1000, 3000] then a window centred at 500, width 1000: values outside [0, 1000] saturate.
    path = write_dicom(
        tmp_path / "w.dcm", stored, RescaleSlope=1, RescaleIntercept=-1000, WindowCenter=500, WindowWidth=1000
    )
    pixels, meta = read_cxr(path)
    assert meta["voi_applied"]
    hu = stored.astype(np.float32) - 1000
    assert (pixels[hu <= 0] == 0).all() and (pixels[hu >= 1000] == 1).all()
    inside = (hu > 50) & (hu < 950)
    # inside the window the mapping is linear in the rescaled value
    slope = np.polyfit(hu[inside], pixels[inside], 1)[0]
    assert slope == pytest.approx(1 / 1000, rel=0.02)


def test_dicom_8bit(tmp_path):
    stored = (RAMP % 256).astype(np.uint8)
    pixels, meta = read_cxr(write_dicom(tmp_path / "b.dcm", stored))
    np.testing.assert_allclose(pixels, stored / 255.0, atol=1e-6)
    assert meta["bits_stored"] == 8


def test_dicom_multiframe_refused(tmp_path):
    path = write_dicom(tmp_path / "mf.dcm", np.zeros((3, 16, 16), np.uint16))
    with pytest.raises(ImageReadError, match="multi-frame") as info:
        read_cxr(path)
    assert "mf.dcm" in str(info.value)


def test_dicom_colour_refused(tmp_path):
    path = write_dicom(tmp_path / "rgb.dcm", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ImageReadError, match="colour"):
        read_cxr(path)


def test_png_8_and_16_bit_and_colour(tmp_path):
    grey8 = (RAMP % 256).astype(np.uint8)
    Image.fromarray(grey8).save(tmp_path / "g8.png")
    np.testing.assert_allclose(read_cxr(tmp_path / "g8.png")[0], grey8 / 255.0, atol=1e-6)

    grey16 = (RAMP * 21).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    pixels, meta = read_cxr(tmp_path / "g16.png")
    assert meta["bits_stored"] == 16
    np.testing.assert_allclose(pixels, grey16 / 65535.0, atol=1e-6)

    rgb = np.stack([grey8, grey8, grey8], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=95)
    pixels, _ = read_cxr(tmp_path / "rgb.jpg")
    assert pixels.shape == grey8.shape
    assert np.abs(pixels - grey8 / 255.0).mean() < 0.02


def test_nifti_rows_first_with_spacing(tmp_path):
    image = RAMP.astype(np.float32)
    nib.save(nib.Nifti1Image(image.T.copy(), np.diag([0.2, 0.3, 1, 1])), tmp_path / "x.nii.gz")
    pixels, meta = read_cxr(tmp_path / "x.nii.gz")
    np.testing.assert_allclose(pixels, image / image.max(), atol=1e-6)
    assert meta["pixel_spacing"] == pytest.approx((0.3, 0.2))


def test_load_cxrd_dictionary(tmp_path):
    Image.fromarray((RAMP % 256).astype(np.uint8)).save(tmp_path / "a.png")
    out = LoadCXRd(keys="image")({"image": str(tmp_path / "a.png"), "report": "text"})
    assert tuple(out["image"].shape) == (1, 64, 48) and out["report"] == "text"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.dcm", None, "file not found"),
        ("truncated.dcm", "truncate-dicom", "pixel data|DICOM"),
        ("corrupt.jpg", "truncate-jpg", "corrupt"),
        ("text.png", b"this is not an image", "corrupt"),
        ("table.csv", b"a,b\n", "unsupported"),
    ],
)
def test_bad_image_files(tmp_path, name, content, reason):
    path = tmp_path / name
    if content == "truncate-dicom":
        full = write_dicom(tmp_path / "full.dcm", (RAMP % 4096).astype(np.uint16)).read_bytes()
        path.write_bytes(full[: len(full) - 1000])
    elif content == "truncate-jpg":
        Image.fromarray((RAMP % 256).astype(np.uint8)).save(tmp_path / "full.jpg")
        path.write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        LoadCXR()(path)
    assert name in str(info.value)


def _pydicom_test_files() -> list[Path]:
    from pydicom.data import get_testdata_files

    paths = (Path(p) for p in get_testdata_files())
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in (".dcm", ""))


def test_every_pydicom_test_file_loads_or_raises_package_error():
    files = _pydicom_test_files()
    assert len(files) > 100
    loaded = 0
    for path in files:
        try:
            image = LoadCXR()(path)
        except ImageReadError as err:
            assert str(path) in str(err)
            continue
        loaded += 1
        values = image.numpy()
        assert values.ndim == 3 and values.shape[0] == 1, path
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1, path
    # pydicom ships grey radiographs in several syntaxes (uncompressed, RLE, deflate, ...): some must load
    assert loaded >= 20


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_png_claiming_a_huge_size_is_a_clear_error(tmp_path):
    import struct

    path = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)  # 100000 x 100000 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match=r"bomb\.png: .*MAX_IMAGE_PIXELS"):
        read_cxr(path)


def test_16bit_png_uses_its_declared_significant_bits(tmp_path):
    from PIL import PngImagePlugin

    values = np.array([[0, 1024], [2048, 4095]], dtype=np.uint16)  # 12-bit detector values
    declared = PngImagePlugin.PngInfo()
    declared.add(b"sBIT", bytes([12]))
    Image.fromarray(values).save(tmp_path / "sbit.png", pnginfo=declared)
    Image.fromarray(values).save(tmp_path / "plain.png")
    pixels, meta = read_cxr(tmp_path / "sbit.png")
    np.testing.assert_allclose(pixels, values / 4095.0, rtol=1e-6)
    assert meta["bits_stored"] == 12
    pixels, meta = read_cxr(tmp_path / "plain.png")  # no sBIT: the documented full 16-bit range
    np.testing.assert_allclose(pixels, values / 65535.0, rtol=1e-6)
    assert meta["bits_stored"] == 16


def test_dicom_without_preamble_or_file_meta_decodes(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    expected, _ = read_cxr(get_testdata_file("CT_small.dcm"))
    bare = tmp_path / "bare.dcm"
    source.preamble, source.file_meta = None, pydicom.dataset.FileMetaDataset()  # the data set alone
    pydicom.dcmwrite(bare, source, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert pydicom.misc.is_dicom(bare) is False
    pixels, _ = read_cxr(bare)
    np.testing.assert_allclose(pixels, expected)


def test_truncated_compressed_dicom_says_truncated(tmp_path):
    from pydicom.data import get_testdata_file

    data = Path(get_testdata_file("JPEG2000.dcm")).read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: data.find(b"\xe0\x7f\x10\x00") + 60])  # cut inside the JPEG 2000 stream
    with pytest.raises(ImageReadError, match=r"truncated\.dcm: .*truncated") as error:
        read_cxr(truncated)
    assert "force" not in str(error.value)


def test_no_package_error_suggests_force():
    from pydicom.data import get_testdata_files

    for path in get_testdata_files("*NoMeta*.dcm") + get_testdata_files("no_meta*.dcm"):
        with pytest.raises(ImageReadError) as error:
            read_cxr(path)
        assert "force" not in str(error.value), path
