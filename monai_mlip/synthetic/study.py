"""One synthetic study: a rendered frontal radiograph, its findings with masks, and its report.

:func:`render_study` is the in-memory API the writers and the preview use. The study's generator is
split into independent streams (view and anatomy, exposure, which findings, how they are drawn, the
report, the lateral view), so the patient and the film do not depend on the findings: rendering the
same generator with and without a finding changes only the pixels of that finding's mask (and a faint
edge-enhancement halo around it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monai_mlip.synthetic.anatomy import Scene, render_anatomy, sample_anatomy
from monai_mlip.synthetic.exposure import expose, sample_exposure
from monai_mlip.synthetic.fields import field_bank
from monai_mlip.synthetic.findings import (
    PREVALENCE,
    Finding,
    FindingSpec,
    heart_scale,
    render_finding,
    sample_findings,
)
from monai_mlip.synthetic.lateral import render_lateral
from monai_mlip.synthetic.real_shapes import real_shapes
from monai_mlip.synthetic.reports import Report, write_report

__all__ = ["AIR_ATTENUATION", "SyntheticStudy", "attenuation", "render_study"]

# Attenuation removed per unit of lung air thickness.
AIR_ATTENUATION = 0.9


@dataclass
class SyntheticStudy:
    """A rendered study.

    Attributes:
        image: float32 ``[H, W]`` frontal radiograph in ``[0, 1]`` (bright = dense).
        view: ``"PA"`` or ``"AP"``.
        findings: the drawn findings with masks and report sentences.
        report: the report (text, statements, CheXpert labels).
        pixel_spacing: detector pixel size in mm (the same along rows and columns).
        sex: ``"F"`` or ``"M"`` (shapes soft tissue; for DICOM headers).
        lateral: float32 ``[H, W]`` lateral radiograph, or ``None``.
    """

    image: np.ndarray
    view: str
    findings: list[Finding]
    report: Report
    pixel_spacing: float
    sex: str
    lateral: np.ndarray | None = None

    @property
    def labels(self) -> dict[str, float]:
        """CheXpert labels (1.0, 0.0, -1.0, NaN for blank)."""
        return self.report.labels


def attenuation(scene: Scene) -> np.ndarray:
    """Total attenuation of a scene, float32 ``[S, S]``, 0 outside the body."""
    solid = 1.0 - scene.fill
    total = scene.soft + scene.bone - np.float32(AIR_ATTENUATION) * scene.air * solid
    total += scene.vessels * scene.keep * solid + scene.extra
    return np.maximum(total, 0.0) * scene.body


def render_study(
    rng: np.random.Generator,
    size: int = 512,
    view: str | None = None,
    findings: Sequence[FindingSpec] | None = None,
    prevalence: str | dict[str, float] = "mimic",
    lateral: bool | None = False,
    use_real_shapes: bool = False,
) -> SyntheticStudy:
    """Render one study.

    Args:
        rng: the study's generator (e.g. ``np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))``).
        size: image side in pixels.
        view: ``"PA"``, ``"AP"`` or ``None`` to draw it (45 % AP).
        findings: what to draw; ``None`` draws findings from ``prevalence``.
        prevalence: a preset of :data:`~.findings.PREVALENCE` (``"mimic"``, ``"rsna"``, ``"siim"``) or a mapping.
        lateral: also render a lateral view (``None``: with probability 0.1).
        use_real_shapes: shape pneumothoraces and pneumonia with the SIIM/RSNA annotations that
            ``torchxrayvision`` ships (it must be installed).

    Returns:
        The :class:`SyntheticStudy`.
    """
    streams = rng.spawn(6)
    anatomy_rng, exposure_rng, choice_rng, drawing_rng, report_rng, lateral_rng = streams
    if view is None:
        view = "AP" if anatomy_rng.random() < 0.45 else "PA"
    else:
        anatomy_rng.random()  # keep the anatomy stream aligned whether or not the view is given
    if view not in ("PA", "AP"):
        raise ValueError(f"view must be 'PA', 'AP' or None, got {view!r}")
    if lateral is None:
        lateral = bool(lateral_rng.random() < 0.1)
    if findings is None:
        table = PREVALENCE[prevalence] if isinstance(prevalence, str) else prevalence
        findings = sample_findings(choice_rng, table)
    specs = list(findings)
    anatomy = sample_anatomy(anatomy_rng, view)
    enlarged = next((s for s in specs if s.name == "cardiomegaly"), None)
    anatomy = anatomy.with_heart_scale(heart_scale(anatomy, enlarged))
    bank = field_bank(size)
    scene = render_anatomy(anatomy, size, bank, anatomy_rng)
    shapes = real_shapes() if use_real_shapes else None
    finding_rngs = drawing_rng.spawn(len(specs))
    drawn = [render_finding(scene, spec, r, bank, shapes) for spec, r in zip(specs, finding_rngs, strict=True)]
    exposure = sample_exposure(exposure_rng, view)
    image = expose(attenuation(scene), exposure, bank, exposure_rng)
    report = write_report(drawn, anatomy, report_rng, lateral=lateral)
    side_view = render_lateral(anatomy, drawn, size, lateral_rng) if lateral else None
    return SyntheticStudy(
        image=image,
        view=view,
        findings=drawn,
        report=report,
        pixel_spacing=anatomy.pixel_spacing(size),
        sex=anatomy.sex,
        lateral=side_view,
    )
