"""Every bundle's metadata passes MONAI's schema (an offline copy; skipped with a reason where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import verify_metadata

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema.json"
BUNDLES = sorted(path.parent.parent for path in (REPO / "bundles").glob("*/configs/metadata.json"))


def test_every_bundle_is_covered():
    names = {bundle.name for bundle in BUNDLES}
    assert {"mlip_pretrain", "rsna_pneumonia_classification", "siim_pneumothorax_segmentation"} <= names


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"MONAI's metadata schema is not at {SCHEMA} (offline copy)")
@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda path: path.name)
def test_metadata_is_valid(bundle):
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(SCHEMA))
