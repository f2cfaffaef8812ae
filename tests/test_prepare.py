"""The preparation step on a tiny layout at real image size: resized images, the index, resumption, skips."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_mlip.data import (
    BoxesToMaskd,
    LoadCXRd,
    build_mimic_cxr_manifest,
    build_ms_cxr_manifest,
    build_prepared_manifest,
    read_cxr,
)
from monai_mlip.data.manifests import COLUMNS_NAME
from monai_mlip.data.manifests import PREPARED_INDEX as INDEX_NAME
from monai_mlip.data.manifests import PREPARED_REPORT as REPORT_NAME
from monai_mlip.errors import ImageReadError, ReportError
from monai_mlip.prepare import prepare_image, prepare_mimic_cxr, prepared_sizes, resize_mask
from monai_mlip.prepare.__main__ import main
from monai_mlip.synthetic.layouts.mimic import MS_CXR_FILE
from tests.conftest import write_dicom

FULL = (2544, 3056)  # MIMIC-CXR-JPG's typical size, rows x columns
REPORT = "                FINAL REPORT\n FINDINGS: Right lower lobe opacity.\n IMPRESSION: Pneumonia.\n"


def _csv_gz(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with gzip.open(path, "wt", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def real_size_layout(root: Path, suffix: str = "jpg") -> list[Path]:
    """Four studies, one full-size frontal image each (a smooth gradient plus noise), and their indexes."""
    rng = np.random.default_rng(0)
    rows, images = [], []
    for number in range(4):
        subject, study, dicom = f"1{number:07d}", f"5{number:07d}", f"{number:08x}-a"
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True)
        (folder.parent / f"s{study}.txt").write_text(REPORT)
        ramp = np.linspace(0, 1, FULL[1])[None] * np.linspace(0.3, 1, FULL[0])[:, None]
        pixels = np.clip(ramp + rng.normal(0, 0.02, FULL), 0, 1)
        path = folder / f"{dicom}.{suffix}"
        if suffix == "jpg":
            Image.fromarray((pixels * 255).astype(np.uint8)).save(path, quality=95)
        else:
            write_dicom(path, (pixels * 4095).astype(np.uint16), BitsStored=12)
        images.append(path)
        rows.append([dicom, study, subject, ("train", "train", "validate", "test")[number]])
    _csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], rows)
    _csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", ["dicom_id", "ViewPosition"], [[r[0], "PA"] for r in rows])
    return images


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    source = tmp_path_factory.mktemp("mimic")
    images = real_size_layout(source)
    out = tmp_path_factory.mktemp("prepared")
    prepare_mimic_cxr(source, out, num_workers=2, progress=False)
    return source, out, images


def test_prepared_images_are_small_faithful_and_indexed(prepared):
    source, out, images = prepared
    manifest = build_prepared_manifest(out, split=None)
    assert len(manifest) == 4
    for item, original in zip(manifest, images, strict=True):
        assert item["original_size"] == FULL and item["image_size"] == (426, 512)
        small, _ = read_cxr(item["image"])
        naive = Image.fromarray((read_cxr(original)[0] * 255).astype(np.uint8)).resize((512, 426), Image.BOX)
        assert np.abs(small * 255 - np.asarray(naive, dtype=np.float32)).mean() < 2.0  # DCT reduction ~ full decode
    # the prepared manifest is the source manifest with the prepared images
    native = build_mimic_cxr_manifest(source, split="train", with_labels=False)
    train = build_prepared_manifest(out, split="train", with_labels=False)
    assert [(a["dicom_id"], a["report"]) for a in native] == [(b["dicom_id"], b["report"]) for b in train]
    findings = build_prepared_manifest(out, split="train", sections=("findings",))  # rebuilt from the sections
    assert {item["report"] for item in findings} == {"Right lower lobe opacity."}
    with gzip.open(out / INDEX_NAME, "rt") as handle:
        study = json.loads(handle.readline())
    assert study["sections"]["impression"] == "Pneumonia." and study["images"][0]["image"].endswith(".png")


def _same_items(first, second) -> bool:
    def plain(item):
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in sorted(item.items())}

    return len(first) == len(second) and all(
        repr(plain(a)) == repr(plain(b)) for a, b in zip(first, second, strict=True)
    )  # repr: NaN labels compare equal


@pytest.mark.parametrize(
    "options",
    [{"split": "train"}, {"split": None, "views": None}, {"split": "train", "fraction": 0.5}, {"one_per_study": True}],
)
def test_the_saved_columns_give_the_manifest_of_the_json_lines(prepared, tmp_path, options):
    _, out, _ = prepared
    columns = build_prepared_manifest(out, **options)  # from the saved columns
    copy = tmp_path / "no_columns"
    shutil.copytree(out, copy)
    (copy / COLUMNS_NAME).unlink()
    from_lines = build_prepared_manifest(copy, **options)  # from a pass over the JSON lines
    assert not (copy / COLUMNS_NAME).exists()
    assert _same_items(
        [{**i, "image": Path(i["image"]).name} for i in columns],
        [{**i, "image": Path(i["image"]).name} for i in from_lines],
    )
    assert sorted(columns.report.filtered.items()) == sorted(from_lines.report.filtered.items())
    assert columns.report.kept == len(columns)


def test_studies_without_text_in_the_chosen_sections_are_raised_or_skipped(prepared):
    _, out, _ = prepared
    with pytest.raises(ReportError, match="no text in the sections"):
        build_prepared_manifest(out, split=None, sections=("indication",))
    skipped = build_prepared_manifest(out, split=None, sections=("indication",), on_error="skip")
    assert len(skipped) == 0 and skipped.report.n_skipped == 4


def test_a_stopped_run_continues_without_redoing_finished_images(prepared, tmp_path):
    source, out, _ = prepared
    copy = tmp_path / "prepared"
    shutil.copytree(out, copy)
    pngs = sorted(copy.rglob("*.png"))
    pngs[0].unlink()  # never finished
    stale = pngs[1].with_name(f".{pngs[1].name}.tmp")
    stale.write_bytes(b"half a png")  # a write the kill interrupted
    pngs[2].write_bytes(b"")  # damaged by something else: not a finished image
    before = pngs[3].stat().st_mtime_ns
    (copy / INDEX_NAME).unlink()
    prepare_mimic_cxr(source, copy, num_workers=0, progress=False)
    assert pngs[3].stat().st_mtime_ns == before  # kept, not redone
    assert all(prepared_sizes(p)["original_size"] == list(FULL) for p in pngs)
    assert len(build_prepared_manifest(copy, split=None)) == 4


def test_bad_images_are_skipped_and_named(tmp_path):
    source = tmp_path / "mimic"
    images = real_size_layout(source)
    images[1].write_bytes(images[1].read_bytes()[:200])  # a truncated JPEG
    with pytest.raises(ImageReadError, match=images[1].name):
        prepare_mimic_cxr(source, tmp_path / "raise", num_workers=0, progress=False, on_error="raise")
    report = prepare_mimic_cxr(source, tmp_path / "out", num_workers=2, progress=False)
    assert report.kept == 3 and report.n_skipped == 1
    written = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert any(images[1].name in example for examples in written["examples"].values() for example in examples)
    assert len(build_prepared_manifest(tmp_path / "out", split=None)) == 3


def test_dicom_sources_keep_their_depth(tmp_path):
    source = tmp_path / "mimic"
    images = real_size_layout(source, suffix="dcm")
    result = prepare_image(images[0], tmp_path / "a.png", longest_side=256)
    assert result == {"original_size": list(FULL), "size": [213, 256]}
    with Image.open(tmp_path / "a.png") as image:
        assert image.mode.startswith("I")  # 16-bit, not cut to 8
    np.testing.assert_allclose(read_cxr(tmp_path / "a.png")[0].mean(), read_cxr(images[0])[0].mean(), atol=2e-3)


def test_command_line(tmp_path, capsys):
    source = tmp_path / "mimic"
    real_size_layout(source)
    code = main(["mimic", "--dataset_dir", str(source), "--out_dir", str(tmp_path / "out"), "--num_workers", "0"])
    assert code == 0 and "kept 4 items" in capsys.readouterr().out
    assert (tmp_path / "out" / INDEX_NAME).is_file()


def test_the_real_size_synthetic_layout_links_a_small_pool_and_prepares(tmp_path):
    from monai_mlip.synthetic import REAL_SIZE, write_real_size_mimic

    root = write_real_size_mimic(tmp_path / "mimic", studies=12, pool=2)
    manifest = build_mimic_cxr_manifest(root, split=None)
    assert len(manifest) == 12 and len({item["report"] for item in manifest}) <= 2
    first = Path(manifest[0]["image"])
    with Image.open(first) as image:
        assert (image.height, image.width) == REAL_SIZE
    assert first.stat().st_nlink >= 2 and 1_000_000 < first.stat().st_size < 3_000_000  # a link to the pool, MB-sized
    report = prepare_mimic_cxr(root, tmp_path / "prepared", num_workers=0, progress=False)
    assert report.kept == 12
    assert {item["original_size"] for item in build_prepared_manifest(tmp_path / "prepared", split=None)} == {REAL_SIZE}
    # MS-CXR boxes: in the full-size pixels, and on the same region of the prepared PNG as of the full JPG
    csv_path = root / MS_CXR_FILE
    full = build_ms_cxr_manifest(csv_path, root, image_suffix="jpg")
    small = {
        (i["dicom_id"], i["phrase"]): i
        for i in build_ms_cxr_manifest(csv_path, tmp_path / "prepared", image_suffix="png")
    }
    assert len(full) == len(small) > 0
    to_mask = BoxesToMaskd("boxes", mask_key="mask", id_key="dicom_id", source_size_key="image_size")
    for item in full[:3]:
        prepared = to_mask(LoadCXRd("image")(small[item["dicom_id"], item["phrase"]]))["mask"][0].numpy()
        original = to_mask(LoadCXRd("image")(item))["mask"][0].numpy()
        assert item["image_size"] == REAL_SIZE and prepared.shape == (426, 512)
        expected = resize_mask(original, prepared.shape)
        assert (prepared & expected).sum() / (prepared | expected).sum() > 0.9
