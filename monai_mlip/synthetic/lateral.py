"""A lateral view of the same patient (MIMIC studies sometimes have one; frontal-only readers drop it).

The lateral is coarser than the frontal: body, superimposed lungs, heart, spine, sternum, trachea and
diaphragm, with the frontal findings projected where a lateral film would show them (an opacity at
the same height, fluid in the posterior costophrenic sulcus, a bigger heart, tubes). No masks are
kept for it. The patient faces the image's left (anterior is left, posterior right).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monai_mlip.synthetic.anatomy import Anatomy
from monai_mlip.synthetic.exposure import expose, sample_exposure
from monai_mlip.synthetic.fields import field_bank, smooth_step
from monai_mlip.synthetic.findings import Finding
from monai_mlip.synthetic.geometry import Frame, ellipsoid, tube_profile

__all__ = ["render_lateral"]


def render_lateral(anatomy: Anatomy, findings: Sequence[Finding], size: int, rng: np.random.Generator) -> np.ndarray:
    """Render the lateral view, float32 ``[S, S]`` in ``[0, 1]``.

    Args:
        anatomy: the patient of the frontal view (heart size, diaphragm, lung height).
        findings: the frontal view's findings, projected coarsely.
        size: image side.
        rng: the study's lateral generator.
    """
    bank = field_bank(size)
    frame = Frame(size, (rng.normal(0, 0.03), rng.normal(0, 0.03)), rng.uniform(0.95, 1.05), rng.normal(0, 0.03))
    u, v = frame.u, frame.v
    lung_r, lung_l = anatomy.lungs["right"], anatomy.lungs["left"]
    apex = min(lung_r.apex, lung_l.apex)
    dome = 0.5 * (lung_r.dome_peak + lung_l.dome_peak)
    # Body: deep front-to-back, narrowing into the neck.
    ramp = 0.5 * (1.0 + np.tanh((v - np.float32(anatomy.shoulder_v + 0.05)) * np.float32(1.0 / 0.06)))
    half = 0.3 + 0.5 * ramp
    q = (u - 0.05) / half
    body_mask = np.abs(q) < 1
    soft = np.sqrt(np.maximum(1.0 - q * q, 0.0)) * np.float32(1.3 * anatomy.body_thickness)
    # Lungs (both superimposed): a dome on top, the diaphragm sloping down to the posterior sulcus.
    diaphragm = np.float32(dome - 0.02) + np.float32(0.22) * np.clip((u + 0.5) / 1.0, 0, 1) ** 2
    shell = ellipsoid(u, v, 0.08, dome + 0.1, 0.6, dome + 0.1 - apex)
    lung = shell * smooth_step((diaphragm - v) * np.float32(frame.ppu), 2.0)
    fill = np.zeros_like(u)
    extra = np.zeros_like(u)
    heart_scale = anatomy.heart_scale * anatomy.ap_magnification
    heart = ellipsoid(u, v, -0.22 - 0.05 * (heart_scale - 1), dome - 0.12, 0.3 * heart_scale, 0.26 * heart_scale, 0.5)
    heart *= smooth_step((diaphragm + 0.03 - v) * np.float32(frame.ppu), 3.0)
    spine_u = 0.52 + 0.06 * np.clip(v + 0.2, -1, 1) ** 2
    phase = (v * np.float32(1.0 / anatomy.spine_period) + np.float32(anatomy.spine_phase)) % 1.0
    spine = tube_profile(np.abs(u - spine_u), 0.09) * (1.0 - 0.5 * np.exp(-(((phase - 0.5) / 0.07) ** 2)))
    sternum = tube_profile(np.abs(u + 0.52 + 0.05 * v), 0.025) * smooth_step((v - apex - 0.1) * frame.ppu, 6.0)
    sternum *= smooth_step((dome - v) * np.float32(frame.ppu), 6.0)
    trachea = tube_profile(np.abs(u - (0.02 + 0.08 * (v + 1.0))), 0.035)
    trachea *= smooth_step((anatomy.carina_v - v) * np.float32(frame.ppu), 0.04 * frame.ppu)
    # Ribs of both sides run obliquely down and forwards across the lungs.
    rib_phase = ((v + 0.45 * u) * np.float32(1.0 / anatomy.rib_spacing) - np.float32(anatomy.rib_start)) % 1.0
    ribs = np.maximum(1.0 - ((rib_phase - 0.2) / 0.18) ** 2, 0.0) * (u > -0.3) * lung
    # Hila and lung markings.
    hilum = ellipsoid(u, v, 0.05, anatomy.carina_v + 0.15, 0.12, 0.1)
    markings = np.float32(0.05) * bank.window("mid", rng, (size, size)) * lung
    for finding in findings:
        level = {"upper": apex + 0.3, "middle": dome - 0.3, "lower": dome - 0.12}.get(finding.zone, dome - 0.2)
        depth = {"upper": 0.05, "middle": -0.3, "lower": 0.3}.get(finding.zone, 0.0)
        if finding.name in ("pneumonia", "atelectasis", "nodule"):
            radius = 0.05 + 0.15 * finding.severity if finding.name != "nodule" else 0.03
            blob = ellipsoid(u, v, depth, level, radius * 1.3, radius)
            fill = np.maximum(fill, np.float32(0.2 + 0.5 * finding.severity) * blob)
        elif finding.name == "pleural_effusion":
            surface = np.float32(dome + 0.15 - 0.3 * finding.severity) - np.float32(0.1) * np.clip(u, 0, 1)
            # Fluid collects in the posterior costophrenic sulcus first.
            fluid = smooth_step((v - surface) * np.float32(frame.ppu), 0.04 * frame.ppu)
            fluid *= smooth_step((u + 0.1 - 0.4 * finding.severity) * np.float32(frame.ppu), 0.3 * frame.ppu)
            fill = np.maximum(fill, fluid)
        elif finding.name == "edema":
            fill = np.maximum(
                fill, np.float32(0.1 + 0.3 * finding.severity) * ellipsoid(u, v, 0.0, anatomy.carina_v + 0.2, 0.4, 0.4)
            )
        elif finding.name == "support_device" and finding.subtype in ("endotracheal_tube", "enteric_tube"):
            offset = 0.0 if finding.subtype == "endotracheal_tube" else 0.12
            extra += (
                np.float32(0.25)
                * tube_profile(np.abs(u - (0.02 + offset + 0.08 * (v + 1.0))), 0.008)
                * (v < anatomy.carina_v - 0.1)
            )
    total = soft + 0.45 * np.sqrt(heart) + 0.35 * spine + 0.2 * sternum - 0.25 * trachea + 0.12 * hilum
    total += np.float32(0.08 * anatomy.bone_density) * ribs + markings
    total = total - np.float32(1.1) * lung * (1.0 - np.clip(fill, 0, 1)) + extra
    total += np.float32(0.03) * bank.window("low", rng, (size, size))
    total = np.maximum(total, 0.0) * body_mask
    return expose(total.astype(np.float32), sample_exposure(rng, "PA"), bank, rng)
