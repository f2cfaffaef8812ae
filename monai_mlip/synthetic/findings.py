"""Findings drawn into a rendered chest, each with its pixel mask.

A :class:`FindingSpec` says what to draw (name, side, zone, severity, whether the report will hedge);
:func:`sample_findings` draws specs from per-finding prevalences, independently of each other and of
the patient; :func:`render_finding` draws one into a :class:`~.anatomy.Scene` and returns the
:class:`Finding` with its mask (the pixels whose appearance the finding changed) and the geometric
details the report needs (nodule size, tube tip position, ...). Severity in ``[0, 1]`` scales how
visible a finding is, from subtle to obvious.

Cardiomegaly changes the patient rather than adding a lesion: :func:`heart_scale` gives the heart
size to render, and :func:`render_finding` reads the silhouette back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from monai_mlip.synthetic.anatomy import SIDES, Anatomy, Scene, side_sign
from monai_mlip.synthetic.fields import FieldBank, draw_tubes, smooth_step
from monai_mlip.synthetic.real_shapes import RealShapes

__all__ = [
    "DEVICES",
    "FINDINGS",
    "PREVALENCE",
    "Finding",
    "FindingSpec",
    "heart_scale",
    "render_finding",
    "sample_findings",
]

FINDINGS = (
    "pneumonia",
    "pneumothorax",
    "pleural_effusion",
    "cardiomegaly",
    "atelectasis",
    "edema",
    "nodule",
    "support_device",
)
DEVICES = ("endotracheal_tube", "enteric_tube", "central_line", "picc", "pacemaker", "chest_tube")

# Severity of a sampled finding. Below about 0.3 a finding is a few faint pixels at the 128-256 px the
# models train on (a 0.1 pneumonia is a 10-pixel blob 0.3 brighter than lung at 128 px), so its label would
# teach noise; the renderer still takes any severity in [0, 1] from an explicit FindingSpec.
SAMPLED_SEVERITY = (0.3, 1.0)

# Per-study probability of each finding (devices: of each device) in the three layouts. Findings are
# drawn independently, so no finding predicts another.
PREVALENCE: dict[str, dict[str, float]] = {
    "mimic": {
        "pneumonia": 0.28,
        "pneumothorax": 0.25,
        "pleural_effusion": 0.2,
        "cardiomegaly": 0.15,
        "atelectasis": 0.15,
        "edema": 0.1,
        "nodule": 0.07,
        "endotracheal_tube": 0.07,
        "enteric_tube": 0.07,
        "central_line": 0.07,
        "picc": 0.06,
        "pacemaker": 0.05,
        "chest_tube": 0.04,
    },
    "rsna": {
        "pneumonia": 0.35,
        "pneumothorax": 0.03,
        "pleural_effusion": 0.1,
        "cardiomegaly": 0.1,
        "atelectasis": 0.08,
        "edema": 0.04,
        "nodule": 0.04,
        "endotracheal_tube": 0.04,
        "enteric_tube": 0.04,
        "central_line": 0.04,
        "picc": 0.03,
        "pacemaker": 0.03,
        "chest_tube": 0.02,
    },
    "siim": {
        "pneumonia": 0.06,
        "pneumothorax": 0.35,
        "pleural_effusion": 0.08,
        "cardiomegaly": 0.08,
        "atelectasis": 0.06,
        "edema": 0.03,
        "nodule": 0.04,
        "endotracheal_tube": 0.04,
        "enteric_tube": 0.04,
        "central_line": 0.05,
        "picc": 0.04,
        "pacemaker": 0.03,
        "chest_tube": 0.05,
    },
}

# Zones a finding may take (pneumothorax: where the pleural air collects).
_ZONES = {
    "pneumonia": ("upper", "middle", "lower"),
    "pneumothorax": ("apical", "lateral"),
    "pleural_effusion": ("basal",),
    "atelectasis": ("lower", "middle"),
    "edema": ("perihilar",),
    "nodule": ("upper", "middle", "lower"),
}
_BILATERAL = {"pneumonia": 0.15, "pleural_effusion": 0.3, "atelectasis": 0.35, "edema": 1.0}
# Findings whose report sentence may hedge (devices and cardiomegaly are stated plainly or not at all).
_HEDGED = {
    "pneumonia": 0.18,
    "pneumothorax": 0.12,
    "pleural_effusion": 0.15,
    "atelectasis": 0.2,
    "edema": 0.2,
    "cardiomegaly": 0.1,
    "nodule": 0.15,
}


@dataclass(frozen=True)
class FindingSpec:
    """What to draw.

    Attributes:
        name: one of :data:`FINDINGS`.
        side: ``"right"``, ``"left"``, ``"bilateral"`` (the patient's) or ``""`` when not sided.
        zone: where in the lung: ``upper``, ``middle``, ``lower`` (pneumonia, nodule; atelectasis ``lower`` or
            ``middle``), ``apical`` or ``lateral`` (pneumothorax), ``basal`` (effusion), ``perihilar`` (edema);
            ``""`` picks the first.
        severity: ``[0, 1]``, subtle to obvious.
        uncertain: the report hedges ("cannot be excluded"): CheXpert label -1.
        subtype: device kind (:data:`DEVICES`), atelectasis form (``plate``, ``patchy``) or ``""``.
    """

    name: str
    side: str = ""
    zone: str = ""
    severity: float = 0.5
    uncertain: bool = False
    subtype: str = ""

    def __post_init__(self) -> None:
        if self.name not in FINDINGS:
            raise ValueError(f"unknown finding {self.name!r}; expected one of {FINDINGS}")
        if self.side not in ("", "bilateral", *SIDES):
            raise ValueError(f"side must be 'right', 'left', 'bilateral' or '', got {self.side!r}")
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(f"severity must lie in [0, 1], got {self.severity}")
        if self.name == "support_device" and self.subtype not in DEVICES:
            raise ValueError(f"a support device needs a subtype from {DEVICES}, got {self.subtype!r}")
        sided = (self.name in _ZONES and self.name != "edema") or self.subtype in ("central_line", "picc", "chest_tube")
        if sided and not self.side:
            raise ValueError(f"{self.subtype or self.name} needs a side ('right', 'left' or 'bilateral')")
        zones = _ZONES.get(self.name, ("",))
        if not self.zone:
            object.__setattr__(self, "zone", zones[0])
        elif self.zone not in zones:
            raise ValueError(f"{self.name} zone must be one of {zones}, got {self.zone!r}")
        if self.name == "atelectasis" and self.subtype not in ("plate", "patchy"):
            object.__setattr__(self, "subtype", "plate")


@dataclass
class Finding:
    """A rendered finding.

    Attributes:
        name, side, zone, severity, uncertain, subtype: as in :class:`FindingSpec` (side and zone may be
            refined by the drawing, e.g. from a real lesion shape).
        mask: uint8 ``[H, W]``, 1 where the finding changed the image.
        details: measurements for the report (``size_mm``, ``tip_cm``, ``ratio``, ...).
        sentence: the report's findings-section sentence about it (set by :mod:`.reports`).
        impression: the impression sentence about it, or ``""``.
        labels: CheXpert columns its sentences assert (1.0, or -1.0 when hedged).
        category: MS-CXR category name for grounding, ``""`` when it has none or is hedged.
    """

    name: str
    side: str
    zone: str
    severity: float
    uncertain: bool
    subtype: str
    mask: np.ndarray
    details: dict[str, float | str] = field(default_factory=dict)
    sentence: str = ""
    impression: str = ""
    labels: dict[str, float] = field(default_factory=dict)
    category: str = ""

    def components(self) -> list[np.ndarray]:
        """The mask's connected regions (8-connectivity), uint8 ``[H, W]`` each, in label order."""
        labelled, count = ndimage.label(self.mask, structure=np.ones((3, 3), bool))
        return [(labelled == index).astype(np.uint8) for index in range(1, count + 1)]

    @property
    def boxes(self) -> np.ndarray:
        """float32 ``[K, 4]`` ``(x, y, w, h)`` pixel boxes of the mask's connected regions."""
        labelled, _ = ndimage.label(self.mask, structure=np.ones((3, 3), bool))
        boxes = [
            (sl[1].start, sl[0].start, sl[1].stop - sl[1].start, sl[0].stop - sl[0].start)
            for sl in ndimage.find_objects(labelled)
            if sl is not None
        ]
        return np.asarray(boxes, np.float32).reshape(-1, 4)


def sample_findings(rng: np.random.Generator, prevalence: Mapping[str, float]) -> list[FindingSpec]:
    """Draw the findings of one study.

    Args:
        rng: the study's finding generator.
        prevalence: probability of each finding name, and of each device kind (keys from :data:`DEVICES`).

    Returns:
        Specs in :data:`FINDINGS` order (devices in :data:`DEVICES` order), possibly empty.
    """
    specs = []
    for name in FINDINGS:
        kinds = DEVICES if name == "support_device" else (name,)
        for kind in kinds:
            # Every draw happens whatever the outcome, so one finding's presence never shifts another's draws.
            present = rng.random() < prevalence.get(kind, 0.0)
            severity = float(rng.uniform(*SAMPLED_SEVERITY))
            hedge = rng.random()
            side_draw, zone_draw, subtype_draw = rng.random(), rng.random(), rng.random()
            if not present:
                continue
            side = ""
            bilateral = _BILATERAL.get(name, 0.0)
            if name not in ("cardiomegaly", "support_device"):
                side = (
                    "bilateral" if side_draw < bilateral else SIDES[int((side_draw - bilateral) / (1 - bilateral) * 2)]
                )
            elif kind in ("central_line", "picc", "chest_tube"):
                side = SIDES[int(side_draw * 2)]
            zones = _ZONES.get(name, ("",))
            zone = zones[min(int(zone_draw * len(zones)), len(zones) - 1)]
            # Subtle findings are hedged more often.
            uncertain = hedge < _HEDGED.get(name, 0.0) * (1.6 - severity)
            subtype = kind if name == "support_device" else ""
            if name == "atelectasis":
                subtype = "plate" if subtype_draw < 0.5 else "patchy"
            specs.append(FindingSpec(name, side, zone, severity, bool(uncertain), subtype))
    return specs


def heart_scale(anatomy: Anatomy, spec: FindingSpec | None) -> float:
    """Heart size factor that gives ``spec``'s cardiomegaly (cardiothoracic ratio 0.53-0.67 on a PA film)."""
    if spec is None:
        return 1.0
    target = 0.53 + 0.14 * spec.severity
    return target / anatomy.cardiothoracic_ratio(projected=False)


# --- drawing helpers -------------------------------------------------------------------------------


def _window(size: int, row: float, col: float, ry: float, rx: float) -> tuple[slice, slice]:
    top, bottom = max(int(row - ry) - 2, 0), min(int(row + ry) + 3, size)
    left, right = max(int(col - rx) - 2, 0), min(int(col + rx) + 3, size)
    return slice(top, max(bottom, top)), slice(left, max(right, left))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labelled, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def _blob(
    scene: Scene, bank: FieldBank, rng: np.random.Generator, row: float, col: float, ry: float, rx: float, rough: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """An irregular soft-edged blob: ``(region, opacity)`` with opacity float32 in ``[0, 1]`` over the region."""
    region = _window(scene.size, row, col, ry * 1.7, rx * 1.7)
    shape = (region[0].stop - region[0].start, region[1].stop - region[1].start)
    rows = np.arange(region[0].start, region[0].stop, dtype=np.float32)[:, None]
    cols = np.arange(region[1].start, region[1].stop, dtype=np.float32)[None, :]
    distance = np.sqrt(((rows - row) / ry) ** 2 + ((cols - col) / rx) ** 2)
    shape_noise = bank.window("low", rng, shape) * np.float32(0.4 * rough)
    shape_noise += bank.window("mid", rng, shape) * np.float32(0.25 * rough)
    # The outline wanders with the noise but never past 1.6 radii (inside the window).
    shape_noise *= np.clip((1.6 - distance) * np.float32(1.0 / 0.6), 0.0, 1.0)
    opacity = np.clip((1.0 - distance + shape_noise) * 2.0, 0.0, 1.0)
    opacity *= _largest_component(opacity > 0)
    return region, opacity.astype(np.float32)


def _lung_point(scene: Scene, side: str, zone: str, rng: np.random.Generator) -> tuple[float, float]:
    """A patient-frame point in ``zone`` of the ``side`` lung."""
    lung = scene.anatomy.lungs[side]
    fraction_u, fraction_v = {
        "upper": (0.5, 0.25),
        "middle": (0.28, 0.62),
        "lower": (0.62, 0.84),
        "perihilar": (0.25, 0.5),
    }[zone]
    fraction_u += rng.uniform(-0.08, 0.08)
    fraction_v += rng.uniform(-0.06, 0.06)
    u = side_sign(side) * (lung.medial + fraction_u * (lung.lateral - lung.medial))
    return u, lung.apex + fraction_v * lung.height


def _zone_of(scene: Scene, side: str, row: float, col: float) -> str:
    """The zone (upper, middle, lower) of a pixel in a lung."""
    row_i = min(max(int(row), 0), scene.size - 1)
    col_i = min(max(int(col), 0), scene.size - 1)
    lung = scene.anatomy.lungs[side]
    fraction = (float(scene.frame.v[row_i, col_i]) - lung.apex) / lung.height
    return "upper" if fraction < 0.42 else "middle" if fraction < 0.68 else "lower"


def _side_of(scene: Scene, row: float, col: float) -> str:
    row_i = min(max(int(row), 0), scene.size - 1)
    col_i = min(max(int(col), 0), scene.size - 1)
    return "right" if scene.frame.u[row_i, col_i] < 0 else "left"


def _sides(side: str) -> tuple[str, ...]:
    return SIDES if side == "bilateral" else (side,)


def _without_specks(mask: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Drop connected regions smaller than ``fraction`` of the largest (stray fringe pixels), bool ``[H, W]``."""
    mask = mask.astype(bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    labelled, count = ndimage.label(mask[box], structure=np.ones((3, 3), bool))
    if count > 1:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        mask[box] = (sizes >= max(4, fraction * sizes.max()))[labelled]
    return mask


def _finish(
    spec: FindingSpec,
    mask: np.ndarray,
    side: str | None = None,
    zone: str | None = None,
    details: dict[str, float | str] | None = None,
) -> Finding:
    """The :class:`Finding` of ``spec`` with its mask (side and zone as drawn when they changed)."""
    if spec.name != "support_device":
        mask = _without_specks(mask)
    return Finding(
        name=spec.name,
        side=spec.side if side is None else side,
        zone=spec.zone if zone is None else zone,
        severity=spec.severity,
        uncertain=spec.uncertain,
        subtype=spec.subtype,
        mask=mask.astype(np.uint8),
        details=dict(details or {}),
    )


# --- lung opacities -----------------------------------------------------------------------------------


def _opacity(scene: Scene, region: tuple[slice, slice], opacity: np.ndarray, side: str, level: float) -> np.ndarray:
    """Replace a fraction ``level * opacity`` of the lung air over ``region``; returns the bool mask there."""
    lung = scene.lung[side][region]
    opacity = opacity * lung
    target = scene.fill[region]
    np.maximum(target, np.float32(level) * opacity, out=target)
    return (opacity > 0.2) & (lung > 0.5)


def _pneumonia(
    scene: Scene, spec: FindingSpec, rng: np.random.Generator, bank: FieldBank, shapes: RealShapes | None
) -> Finding:
    size = scene.size
    mask = np.zeros((size, size), bool)
    level = 0.6 + 0.4 * spec.severity
    patches = []
    if shapes is not None:
        for _ in range(10):
            boxes = shapes.pneumonia(rng, size)
            rows, cols = boxes[:, 1] + boxes[:, 3] / 2, boxes[:, 0] + boxes[:, 2] / 2
            sides = [_side_of(scene, r, c) for r, c in zip(rows, cols, strict=True)]
            candidate = [
                (r, c, h / 2, w / 2, s)
                for r, c, h, w, s in zip(rows, cols, boxes[:, 3], boxes[:, 2], sides, strict=True)
            ]
            inside = [scene.lung[s][int(min(r, size - 1)), int(min(c, size - 1))] > 0.5 for r, c, _, _, s in candidate]
            if all(inside):
                patches = candidate
                break
    if patches:
        side = sides[0] if len(set(sides)) == 1 else "bilateral"
        zone = _zone_of(scene, patches[0][4], patches[0][0], patches[0][1])
    else:
        side, zone = spec.side, spec.zone
        lungs = scene.anatomy.lungs
        for lung_side in _sides(spec.side):
            u, v = _lung_point(scene, lung_side, spec.zone, rng)
            row, col = scene.frame.to_pixel(u, v)
            width = lungs[lung_side].lateral - lungs[lung_side].medial
            radius_u = (0.2 + 0.14 * spec.severity) * width * rng.uniform(0.8, 1.2)
            radius_v = (0.17 + 0.12 * spec.severity) * lungs[lung_side].height * rng.uniform(0.8, 1.2)
            patches.append((row, col, radius_v * scene.frame.ppu, radius_u * scene.frame.ppu, lung_side))
    for row, col, ry, rx, lung_side in patches:
        region, opacity = _blob(scene, bank, rng, row, col, ry, rx, rough=1.0)
        mottled = 0.8 + 0.2 * np.clip(0.5 + 0.5 * bank.window("mid", rng, opacity.shape), 0, 1)
        mask[region] |= _opacity(scene, region, opacity * mottled, lung_side, level)
    return _finish(spec, mask, side=side, zone=zone)


def _atelectasis(scene: Scene, spec: FindingSpec, rng: np.random.Generator, bank: FieldBank) -> Finding:
    size, ppu = scene.size, scene.frame.ppu
    mask = np.zeros((size, size), bool)
    for lung_side in _sides(spec.side):
        lung = scene.anatomy.lungs[lung_side]
        if spec.subtype == "plate":
            u, v = _lung_point(scene, lung_side, spec.zone, rng)
            length = (0.1 + 0.16 * spec.severity) * ppu
            thickness = (0.005 + 0.01 * spec.severity) * ppu + 0.7
            angle = rng.uniform(-0.35, 0.35) * side_sign(lung_side)
            row, col = scene.frame.to_pixel(u, v)
            region = _window(size, row, col, length / 2 + thickness, length / 2 + thickness)
            canvas = np.zeros((region[0].stop - region[0].start, region[1].stop - region[1].start), np.float32)
            offset = np.array([np.sin(angle), np.cos(angle)], np.float32) * np.float32(length / 2)
            centre = np.array([row - region[0].start, col - region[1].start], np.float32)
            draw_tubes(canvas, (centre - offset)[None], (centre + offset)[None], np.array([thickness]), np.ones(1))
            mask[region] |= _opacity(scene, region, canvas, lung_side, 0.35 + 0.35 * spec.severity)
        else:  # patchy: dependent, just above the hemidiaphragm, or against the heart border (middle zone)
            sign = side_sign(lung_side)
            if spec.zone == "lower":
                u = sign * (lung.medial + rng.uniform(0.35, 0.7) * (lung.lateral - lung.medial))
                v = float(lung.dome(np.float32(abs(u)))) - 0.04
            else:
                u, v = _lung_point(scene, lung_side, spec.zone, rng)
            row, col = scene.frame.to_pixel(u, v)
            ry = (0.04 + 0.05 * spec.severity) * ppu
            rx = (0.1 + 0.12 * spec.severity) * ppu
            region, opacity = _blob(scene, bank, rng, row, col, ry, rx, rough=0.6)
            mask[region] |= _opacity(scene, region, opacity, lung_side, 0.25 + 0.45 * spec.severity)
    return _finish(spec, mask)


def _edema(scene: Scene, spec: FindingSpec, rng: np.random.Generator, bank: FieldBank) -> Finding:
    size, ppu = scene.size, scene.frame.ppu
    mask = np.zeros((size, size), bool)
    level = 0.12 + 0.35 * spec.severity
    for lung_side in SIDES:
        sign = side_sign(lung_side)
        hu, hv = scene.anatomy.hila[lung_side]
        lung = scene.anatomy.lungs[lung_side]
        # Perihilar and basal haze; with Kerley lines (moderate and worse) it reaches the lateral bases.
        row, col = scene.frame.to_pixel(hu + sign * (0.1 + 0.12 * spec.severity), hv + 0.06 + 0.08 * spec.severity)
        radius_u = (0.26 + 0.22 * spec.severity) * ppu
        region, opacity = _blob(scene, bank, rng, row, col, (0.36 + 0.1 * spec.severity) * ppu, radius_u, 0.5)
        mask[region] |= _opacity(scene, region, opacity, lung_side, level)
        # Indistinct vessels in the congested area.
        scene.keep[region] *= 1.0 - np.float32(0.6 * spec.severity) * opacity * scene.lung[lung_side][region]
        if spec.severity > 0.4:  # Kerley B lines: short horizontal lines at the lateral bases.
            count = int(rng.integers(4, 9))
            v = rng.uniform(lung.widest - 0.2, lung.dome_peak, count)
            u = sign * (lung.lateral - rng.uniform(0.01, 0.06, count))
            starts = np.array([scene.frame.to_pixel(a, b) for a, b in zip(u, v, strict=True)], np.float32)
            ends = np.array(
                [scene.frame.to_pixel(a - sign * rng.uniform(0.03, 0.06), b) for a, b in zip(u, v, strict=True)],
                np.float32,
            )
            lines = np.zeros((size, size), np.float32)
            draw_tubes(lines, starts, ends, np.full(count, 0.004 * ppu + 0.5, np.float32), np.ones(count, np.float32))
            lines *= scene.lung[lung_side]
            scene.extra += np.float32(0.05 * spec.severity) * lines
            mask |= lines > 0.2
    return _finish(spec, mask, side="bilateral")


def _nodule(scene: Scene, spec: FindingSpec, rng: np.random.Generator) -> Finding:
    size = scene.size
    spacing = scene.anatomy.pixel_spacing(size)
    diameter_mm = 6.0 + 22.0 * spec.severity
    radius = max(diameter_mm / 2.0 / spacing, 1.5)
    side = spec.side if spec.side in SIDES else "right"
    for _ in range(20):
        row, col = scene.frame.to_pixel(*_lung_point(scene, side, spec.zone, rng))
        r, c = int(row), int(col)
        if 0 <= r < size and 0 <= c < size and scene.lung[side][r, c] > 0.9 and not scene.heart[r, c]:
            break
    region = _window(size, row, col, radius + 1, radius + 1)
    rows = np.arange(region[0].start, region[0].stop, dtype=np.float32)[:, None]
    cols = np.arange(region[1].start, region[1].stop, dtype=np.float32)[None, :]
    distance = np.sqrt((rows - row) ** 2 + (cols - col) ** 2)
    sphere = np.sqrt(np.clip(1.0 - (distance / (radius + 0.5)) ** 2, 0.0, 1.0))
    scene.extra[region] += np.float32(0.08 + 0.14 * spec.severity) * sphere
    mask = np.zeros((size, size), bool)
    mask[region] = sphere > 0
    return _finish(spec, mask, side=side, details={"size_mm": round(diameter_mm)})


# --- pleura -----------------------------------------------------------------------------------------------


def _pneumothorax_extent(severity: float) -> float:
    """Fraction of its lung field a pneumothorax of ``severity`` takes (about 1/5 to 1/2)."""
    return 0.2 + 0.3 * severity


def _real_pneumothorax(
    scene: Scene, severity: float, rng: np.random.Generator, shapes: RealShapes
) -> tuple[np.ndarray, str] | None:
    """A real SIIM region on the synthetic chest: ``(float32 region [S, S], side)`` or ``None``.

    Of up to ten real regions that fall mostly inside a lung, keeps the one nearest the area
    :func:`_pneumothorax_extent` asks for, then grows it within that lung (binary dilation, so it still
    hugs the pleura where the real one did) until it reaches that area: most real SIIM masks are under
    1 % of the image, a few pixels at the 128 px the tiny preset trains on.
    """
    best, best_gap = None, np.inf
    for _ in range(10):
        parts = shapes.pneumothorax(rng, scene.size)
        if not parts:
            continue
        union = np.logical_or.reduce(parts)
        rows, cols = np.nonzero(union)
        side = _side_of(scene, rows.mean(), cols.mean())
        lung = scene.lung[side] > 0.5
        inside = union & lung
        if inside.sum() < 0.6 * union.sum():
            continue
        target = _pneumothorax_extent(severity) * lung.sum()
        gap = abs(np.log(max(int(inside.sum()), 1) / target))
        if gap < best_gap:
            best, best_gap = (inside, side, lung, target), gap
    if best is None:
        return None
    region, side, lung, target = best
    for _ in range(scene.size // 8):
        if region.sum() >= target:
            break
        region = ndimage.binary_dilation(region, mask=lung)
    return region.astype(np.float32), side


def _pneumothorax(scene: Scene, spec: FindingSpec, rng: np.random.Generator, shapes: RealShapes | None) -> Finding:
    size, frame = scene.size, scene.frame
    side = spec.side if spec.side in SIDES else "right"
    zone = spec.zone
    real = None if shapes is None else _real_pneumothorax(scene, spec.severity, rng, shapes)
    if real is not None:
        region, side = real
        rows, cols = np.nonzero(region)
        zone = "apical" if _zone_of(scene, side, rows.mean(), cols.mean()) == "upper" else "lateral"
    lung = scene.anatomy.lungs[side]
    sign = side_sign(side)
    if real is None:
        radius = lung.shell(frame.u, frame.v, sign)
        v = frame.v
        if zone == "apical":
            end = lung.apex + (0.35 + 0.45 * spec.severity) * lung.height
            reach = np.clip((end - v) * np.float32(1.0 / (end - lung.apex)), 0, 1)
            depth = np.float32(0.2 + 0.3 * spec.severity) * np.sqrt(reach)
        else:
            centre = lung.apex + 0.5 * lung.height
            extent = (0.4 + 0.35 * spec.severity) * lung.height
            reach = np.clip(1.0 - ((v - np.float32(centre)) * np.float32(1.0 / extent)) ** 2, 0, 1)
            lateral = smooth_step((frame.u * np.float32(sign) - np.float32(lung.apex_u)) * np.float32(frame.ppu), 6.0)
            depth = np.float32(0.15 + 0.25 * spec.severity) * np.sqrt(reach) * lateral
        scale = np.float32(frame.ppu * 0.5 * (lung.lateral - lung.apex_u + lung.height / 2))
        region = smooth_step((radius - (1.0 - depth)) * scale, 1.5) * (depth > 0.005)
        region *= scene.lung[side] > 0.5
        line_distance = (radius - (1.0 - depth)) * scale
    else:
        # the pleural line: the region's edge inside the lung (not along the chest wall)
        soft = ndimage.uniform_filter(region, 3)
        line_distance = np.where((soft > 0.05) & (soft < 0.95) & (scene.lung[side] > 0.97), 0.0, 9.0)
        line_distance = line_distance.astype(np.float32)
    width = max(1.0, size / 256)
    line = np.exp(-((line_distance / np.float32(width)) ** 2)) * (scene.lung[side] > 0.5)
    line *= ndimage.maximum_filter(region, 5) > 0  # only along this pneumothorax
    np.minimum(scene.keep, 1.0 - region, out=scene.keep)
    # free pleural air: no lung in the way, so darker than the aerated lung beside it
    scene.extra -= np.float32(0.25 + 0.15 * spec.severity) * region * (scene.air + np.float32(0.25) * scene.lung[side])
    scene.extra += np.float32(0.15 + 0.1 * spec.severity) * line
    mask = (region > 0.5) | (line > 0.3)
    return _finish(spec, mask, side=side, zone=zone)


def _pleural_effusion(scene: Scene, spec: FindingSpec) -> Finding:
    size, frame = scene.size, scene.frame
    mask = np.zeros((size, size), bool)
    for lung_side in _sides(spec.side):
        lung = scene.anatomy.lungs[lung_side]
        sign = side_sign(lung_side)
        region = frame.box(*lung.bounds(sign))
        u, v = frame.u[region], frame.v[region]
        across = np.clip(
            (u * np.float32(sign) - np.float32(lung.medial)) * np.float32(1.0 / (lung.lateral - lung.medial)), 0, 1
        )
        level = lung.angle_depth - (0.03 + 0.5 * spec.severity**1.5) * lung.height
        # The meniscus: fluid climbs the lateral chest wall.
        surface = np.float32(level) - np.float32(0.06 + 0.16 * spec.severity) * across**3
        haze = (0.03 + 0.05 * spec.severity) * frame.ppu
        fluid = smooth_step((v - surface) * np.float32(frame.ppu) - np.float32(haze / 2), haze)
        # Fluid lies above the hemidiaphragm (which it hides) within the pleural space.
        dome = lung.dome(np.abs(u)) + np.float32(0.04)
        fluid *= smooth_step((dome - v) * np.float32(frame.ppu), 3.0) * scene.hemithorax[lung_side][region]
        np.maximum(scene.fill[region], fluid, out=scene.fill[region])
        scene.extra[region] += np.float32(0.2) * fluid
        mask[region] |= fluid > 0.3
    return _finish(spec, mask)


# --- heart ------------------------------------------------------------------------------------------------


def _cardiomegaly(scene: Scene, spec: FindingSpec) -> Finding:
    ratio = scene.anatomy.cardiothoracic_ratio(projected=False)
    return _finish(spec, scene.heart.astype(bool), details={"ratio": round(ratio, 2)})


# --- support devices -------------------------------------------------------------------------------


def _spline(points: Sequence[tuple[float, float]], per_segment: int = 12) -> np.ndarray:
    """Catmull-Rom curve through ``points`` (``[N, 2]``), sampled ``per_segment`` times between neighbours."""
    p = np.asarray(points, np.float32)
    p = np.concatenate([p[:1], p, p[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False, dtype=np.float32)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    out.append(p[-2:-1])
    return np.concatenate(out)


def _draw_device_path(
    scene: Scene, points_uv: Sequence[tuple[float, float]], radius_mm: float, value: float
) -> np.ndarray:
    """Draw a radiopaque tube along a patient-frame path; returns its float32 ``[S, S]`` attenuation."""
    frame = scene.frame
    path = _spline([frame.to_pixel(u, v) for u, v in points_uv])
    radius = max(radius_mm / scene.anatomy.pixel_spacing(scene.size), 0.6)
    canvas = np.zeros((scene.size, scene.size), np.float32)
    count = len(path) - 1
    draw_tubes(canvas, path[:-1], path[1:], np.full(count, radius, np.float32), np.full(count, value, np.float32))
    return canvas


def _support_device(scene: Scene, spec: FindingSpec, rng: np.random.Generator) -> Finding:
    anatomy = scene.anatomy
    carina = anatomy.carina_v
    hcu, hcv, _, hrv, _ = anatomy.heart_ellipse
    svc = (-0.06, carina + rng.uniform(0.05, 0.22))
    details: dict[str, float | str] = {}
    side = spec.side
    canvas = np.zeros((scene.size, scene.size), np.float32)
    if spec.subtype == "endotracheal_tube":
        tip_v = carina - rng.uniform(0.12, 0.36)
        path = [(0.01, -1.4), (0.0, -0.9), (rng.normal(0, 0.01), tip_v)]
        canvas += _draw_device_path(scene, path, 4.0, 0.05) + _draw_device_path(scene, path, 1.0, 0.25)
        details["tip_cm"] = round((carina - tip_v) * anatomy.mm_per_unit / 10.0 * 2) / 2
    elif spec.subtype == "enteric_tube":
        dome = anatomy.lungs["left"].dome_peak
        tip = (rng.uniform(0.25, 0.45), dome + rng.uniform(0.15, 0.3))
        path = [(-0.02, -1.4), (0.02, -0.5), (0.04, dome - 0.1), (0.12, dome + 0.08), tip]
        canvas += _draw_device_path(scene, path, 1.8, 0.22)
        details["tip"] = "stomach"
    elif spec.subtype == "central_line":
        sign = side_sign(side)
        if sign < 0 or rng.random() < 0.5:  # internal jugular
            path = [(sign * 0.2, -1.4), (sign * 0.14, -0.95), svc]
            details["access"] = "internal jugular"
        else:
            path = [(sign * 0.7, -0.72), (sign * 0.35, -0.7), (0.0, -0.62), svc]
            details["access"] = "subclavian"
        canvas += _draw_device_path(scene, path, 1.2, 0.3)
        details["tip"] = _tip_word(svc[1], carina)
    elif spec.subtype == "picc":
        sign = side_sign(side)
        path = [(sign * 1.2, -0.55), (sign * 0.75, -0.72), (sign * 0.35, -0.7), (0.0, -0.6), svc]
        canvas += _draw_device_path(scene, path, 0.8, 0.3)
        details["tip"] = _tip_word(svc[1], carina)
    elif spec.subtype == "pacemaker":
        box_u, box_v = rng.uniform(0.42, 0.6), rng.uniform(-0.78, -0.62)
        frame = scene.frame
        region = frame.crop(box_u, box_v, 0.12)
        du, dv = frame.u[region] - np.float32(box_u), frame.v[region] - np.float32(box_v)
        generator = smooth_step(np.float32(0.075) - np.maximum(np.abs(du), np.abs(dv) * 1.4), 0.01)
        canvas[region] += 1.5 * generator
        atrium = (hcu - 0.15, hcv - 0.6 * hrv)
        ventricle = (hcu + 0.05, hcv + 0.6 * hrv)
        for tip in (atrium, ventricle):
            canvas += _draw_device_path(
                scene, [(box_u, box_v), (0.2, -0.75), (-0.04, -0.55), (-0.05, hcv - hrv), tip], 1.0, 0.4
            )
        details["leads"] = "right atrium and right ventricle"
    elif spec.subtype == "chest_tube":
        sign = side_sign(side)
        lung = anatomy.lungs[side]
        entry = (sign * (lung.lateral + 0.1), lung.dome_peak - 0.05)
        path = [entry, (sign * (lung.lateral - 0.08), lung.dome_peak - 0.2), (sign * lung.apex_u, lung.apex + 0.12)]
        canvas += _draw_device_path(scene, path, 5.0, 0.06) + _draw_device_path(scene, path, 1.2, 0.3)
        details["tip"] = "apex"
    scene.extra += canvas
    return _finish(spec, canvas > 0.02, side=side, details=details)


def _tip_word(tip_v: float, carina_v: float) -> str:
    below = tip_v - carina_v
    return "mid SVC" if below < 0.1 else "low SVC" if below < 0.17 else "cavoatrial junction"


def render_finding(
    scene: Scene, spec: FindingSpec, rng: np.random.Generator, bank: FieldBank, shapes: RealShapes | None = None
) -> Finding:
    """Draw ``spec`` into ``scene`` (its ``fill``, ``keep`` and ``extra`` layers) and return the finding.

    Args:
        scene: the rendered chest (for cardiomegaly, rendered with :func:`heart_scale`).
        spec: what to draw.
        rng: the finding's generator.
        bank: the texture bank of the scene's size.
        shapes: real SIIM/RSNA geometry for pneumothorax and pneumonia, or ``None`` for procedural shapes.
    """
    if spec.name == "pneumonia":
        return _pneumonia(scene, spec, rng, bank, shapes)
    if spec.name == "pneumothorax":
        return _pneumothorax(scene, spec, rng, shapes)
    if spec.name == "pleural_effusion":
        return _pleural_effusion(scene, spec)
    if spec.name == "cardiomegaly":
        return _cardiomegaly(scene, spec)
    if spec.name == "atelectasis":
        return _atelectasis(scene, spec, rng, bank)
    if spec.name == "edema":
        return _edema(scene, spec, rng, bank)
    if spec.name == "nodule":
        return _nodule(scene, spec, rng)
    return _support_device(scene, spec, rng)
