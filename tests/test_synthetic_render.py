"""The synthetic renderer: images, findings and their masks, determinism, no label leakage."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy import ndimage

from monai_mlip.errors import MLIPError
from monai_mlip.synthetic import DEVICES, FindingSpec, render_study, sample_findings
from monai_mlip.synthetic.findings import PREVALENCE, SAMPLED_SEVERITY

SIZE = 96

# One spec per kind of finding, obvious enough to measure.
SPECS = [
    FindingSpec("pneumonia", "right", "lower", 0.8),
    FindingSpec("pneumonia", "bilateral", "upper", 0.6),
    FindingSpec("pneumothorax", "left", "apical", 0.9),
    FindingSpec("pneumothorax", "right", "lateral", 0.8),
    FindingSpec("pleural_effusion", "right", "basal", 0.7),
    FindingSpec("pleural_effusion", "bilateral", "basal", 0.5),
    FindingSpec("cardiomegaly", severity=0.8),
    FindingSpec("atelectasis", "left", "lower", 0.8, subtype="plate"),
    FindingSpec("atelectasis", "bilateral", "lower", 0.8, subtype="patchy"),
    FindingSpec("edema", "bilateral", "perihilar", 0.8),
    FindingSpec("nodule", "left", "upper", 0.8),
    *(FindingSpec("support_device", "right", subtype=kind) for kind in DEVICES),
]


def _render(seed: int, findings, size: int = SIZE, view: str = "PA", **kwargs):
    return render_study(np.random.default_rng(seed), size, view=view, findings=findings, **kwargs)


def test_image_is_a_radiograph():
    study = _render(0, [])
    assert study.image.shape == (SIZE, SIZE) and study.image.dtype == np.float32
    # Air outside the body is black and the lead marker white, so the film spans exactly [0, 1].
    assert study.image.min() == 0.0 and study.image.max() == 1.0
    assert study.findings == [] and study.view == "PA"
    assert 0.1 < study.pixel_spacing * SIZE / 400 < 2 and study.sex in ("F", "M")
    # Lungs are darker than the mediastinum and the abdomen.
    centre, lung = study.image[SIZE // 2, SIZE // 2 - 2 : SIZE // 2 + 2].mean(), study.image[SIZE // 2, SIZE // 4]
    assert centre > lung + 0.1


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.name}-{s.side or s.subtype}-{s.zone}")
def test_finding_changes_only_its_mask(spec):
    """Drawing a finding changes the image inside its mask (visibly) and nowhere else."""
    normal = _render(3, [])
    study = _render(3, [spec])
    (finding,) = study.findings
    assert finding.name == spec.name
    assert finding.mask.shape == (SIZE, SIZE) and finding.mask.dtype == np.uint8 and finding.mask.any()
    difference = np.abs(study.image - normal.image)
    # Edge enhancement (as CR processing does) leaves a faint halo of about S/16 pixels; beyond it, nothing.
    halo = ndimage.binary_dilation(finding.mask > 0, iterations=SIZE // 6)
    assert difference[~halo].max() < 0.01, "the finding changed pixels away from its mask"
    near = ndimage.binary_dilation(finding.mask > 0, iterations=3)
    assert difference[~near].mean() < 0.004
    assert difference[finding.mask > 0].mean() > 0.015, "the finding is not visible inside its mask"
    if spec.side == "bilateral":
        assert len(finding.components()) >= 2


def test_lesions_sit_in_the_named_lung():
    study = _render(5, [FindingSpec("pneumonia", "right", "lower", 0.7), FindingSpec("nodule", "left", "upper", 0.7)])
    pneumonia, nodule = study.findings
    rows, cols = np.nonzero(pneumonia.mask)
    assert cols.mean() < SIZE / 2, "the patient's right lung is on the image's left"
    rows_n, cols_n = np.nonzero(nodule.mask)
    assert cols_n.mean() > SIZE / 2 and rows_n.mean() < rows.mean()


def test_opacity_brightens_and_pneumothorax_darkens_with_severity():
    normal = _render(7, [])
    previous_opacity, previous_lucency = 0.0, 0.0
    for severity in (0.1, 0.5, 0.9):
        opacity = _render(7, [FindingSpec("pneumonia", "left", "lower", severity)])
        mask = opacity.findings[0].mask > 0
        gain = float((opacity.image - normal.image)[mask].mean())
        assert gain > previous_opacity
        previous_opacity = gain
        air = _render(7, [FindingSpec("pneumothorax", "right", "apical", severity)])
        region = ndimage.binary_erosion(air.findings[0].mask > 0, iterations=1)
        loss = float((normal.image - air.image)[region].mean())
        assert loss > previous_lucency
        previous_lucency = loss
    assert previous_opacity > 0.05 and previous_lucency > 0.02


def test_cardiomegaly_and_ap_enlarge_the_heart():
    def heart_width(study):
        return int(np.ptp(np.nonzero(study.findings[0].mask.any(axis=0))[0])) + 1

    normal = [heart_width(_render(s, [FindingSpec("cardiomegaly", severity=0.0)], view="PA")) for s in range(6)]
    big = [heart_width(_render(s, [FindingSpec("cardiomegaly", severity=1.0)], view="PA")) for s in range(6)]
    assert all(b > n for b, n in zip(big, normal, strict=True))
    study = _render(11, [FindingSpec("cardiomegaly", severity=0.9)])
    assert study.findings[0].details["ratio"] > 0.6
    pa = np.mean([heart_width(_render(s, [FindingSpec("cardiomegaly", severity=0.3)], view="PA")) for s in range(8)])
    ap = np.mean([heart_width(_render(s, [FindingSpec("cardiomegaly", severity=0.3)], view="AP")) for s in range(8)])
    assert ap > pa


def test_boxes_bound_the_mask_components():
    study = _render(2, [FindingSpec("pneumonia", "bilateral", "lower", 0.8)])
    finding = study.findings[0]
    boxes = finding.boxes
    assert boxes.shape == (len(finding.components()), 4) and len(boxes) >= 2
    union = np.zeros_like(finding.mask)
    for (x, y, w, h), component in zip(boxes.astype(int), finding.components(), strict=True):
        rows, cols = np.nonzero(component)
        assert (x, y, w, h) == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
        union |= component
    np.testing.assert_array_equal(union, finding.mask)


def test_same_seed_same_study_different_seed_different_study():
    first, second = render_study(np.random.default_rng(42), 64), render_study(np.random.default_rng(42), 64)
    np.testing.assert_array_equal(first.image, second.image)
    assert first.report.text == second.report.text
    other = render_study(np.random.default_rng(43), 64)
    assert not np.array_equal(first.image, other.image)


def test_sampled_findings_follow_the_prevalence():
    rng = np.random.default_rng(0)
    draws = [sample_findings(rng, PREVALENCE["mimic"]) for _ in range(2000)]
    rate = {name: np.mean([any(s.name == name for s in d) for d in draws]) for name in ("pneumonia", "pneumothorax")}
    assert 0.2 <= rate["pneumonia"] <= 0.35 and 0.2 <= rate["pneumothorax"] <= 0.35
    severities = [s.severity for d in draws for s in d]
    assert SAMPLED_SEVERITY[0] <= min(severities) < SAMPLED_SEVERITY[0] + 0.05 and max(severities) > 0.95
    assert 0.05 < np.mean([s.uncertain for d in draws for s in d if s.name != "support_device"]) < 0.3


def test_anatomy_and_film_do_not_depend_on_the_findings():
    """A study's patient and exposure come from their own streams: other findings do not move them."""
    base = _render(9, [FindingSpec("nodule", "right", "upper", 0.5)])
    more = _render(9, [FindingSpec("nodule", "right", "upper", 0.5), FindingSpec("pneumonia", "left", "lower", 0.5)])
    outside = ~ndimage.binary_dilation(more.findings[1].mask > 0, iterations=SIZE // 6)
    np.testing.assert_allclose(base.image[outside], more.image[outside], atol=0.01)
    assert base.pixel_spacing == more.pixel_spacing and base.view == more.view


def test_lateral_view():
    study = render_study(np.random.default_rng(1), 64, lateral=True)
    assert study.lateral is not None and study.lateral.shape == (64, 64)
    assert study.lateral.min() == 0.0 and study.lateral.max() == 1.0
    assert not np.array_equal(study.lateral, study.image)
    assert render_study(np.random.default_rng(1), 64, lateral=False).lateral is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="view"):
        render_study(np.random.default_rng(0), 64, view="LL")
    with pytest.raises(ValueError, match="unknown finding"):
        FindingSpec("fracture")
    with pytest.raises(ValueError, match="severity"):
        FindingSpec("nodule", "left", "upper", 1.5)
    with pytest.raises(ValueError, match="subtype"):
        FindingSpec("support_device")
    with pytest.raises(ValueError, match="needs a side"):
        FindingSpec("pneumonia")
    with pytest.raises(ValueError, match="zone"):
        FindingSpec("pneumothorax", "left", "lower")
    assert FindingSpec("pneumonia", "left").zone == "upper"
    assert FindingSpec("atelectasis", "left").subtype == "plate"


def test_default_output_does_not_need_torchxrayvision(monkeypatch):
    expected = render_study(np.random.default_rng(4), 64).image
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchxrayvision" else real_find_spec(name, *a)
    )
    from monai_mlip.synthetic import real_shapes

    real_shapes.real_shapes.cache_clear()
    try:
        np.testing.assert_array_equal(render_study(np.random.default_rng(4), 64).image, expected)
        with pytest.raises(MLIPError, match="torchxrayvision"):
            render_study(np.random.default_rng(4), 64, use_real_shapes=True)
    finally:
        real_shapes.real_shapes.cache_clear()


def test_real_shapes_from_torchxrayvision():
    pytest.importorskip("torchxrayvision")
    specs = [FindingSpec("pneumothorax", "right", "apical", 0.7), FindingSpec("pneumonia", "right", "lower", 0.7)]
    procedural = _render(6, specs, size=128)
    real = _render(6, specs, size=128, use_real_shapes=True)
    for drawn, reference in zip(real.findings, procedural.findings, strict=True):
        assert drawn.mask.any() and drawn.side in ("right", "left", "bilateral")
        assert not np.array_equal(drawn.mask, reference.mask)
        assert drawn.sentence


def test_real_pneumothorax_grows_with_severity():
    """Most real SIIM masks are a few pixels at the size models train on: the renderer grows them to the
    share of their lung that the severity asks for."""
    pytest.importorskip("torchxrayvision")
    from monai_mlip.synthetic.anatomy import render_anatomy, sample_anatomy
    from monai_mlip.synthetic.fields import field_bank
    from monai_mlip.synthetic.findings import _pneumothorax_extent, render_finding
    from monai_mlip.synthetic.real_shapes import real_shapes

    bank = field_bank(128)
    for severity in (0.3, 1.0):
        shares = []
        for seed in range(8):
            rng = np.random.default_rng(seed)
            scene = render_anatomy(sample_anatomy(rng, "PA"), 128, bank, rng)
            spec = FindingSpec("pneumothorax", "right", "", severity)
            finding = render_finding(scene, spec, rng, bank, real_shapes())
            shares.append(finding.mask.sum() / (scene.lung[finding.side] > 0.5).sum())
        assert min(shares) > 0.9 * _pneumothorax_extent(severity), (severity, shares)


@pytest.mark.parametrize("name", ["pneumonia", "nodule", "atelectasis"])
def test_zone_words_match_where_the_lesion_is(name):
    """Upper-zone lesions lie above middle-zone ones, which lie above lower-zone ones (in the same patient)."""
    heights = {}
    for zone in ("upper", "middle", "lower"):
        if name == "atelectasis" and zone == "upper":
            continue
        rows = []
        for seed in range(6):
            study = _render(seed, [FindingSpec(name, "right", zone, 0.6, subtype="patchy")])
            rows.append(np.nonzero(study.findings[0].mask)[0].mean())
        heights[zone] = np.mean(rows)
    ordered = [heights[z] for z in ("upper", "middle", "lower") if z in heights]
    assert ordered == sorted(ordered), heights
