"""From attenuation to a displayed radiograph: exposure, contrast, detector noise and the lead marker.

Every parameter here is drawn from the study's exposure generator, never from its findings, and the
mapping is the same function for every pixel: a finding changes only the pixels it covers. Exposure,
contrast and gamma vary enough that an image's global intensity statistics say more about the film
than about any lesion on it.

Edge enhancement (an unsharp mask over about S/16 pixels, as computed-radiography processing applies)
spreads a finding's contrast into a faint local halo; nothing else reaches beyond the finding.

The output is float32 ``[S, S]`` in ``[0, 1]`` (bright = dense). Air outside the body is exactly 0 and
the marker exactly 1, so the image spans the full range and a windowed DICOM reads back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monai_mlip.synthetic.fields import FieldBank, binomial_blur, upsample

__all__ = ["Exposure", "draw_text", "expose", "sample_exposure"]

_LUT_SIZE = 8192

# 5 x 7 bitmaps of the letters lead markers use.
_FONT = {
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "B": ("11110", "10001", "10001", "11110", "10001", "10001", "11110"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "G": ("01110", "10001", "10000", "10111", "10001", "10001", "01111"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "M": ("10001", "11011", "10101", "10101", "10001", "10001", "10001"),
    "N": ("10001", "11001", "10101", "10011", "10001", "10001", "10001"),
    "O": ("01110", "10001", "10001", "10001", "10001", "10001", "01110"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "U": ("10001", "10001", "10001", "10001", "10001", "10001", "01110"),
    " ": ("00000",) * 7,
}


@dataclass(frozen=True)
class Exposure:
    """Acquisition and display parameters of one film.

    Attributes:
        penetration: ``k`` in ``1 - exp(-k * attenuation)`` (higher: brighter, less penetrated film).
        gain: overall contrast scale.
        gamma: display gamma.
        heel: ``(amplitude, direction)`` of the anode-heel brightness gradient.
        mottle: amplitude of low-frequency detector non-uniformity.
        noise: quantum noise level.
        sharpen: edge-enhancement (unsharp mask) amount.
        blur: whether the detector blur is applied.
        marker: the lead marker's text, and whether it sits at the image's right.
        portable_text: an extra "PORTABLE"-style label (AP films), or "".
    """

    penetration: float
    gain: float
    gamma: float
    heel: tuple[float, float]
    mottle: float
    noise: float
    sharpen: float
    blur: bool
    marker: str
    marker_right: bool
    portable_text: str


def sample_exposure(rng: np.random.Generator, view: str) -> Exposure:
    """Draw film parameters for a ``"PA"`` or ``"AP"`` view (independent of any finding)."""
    marker_right = bool(rng.random() < 0.6)
    portable = ""
    if view == "AP" and rng.random() < 0.6:
        portable = str(rng.choice(["PORTABLE", "UPRIGHT", "SUPINE", "SEMI UPRIGHT"]))
    return Exposure(
        penetration=float(rng.uniform(1.0, 2.0)),
        gain=float(rng.uniform(0.85, 1.1)),
        gamma=float(np.exp(rng.uniform(np.log(0.8), np.log(1.6)))),
        heel=(float(rng.uniform(0.0, 0.1)), float(rng.uniform(0, 2 * np.pi))),
        mottle=float(rng.uniform(0.0, 0.05)),
        noise=float(rng.uniform(0.006, 0.03)),
        sharpen=float(rng.uniform(0.0, 0.8)),
        blur=bool(rng.random() < 0.5),
        marker="L" if marker_right else "R",
        marker_right=marker_right,
        portable_text=portable,
    )


def draw_text(image: np.ndarray, text: str, row: int, col: int, scale: int, value: float = 1.0) -> None:
    """Stamp ``text`` in the 5 x 7 marker font into ``image`` in place, top-left corner at ``(row, col)``."""
    glyphs = [np.array([[c == "1" for c in line] for line in _FONT[ch]], bool) for ch in text.upper()]
    bitmap = np.concatenate([np.pad(g, ((0, 0), (0, 1))) for g in glyphs], axis=1)
    bitmap = np.kron(bitmap, np.ones((scale, scale), bool))
    height, width = image.shape
    bitmap = bitmap[: max(height - row, 0), : max(width - col, 0)]
    image[row : row + bitmap.shape[0], col : col + bitmap.shape[1]][bitmap] = value


def expose(attenuation: np.ndarray, exposure: Exposure, bank: FieldBank, rng: np.random.Generator) -> np.ndarray:
    """Turn attenuation into a displayed film.

    Args:
        attenuation: float32 ``[S, S]``, 0 outside the body.
        exposure: film parameters.
        bank: texture bank of the image size (noise and mottle are windows of it).
        rng: draws the texture offsets.

    Returns:
        float32 ``[S, S]`` in ``[0, 1]``.
    """
    size = attenuation.shape[0]
    # The film curve gain * (1 - exp(-k * a)) ** gamma, through a fine lookup table.
    top = max(float(attenuation.max()), 1e-3)
    levels = np.linspace(0.0, top, _LUT_SIZE, dtype=np.float64)
    curve = (exposure.gain * (1.0 - np.exp(-exposure.penetration * levels)) ** exposure.gamma).astype(np.float32)
    index = (attenuation * np.float32((_LUT_SIZE - 1) / top) + np.float32(0.5)).astype(np.int32)
    image = curve.take(index)
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    amplitude, direction = exposure.heel
    gradient = np.float32(np.cos(direction)) * axis[None, :] + np.float32(np.sin(direction)) * axis[:, None]
    image *= (
        1.0 + np.float32(amplitude) * gradient + np.float32(exposure.mottle) * bank.window("low", rng, (size, size))
    )
    if exposure.sharpen and size >= 64:
        factor = 8
        coarse_shape = (size // factor, size // factor)
        cropped = image[: coarse_shape[0] * factor, : coarse_shape[1] * factor]
        coarse = cropped.reshape(coarse_shape[0], factor, coarse_shape[1], factor).mean(axis=(1, 3))
        background = upsample(binomial_blur(coarse), factor, (size, size))
        image = image + np.float32(exposure.sharpen) * (image - background) * (attenuation > 0)
    noise = bank.window("grain", rng, (size, size))
    image = image + np.float32(exposure.noise) * np.sqrt(np.maximum(image, 0.0)) * noise
    if exposure.blur:
        image = binomial_blur(image)
    image = np.clip(image, 0.0, 1.0) * (attenuation > 0)
    scale = max(size // 160, 1)
    margin = max(size // 40, 1)
    text_width = 6 * scale * len(exposure.marker)
    col = size - margin - text_width if exposure.marker_right else margin
    draw_text(image, exposure.marker, margin, col, scale)
    if exposure.portable_text and size >= 256:
        small = max(size // 256, 1)
        width = 6 * small * len(exposure.portable_text)
        col = margin if exposure.marker_right else max(size - margin - width, 0)
        draw_text(image, exposure.portable_text, margin, col, small)
    return image.astype(np.float32)
