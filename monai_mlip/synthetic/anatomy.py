"""The normal chest: sampled anatomy and its attenuation layers.

:func:`sample_anatomy` draws one patient (habitus, lung size and volume, heart, diaphragm, bones,
position on the detector) and :func:`render_anatomy` projects it into attenuation layers on the pixel
grid. Attenuation is in arbitrary "water-equivalent thickness" units: the body is an ellipsoid of soft
tissue, the lungs remove tissue (their air thickness is subtracted), and bones, heart and mediastinum
add to it. Lesions later change these layers (:mod:`.findings`) before they are summed and exposed
(:mod:`.render`).

Sides are the patient's: the right lung is on the image's left (``u < 0``) on a frontal view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from monai_mlip.synthetic.fields import FieldBank, draw_tubes, smooth_step
from monai_mlip.synthetic.geometry import Frame, ellipsoid, tube_profile

__all__ = ["SIDES", "Anatomy", "Lung", "Scene", "render_anatomy", "sample_anatomy"]

SIDES = ("right", "left")


def side_sign(side: str) -> float:
    """``-1`` for the patient's right (image left), ``+1`` for the left."""
    return -1.0 if side == "right" else 1.0


@dataclass(frozen=True)
class Lung:
    """One lung field in the patient frame.

    Attributes:
        medial, lateral: ``|u|`` of the medial and lateral edges at the widest level.
        apex: ``v`` of the apex.
        widest: ``v`` below which the lateral wall is vertical.
        dome_peak: ``v`` of the top of the hemidiaphragm; dome_u: its ``|u|``.
        angle_depth: ``v`` of the costophrenic angle (the lung's lowest lateral point).
    """

    medial: float
    lateral: float
    apex: float
    widest: float
    dome_peak: float
    dome_u: float
    angle_depth: float

    @property
    def centre_u(self) -> float:
        return 0.5 * (self.medial + self.lateral)

    @property
    def half_width(self) -> float:
        return 0.5 * (self.lateral - self.medial)

    @property
    def apex_u(self) -> float:
        """``|u|`` of the apex: over the medial third of the lung."""
        return self.medial + 0.4 * (self.lateral - self.medial)

    @property
    def height(self) -> float:
        """From the apex to the top of the hemidiaphragm."""
        return self.dome_peak - self.apex

    def bounds(self, sign: float) -> tuple[float, float, float, float]:
        """``(u0, u1, v0, v1)`` of a box holding the lung and its pleural recess."""
        inner, outer = sign * (self.medial - 0.03), sign * (self.lateral + 0.03)
        return min(inner, outer), max(inner, outer), self.apex - 0.03, self.angle_depth + 0.4

    def dome(self, abs_u: np.ndarray) -> np.ndarray:
        """``v`` of the hemidiaphragm at ``|u|`` (a parabola, steeper towards the costophrenic angle)."""
        lateral = (abs_u - self.dome_u) / (self.lateral - self.dome_u)
        medial = (self.dome_u - abs_u) / self.dome_u
        rise = np.float32(self.angle_depth - self.dome_peak)
        return np.where(
            abs_u > self.dome_u, self.dome_peak + rise * lateral**2, self.dome_peak + 0.3 * rise * medial**2
        )

    def shell(self, u: np.ndarray, v: np.ndarray, sign: float) -> np.ndarray:
        """Normalised radius ``r`` of the lung's outline (``r < 1`` inside, ignoring the diaphragm), float32.

        The lateral wall curves over a wide radius; the medial wall (against the mediastinum) is nearly
        straight; below ``widest`` the walls are vertical.
        """
        su = u * np.float32(sign)
        apex_u = np.float32(self.apex_u)
        lateral = (su - apex_u) * np.float32(1.0 / (self.lateral - self.apex_u))
        medial = (su - apex_u) * np.float32(1.0 / (self.apex_u - self.medial))
        qu = np.where(su > apex_u, lateral * lateral, (medial * medial) ** 2)
        qv = (np.minimum(v - np.float32(self.widest), 0) * np.float32(1.0 / (self.widest - self.apex))) ** 2
        return np.sqrt(qu + qv)


@dataclass(frozen=True)
class Anatomy:
    """One sampled patient and projection (all lengths in patient-frame units).

    The heart's size is ``heart_scale`` times its normal size; cardiomegaly sets it (:mod:`.findings`),
    and an AP projection magnifies it further by ``ap_magnification``.
    """

    view: str
    sex: str
    shift: tuple[float, float]
    zoom: float
    angle: float
    body_width: float
    body_thickness: float
    neck_width: float
    shoulder_v: float
    arms: bool
    lungs: dict[str, Lung]
    lung_volume: str
    heart_u: float
    heart_radii: tuple[float, float]
    heart_angle: float
    heart_scale: float
    mediastinum_width: float
    knob: tuple[float, float, float]
    carina_v: float
    spine_period: float
    spine_phase: float
    rib_start: float
    rib_spacing: float
    rib_count: int
    clavicle_v: float
    clavicle_tilt: float
    bone_density: float
    breasts: float
    gastric_bubble: float
    vessel_trees: tuple[int, int]
    vessel_strength: float
    mm_per_unit: float
    aortic_calcification: bool
    hila: dict[str, tuple[float, float]] = field(default_factory=dict)

    def pixel_spacing(self, size: int) -> float:
        """Detector pixel size in mm of an ``size x size`` image of this patient (the film's scale)."""
        return self.mm_per_unit / (self.zoom * size / 2.0)

    @property
    def ap_magnification(self) -> float:
        return 1.1 if self.view == "AP" else 1.0

    @property
    def heart_ellipse(self) -> tuple[float, float, float, float, float]:
        """``(cu, cv, ru, rv, angle)`` of the cardiac silhouette as projected."""
        scale = self.heart_scale * self.ap_magnification
        ru, rv = self.heart_radii[0] * scale, self.heart_radii[1] * scale
        floor = 0.5 * (self.lungs["right"].dome_peak + self.lungs["left"].dome_peak)
        cu = self.heart_u + 0.12 * (scale - 1.0)  # an enlarged heart grows to the patient's left
        cv = floor + 0.1 - 0.8 * rv
        return cu, cv, ru, rv, self.heart_angle

    def heart_width(self, projected: bool = True) -> float:
        """Horizontal extent of the cardiac silhouette (``projected=False``: without AP magnification)."""
        _, _, ru, rv, angle = self.heart_ellipse
        if not projected:
            ru, rv = ru / self.ap_magnification, rv / self.ap_magnification
        return 2.0 * math.hypot(ru * math.cos(angle), rv * math.sin(angle))

    def thoracic_width(self) -> float:
        """Inner width of the thorax at the widest level of the lungs."""
        return self.lungs["right"].lateral + self.lungs["left"].lateral

    def cardiothoracic_ratio(self, projected: bool = True) -> float:
        """Heart width over thoracic width, as seen on the film or (``projected=False``) as on a PA film."""
        return self.heart_width(projected) / self.thoracic_width()

    def with_heart_scale(self, scale: float) -> Anatomy:
        return replace(self, heart_scale=scale)


def sample_anatomy(rng: np.random.Generator, view: str) -> Anatomy:
    """Draw a patient for a ``"PA"`` or ``"AP"`` frontal view; independent of any finding."""
    if view not in ("PA", "AP"):
        raise ValueError(f"view must be 'PA' or 'AP', got {view!r}")
    sex = "F" if rng.random() < 0.5 else "M"
    volume = str(rng.choice(["normal", "low", "high"], p=[0.7, 0.2, 0.1]))
    # Portable AP films are taken supine or semi-erect, with lower lung volumes.
    if view == "AP" and volume == "normal" and rng.random() < 0.3:
        volume = "low"
    dome = {"normal": 0.3, "low": 0.16, "high": 0.42}[volume] + rng.normal(0, 0.03)
    apex = rng.uniform(-0.8, -0.68)
    lateral = rng.uniform(0.72, 0.86)
    lungs = {}
    for side in SIDES:
        # The right hemidiaphragm usually sits higher than the left.
        peak = dome + (-0.03 if side == "right" else 0.02) + rng.normal(0, 0.015)
        lungs[side] = Lung(
            medial=rng.uniform(0.04, 0.08),
            lateral=lateral + rng.normal(0, 0.015),
            apex=apex + rng.normal(0, 0.015),
            widest=peak - rng.uniform(0.0, 0.1),
            dome_peak=peak,
            dome_u=rng.uniform(0.3, 0.42),
            angle_depth=peak + rng.uniform(0.14, 0.24) * (0.6 if volume == "high" else 1.0),
        )
    carina = rng.uniform(-0.36, -0.26)
    hila = {
        side: (
            side_sign(side) * rng.uniform(0.17, 0.23),
            carina + rng.uniform(0.1, 0.2) + (0.03 if side == "right" else 0),
        )
        for side in SIDES
    }
    anatomy = Anatomy(
        view=view,
        sex=sex,
        shift=(rng.normal(0, 0.035), rng.normal(0.0, 0.035)),
        zoom=rng.uniform(0.9, 1.04),
        angle=rng.normal(0, math.radians(2.0)),
        body_width=rng.uniform(0.95, 1.15),
        body_thickness=rng.uniform(0.8, 1.25),
        neck_width=rng.uniform(0.2, 0.28),
        shoulder_v=rng.uniform(-0.95, -0.85),
        arms=bool(rng.random() < 0.5),
        lungs=lungs,
        lung_volume=volume,
        heart_u=rng.uniform(0.05, 0.12),
        heart_radii=(rng.uniform(0.3, 0.36), rng.uniform(0.23, 0.27)),
        heart_angle=math.radians(rng.uniform(20, 38)),
        heart_scale=1.0,
        mediastinum_width=rng.uniform(0.1, 0.14) * (1.1 if view == "AP" else 1.0),
        knob=(rng.uniform(0.1, 0.15), carina - rng.uniform(0.04, 0.1), rng.uniform(0.055, 0.075)),
        carina_v=carina,
        spine_period=rng.uniform(0.085, 0.1),
        spine_phase=rng.uniform(0, 1),
        rib_start=apex + rng.uniform(-0.08, -0.02),
        rib_spacing=rng.uniform(0.105, 0.125) * (0.85 if volume == "low" else 1.0),
        rib_count=int(rng.integers(10, 12)),
        clavicle_v=apex + (rng.uniform(0.04, 0.12) if view == "AP" else rng.uniform(0.14, 0.24)),
        clavicle_tilt=rng.uniform(0.05, 0.12) if view == "AP" else rng.uniform(0.14, 0.24),
        bone_density=rng.uniform(0.75, 1.25),
        breasts=rng.uniform(0.05, 0.13) if sex == "F" else 0.0,
        gastric_bubble=rng.uniform(0.06, 0.16) if rng.random() < 0.6 else 0.0,
        vessel_trees=(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 16))),
        vessel_strength=rng.uniform(0.12, 0.2),
        mm_per_unit=rng.uniform(175.0, 205.0),
        aortic_calcification=bool(rng.random() < 0.2),
        hila=hila,
    )
    # A normal heart: cardiothoracic ratio at most 0.47 on a PA film.
    ratio = anatomy.cardiothoracic_ratio(projected=False)
    if ratio > 0.47:
        anatomy = replace(anatomy, heart_radii=tuple(r * 0.47 / ratio for r in anatomy.heart_radii))
    return anatomy


@dataclass
class Scene:
    """Attenuation layers of one frontal radiograph, float32 ``[S, S]`` each.

    The exposed attenuation is ``soft + bone - AIR * air * (1 - fill) + vessels * keep * (1 - fill) + extra``
    (:func:`.render.attenuation`). Findings edit ``fill`` (fraction of lung air replaced by fluid or
    tissue), ``keep`` (how much of the lung markings survives), ``extra`` (added attenuation: nodules,
    devices, pleural lines; negative for free air) and read the rest.

    Attributes:
        anatomy: the sampled patient.
        frame: pixel-to-patient coordinates.
        soft: soft tissue of body, heart, mediastinum and breasts, with the airways subtracted.
        bone: ribs, spine, clavicles, scapulae.
        air: lung air thickness (positive).
        vessels: lung markings.
        lung: per side, the lung field in ``[0, 1]`` (the aerated area seen on the film).
        hemithorax: per side, the lung field without the diaphragm cut (the pleural space that fluid fills).
        heart: uint8 cardiac silhouette.
        body: bool, the patient (outside is air).
        fill, keep, extra: the layers findings edit.
    """

    anatomy: Anatomy
    frame: Frame
    body: np.ndarray
    soft: np.ndarray
    bone: np.ndarray
    air: np.ndarray
    vessels: np.ndarray
    lung: dict[str, np.ndarray]
    hemithorax: dict[str, np.ndarray]
    heart: np.ndarray
    fill: np.ndarray
    keep: np.ndarray
    extra: np.ndarray

    @property
    def size(self) -> int:
        return self.frame.size


def _lung_layers(frame: Frame, lung: Lung, sign: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Air thickness, lung field and hemithorax of one lung (float32 ``[S, S]``), computed over its box."""
    size = frame.size
    air, field_, hemithorax = (np.zeros((size, size), np.float32) for _ in range(3))
    region = frame.box(*lung.bounds(sign))
    u, v = frame.u[region], frame.v[region]
    radius = lung.shell(u, v, sign)
    shell = np.sqrt(np.maximum(1.0 - radius * radius, 0.0))
    below = np.maximum(v - np.float32(lung.angle_depth + 0.25), 0) * np.float32(8.0)  # the pleural recess ends
    hemithorax[region] = np.clip(shell * 6.0 - below, 0.0, 1.0)
    above_dome = smooth_step((lung.dome(np.abs(u)) - v) * np.float32(frame.ppu), 2.0)
    above_dome *= u * np.float32(sign) > 0
    depth = 0.7 + 0.3 * np.clip((v - np.float32(lung.apex)) * np.float32(1.0 / (lung.widest - lung.apex)), 0.0, 1.0)
    air[region] = shell * above_dome * depth
    field_[region] = np.clip(shell * 6.0, 0.0, 1.0) * above_dome
    return air, field_, hemithorax


def _rib_profile(thickness: float, samples: int = 512) -> np.ndarray:
    """Projected density across one rib period (phase 0 to 1), float32 ``[samples]``.

    The rib fills the first ``thickness`` of the period; its thin cortex is brighter than the marrow
    (the projection of a hollow tube).
    """
    phase = (np.arange(samples, dtype=np.float32) + 0.5) / samples
    t = np.abs(phase * np.float32(2.0 / thickness) - 1.0)
    t = np.where(t < 1, t, 1.0)
    cortex = np.maximum(1.0 - ((t - 0.85) / 0.2) ** 2, 0.0)
    return (0.55 * np.sqrt(np.maximum(1 - t * t, 0)) + 0.45 * cortex * cortex).astype(np.float32)


_RIB_SAMPLES = 512
_RIBS = {"posterior": _rib_profile(0.42, _RIB_SAMPLES), "anterior": _rib_profile(0.36, _RIB_SAMPLES)}


def _ribs(frame: Frame, anatomy: Anatomy, region: np.ndarray) -> np.ndarray:
    """Posterior ribs (arcs from the spine curving down laterally) and fainter anterior ribs."""
    lateral_end = max(lung.lateral for lung in anatomy.lungs.values()) + 0.08
    bottom = anatomy.rib_start + (anatomy.rib_count + 2) * anatomy.rib_spacing + 0.5
    box = frame.box(-lateral_end - 0.1, lateral_end + 0.1, anatomy.rib_start - 0.1, bottom)
    u, v = frame.u[box], frame.v[box]
    s = np.abs(u) - np.float32(0.07)
    window = np.clip(s * 30.0, 0, 1) * np.clip((lateral_end - s) * 20.0, 0, 1) * region[box]
    bones = np.zeros_like(u)
    scale = np.float32(1.0 / anatomy.rib_spacing)
    for kind, contrast, curve, offset in (
        ("posterior", 1.0, s * (0.8 * s - 0.3), 0.0),
        ("anterior", 0.45, 0.42 * (lateral_end - s), 1.4),
    ):
        position = (v - curve) * scale - np.float32(anatomy.rib_start / anatomy.rib_spacing + offset)
        index = np.floor(position)
        phase = ((position - index) * np.float32(_RIB_SAMPLES)).astype(np.int32)
        rib = _RIBS[kind].take(np.minimum(phase, _RIB_SAMPLES - 1))
        rib *= (index >= 0) & (index < anatomy.rib_count)
        if kind == "anterior":
            rib *= np.clip((s - 0.25) * 10.0, 0, 1)
        bones += np.float32(contrast) * rib
    out = np.zeros((frame.size, frame.size), np.float32)
    out[box] = bones * window
    return out


def _spine(frame: Frame, anatomy: Anatomy) -> np.ndarray:
    """Vertebral bodies with disc spaces and pedicles along the midline."""
    region = frame.box(-0.1, 0.1, -1.6, 1.6)
    u, v = frame.u[region], frame.v[region]
    body = tube_profile(np.abs(u), 0.062)
    phase = (v * np.float32(1.0 / anatomy.spine_period) + np.float32(anatomy.spine_phase)) % 1.0
    disc = np.exp(-(((phase - 0.5) / 0.07) ** 2))
    pedicle = np.zeros_like(u)
    for offset in (-0.038, 0.038):
        r = np.sqrt(((u - offset) / 0.013) ** 2 + ((phase - 0.28) / 0.16) ** 2)
        pedicle += np.exp(-(((r - 1.0) / 0.35) ** 2))
    spine = np.zeros((frame.size, frame.size), np.float32)
    spine[region] = 0.9 * body * (1 - 0.45 * disc) + 0.25 * pedicle * (body > 0)
    return spine


def _clavicles(frame: Frame, anatomy: Anatomy) -> np.ndarray:
    """Two S-shaped clavicles from the sternal notch to the shoulders."""
    out = np.zeros((frame.size, frame.size), np.float32)
    region = frame.box(-0.85, 0.85, anatomy.clavicle_v - 0.3, anatomy.clavicle_v + 0.1)
    u, v = frame.u[region], frame.v[region]
    s = np.abs(u) - np.float32(0.07)
    centre = anatomy.clavicle_v - anatomy.clavicle_tilt * s + 0.04 * np.sin(np.pi * s / 0.62)
    along = np.clip(s * 25.0, 0, 1) * np.clip((0.7 - s) * 15.0, 0, 1)
    out[region] = tube_profile(np.abs(v - centre), 0.032) * along
    return out


def _scapulae(frame: Frame, anatomy: Anatomy) -> np.ndarray:
    """Scapulae: over the lateral upper lungs on AP films, mostly outside them on PA films."""
    out = np.zeros((frame.size, frame.size), np.float32)
    lateral = 0.72 if anatomy.view == "AP" else 0.95
    for sign in (-1.0, 1.0):
        cu, cv = sign * lateral, anatomy.lungs["right"].apex + 0.35
        region = frame.crop(cu, cv, 0.4)
        u, v = frame.u[region], frame.v[region]
        out[region] += 0.35 * ellipsoid(u, v, cu, cv, 0.17, 0.33, -sign * 0.3)
    return out


def _soft_tissue(frame: Frame, anatomy: Anatomy) -> np.ndarray:
    """Body (neck, shoulders, torso), arms and breasts."""
    u, v = frame.u, frame.v
    ramp = 0.5 * (1.0 + np.tanh((v - np.float32(anatomy.shoulder_v)) * np.float32(1.0 / 0.05)))
    half_width = anatomy.neck_width + (anatomy.body_width - anatomy.neck_width) * ramp
    q = u / half_width
    thickness = np.float32(anatomy.body_thickness) * (0.6 + 0.4 * np.clip((v + 0.9) * np.float32(1.0 / 0.9), 0, 1))
    body = np.sqrt(np.maximum(1.0 - q * q, 0.0)) * thickness
    if anatomy.arms:
        for sign in (-1.0, 1.0):
            cu = sign * (anatomy.body_width + 0.12)
            region = frame.crop(cu, 0.0, 0.9)
            body[region] += 0.45 * ellipsoid(frame.u[region], frame.v[region], cu, 0.0, 0.16, 0.85)
    if anatomy.breasts:
        for sign in (-1.0, 1.0):
            lung = anatomy.lungs["right" if sign < 0 else "left"]
            cu, cv = sign * 0.5 * lung.lateral, lung.dome_peak - 0.02
            region = frame.crop(cu, cv, 0.45)
            shape = ellipsoid(frame.u[region], frame.v[region], cu, cv, 0.42, 0.3)
            body[region] += np.float32(anatomy.breasts) * np.sqrt(shape)
    return body


def _mediastinum(frame: Frame, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Mediastinum, aortic knob, hila and heart; and the uint8 cardiac silhouette."""
    size = frame.size
    out = np.zeros((size, size), np.float32)
    floor = min(lung.dome_peak for lung in anatomy.lungs.values())
    region = frame.box(-0.3, 0.3, -1.6, floor + 0.05)
    u, v = frame.u[region], frame.v[region]
    width = anatomy.mediastinum_width * (1.0 + 0.25 * np.clip((v + 0.2) * 2.0, 0, 1))
    q = (u - np.float32(0.01)) / width
    out[region] = 0.55 * np.sqrt(np.maximum(1.0 - q * q, 0.0)) * (v < floor)
    # Descending aorta along the left of the spine.
    out[region] += 0.12 * tube_profile(np.abs(u - 0.085), 0.03) * ((v > anatomy.knob[1]) & (v < floor))
    cu, cv, r = anatomy.knob
    region = frame.crop(cu, cv, r)
    u, v = frame.u[region], frame.v[region]
    out[region] += 0.3 * ellipsoid(u, v, cu, cv, r, r * 0.9)
    if anatomy.aortic_calcification:  # a thin bright rim along the top of the knob
        rim = np.sqrt(((u - cu) / r) ** 2 + ((v - cv) / (r * 0.9)) ** 2)
        out[region] += 0.25 * np.exp(-(((rim - 0.85) / 0.06) ** 2)) * (v < cv) * (u > cu - 0.5 * r)
    for hu, hv in anatomy.hila.values():
        region = frame.crop(hu, hv, 0.12)
        out[region] += 0.14 * ellipsoid(frame.u[region], frame.v[region], hu, hv, 0.055, 0.1)
    cu, cv, ru, rv, angle = anatomy.heart_ellipse
    region = frame.crop(cu, cv, max(ru, rv))
    u, v = frame.u[region], frame.v[region]
    heart = ellipsoid(u, v, cu, cv, ru, rv, angle)
    # The heart rests on the diaphragm: below the domes it merges with the upper abdomen.
    dome = np.where(u < 0, anatomy.lungs["right"].dome(np.abs(u)), anatomy.lungs["left"].dome(np.abs(u)))
    heart *= smooth_step((dome + 0.02 - v) * np.float32(frame.ppu), 3.0)
    out[region] += 0.5 * np.sqrt(heart)
    silhouette = np.zeros((size, size), np.uint8)
    silhouette[region] = heart > 0.05
    return out, silhouette


def _airways(frame: Frame, anatomy: Anatomy) -> np.ndarray:
    """Trachea and main bronchi (air: subtracted from the soft tissue)."""
    out = np.zeros((frame.size, frame.size), np.float32)
    carina = anatomy.carina_v
    points = [(0.0, -1.3), (0.0, carina)]
    for side, (hu, hv) in anatomy.hila.items():
        points.append((0.0, carina))
        points.append((0.6 * hu, hv - 0.02 if side == "right" else hv + 0.02))
    pixels = np.array([frame.to_pixel(pu, pv) for pu, pv in points], np.float32)
    radius = np.array([0.032, 0.02, 0.02], np.float32) * frame.ppu
    draw_tubes(out, pixels[0::2], pixels[1::2], radius, np.ones(3, np.float32))
    return out


def _vessels(frame: Frame, anatomy: Anatomy, bank: FieldBank) -> np.ndarray:
    """Lung markings: a precomputed vessel tree placed at each hilum (mirrored for the left lung)."""
    size = frame.size
    trees = bank.vessels
    out = np.zeros((size, size), np.float32)
    for index, side in enumerate(SIDES):
        tree = trees[anatomy.vessel_trees[index] % len(trees)]
        if anatomy.vessel_trees[index] // len(trees) % 2:
            tree = tree[::-1]  # mirrored top-bottom: still a tree radiating from the hilum
        if side == "left":
            tree = tree[:, ::-1]
        row, col = frame.to_pixel(*anatomy.hila[side])
        top, left = size - round(row), size - round(col)
        # The tree is drawn for zoom 1 and rotation 0; small rotations and zooms do not matter for texture.
        window = tree[max(top, 0) : max(top, 0) + size, max(left, 0) : max(left, 0) + size]
        out[max(-top, 0) : max(-top, 0) + window.shape[0], max(-left, 0) : max(-left, 0) + window.shape[1]] += window[
            : size - max(-top, 0), : size - max(-left, 0)
        ]
    return out


def render_anatomy(anatomy: Anatomy, size: int, bank: FieldBank, rng: np.random.Generator) -> Scene:
    """Project a normal chest onto an ``size x size`` grid.

    Args:
        anatomy: the patient (:func:`sample_anatomy`), with the heart size findings may have set.
        size: image side ``S``.
        bank: the texture bank for ``size``.
        rng: draws the texture offsets.

    Returns:
        The :class:`Scene` with empty finding layers.
    """
    frame = Frame(size, anatomy.shift, anatomy.zoom, anatomy.angle)
    lung, hemithorax, air = {}, {}, np.zeros((size, size), np.float32)
    for side in SIDES:
        side_air, lung[side], hemithorax[side] = _lung_layers(frame, anatomy.lungs[side], side_sign(side))
        air += side_air
    lung_any = np.maximum(lung["right"], lung["left"])
    thorax = np.clip(np.maximum(hemithorax["right"], hemithorax["left"]) * 3.0, 0, 1)
    bone = (
        0.1 * _ribs(frame, anatomy, np.clip(thorax + 0.5 * (frame.v > 0), 0, 1))
        + 0.15 * _spine(frame, anatomy)
        + 0.3 * _clavicles(frame, anatomy)
        + 0.07 * _scapulae(frame, anatomy)
    ) * np.float32(anatomy.bone_density)
    mediastinum, heart = _mediastinum(frame, anatomy)
    soft = _soft_tissue(frame, anatomy)
    body = soft > 0
    soft += mediastinum - 0.25 * _airways(frame, anatomy)
    # Texture: soft-tissue variation over the whole body and fine parenchymal texture in the lungs.
    soft += 0.04 * bank.window("low", rng, (size, size)) * np.float32(anatomy.body_thickness) * body
    if anatomy.gastric_bubble:
        lung_left = anatomy.lungs["left"]
        cu, cv = 0.38, lung_left.dome_peak + 0.09
        region = frame.crop(cu, cv, 0.15)
        soft[region] -= np.float32(anatomy.gastric_bubble) * ellipsoid(
            frame.u[region], frame.v[region], cu, cv, 0.12, 0.065
        )
    markings = _vessels(frame, anatomy, bank) * np.float32(anatomy.vessel_strength)
    markings += 0.012 * bank.window("fine", rng, (size, size))
    vessels = markings * lung_any
    return Scene(
        anatomy=anatomy,
        frame=frame,
        body=body,
        soft=soft,
        bone=bone,
        air=air,
        vessels=vessels,
        lung=lung,
        hemithorax=hemithorax,
        heart=heart,
        fill=np.zeros((size, size), np.float32),
        keep=np.ones((size, size), np.float32),
        extra=np.zeros((size, size), np.float32),
    )
