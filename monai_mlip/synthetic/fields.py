"""Precomputed random fields that the renderer crops instead of generating per image.

Filtering white noise is the slowest step of procedural texture, so every process builds, once per
image size, a small bank of periodic textures (Gaussian-filtered white noise, made with the FFT) from
a fixed seed, and each image takes windows of them at offsets drawn from its own generator. Taking a
window is a view, so textures cost nothing per image. The bank depends only on the image size, so
output stays byte-identical whatever the number of worker processes.

Also here: vessel-tree patterns (radial branching texture around a hilum) and the cheap separable
filters the renderer uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["FieldBank", "binomial_blur", "draw_tubes", "field_bank", "smooth_step", "upsample"]

# Fixed entropy of the texture bank: changing it changes every rendered image.
_BANK_SEED = 0x6D6C6970


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Periodic white noise filtered by a Gaussian of ``sigma`` (rows, columns) pixels, unit std, float32 ``shape``."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2.0 * np.pi**2 * ((fy * sigma[0]) ** 2 + (fx * sigma[1]) ** 2))
    field = np.fft.irfft2(np.fft.rfft2(white) * gain, s=shape)
    field -= field.mean()
    field /= field.std() + 1e-12
    return field.astype(np.float32)


@dataclass(frozen=True)
class FieldBank:
    """Periodic textures of side ``period`` (at least twice the image size) for one image size.

    Attributes:
        size: the image side ``S`` the bank is built for.
        period: side ``T`` of the square textures.
        low: float32 ``[T, T]``, correlation length ``S/12`` (lesion shapes, soft-tissue and exposure variation).
        mid: float32 ``[T, T]``, correlation length ``S/45`` (patchy opacity, parenchyma).
        fine: float32 ``[T, T]``, correlation length ``S/160`` (lung texture, detector structure).
        grain: float32 ``[T, T]``, correlation length ~0.6 px (quantum noise).
        vessels: float32 ``[V, 2S, 2S]``, right-lung vessel trees with the hilum at ``(S, S)``, values in ``[0, 1]``.
    """

    size: int
    period: int
    low: np.ndarray
    mid: np.ndarray
    fine: np.ndarray
    grain: np.ndarray
    vessels: np.ndarray

    def window(self, name: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """A view of texture ``name`` of ``shape`` (at most ``[T/2, T/2]``) at a random offset."""
        texture = getattr(self, name)
        oy = int(rng.integers(0, self.period - shape[0] + 1))
        ox = int(rng.integers(0, self.period - shape[1] + 1))
        return texture[oy : oy + shape[0], ox : ox + shape[1]]


def draw_tubes(
    canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, radius: np.ndarray, value: np.ndarray, soft: float = 0.7
) -> None:
    """Draw straight tubes (capsules) into ``canvas`` in place, keeping the maximum where they overlap.

    Each tube's profile is its projected thickness, ``value * sqrt(1 - (d / r)^2)`` at distance ``d`` from
    its axis, with an edge softened over ``soft`` pixels.

    Args:
        canvas: float32 ``[H, W]``.
        p0, p1: ``[N, 2]`` end points ``(row, column)`` in pixels.
        radius: ``[N]`` radii in pixels.
        value: ``[N]`` peak values.
        soft: edge width in pixels.
    """
    height, width = canvas.shape
    for (y0, x0), (y1, x1), r, peak in zip(p0, p1, radius, value, strict=True):
        reach = r + soft + 1
        top, bottom = max(int(min(y0, y1) - reach), 0), min(int(max(y0, y1) + reach) + 1, height)
        left, right = max(int(min(x0, x1) - reach), 0), min(int(max(x0, x1) + reach) + 1, width)
        if top >= bottom or left >= right:
            continue
        yy = np.arange(top, bottom, dtype=np.float32)[:, None] - y0
        xx = np.arange(left, right, dtype=np.float32)[None, :] - x0
        dy, dx = y1 - y0, x1 - x0
        length2 = dy * dy + dx * dx
        t = np.clip((yy * dy + xx * dx) / length2, 0.0, 1.0) if length2 > 0 else np.zeros_like(yy * xx)
        dist = np.sqrt((yy - t * dy) ** 2 + (xx - t * dx) ** 2)
        q = np.clip(dist / (r + 0.5 * soft), 0.0, 1.0)
        profile = peak * np.sqrt(1.0 - q * q)
        region = canvas[top:bottom, left:right]
        np.maximum(region, profile.astype(np.float32), out=region)


def _vessel_tree(rng: np.random.Generator, size: int) -> np.ndarray:
    """One pulmonary vessel tree, float32 ``[2S, 2S]``, hilum at ``(S, S)``, values in ``[0, 1]``.

    Trunks leave the hilum laterally, upwards and downwards (the right lung's tree: lateral is towards
    column 0; flip it for the left lung) and split into two narrower, shorter branches per generation
    until they are thinner than a pixel, so vessels taper towards the lung periphery.
    """
    side = 2 * size
    canvas = np.zeros((side, side), np.float32)
    starts, ends, radii = [], [], []
    stack = []
    for _ in range(int(rng.integers(7, 10))):
        angle = rng.uniform(np.pi * 0.35, np.pi * 1.45)  # 0 = towards column +inf (medial), pi = lateral
        stack.append((size + rng.normal(0, 0.01) * size, size + rng.normal(0, 0.01) * size, angle, 0.009 * size, 0))
    while stack:
        y, x, angle, radius, depth = stack.pop()
        if radius < 0.35 or depth > 7:
            continue
        length = size * 0.11 * 0.78**depth * rng.uniform(0.7, 1.3)
        # Two sub-segments with a slight bend.
        for _ in range(2):
            angle += rng.normal(0, 0.12)
            ny, nx = y - np.sin(angle) * length / 2, x + np.cos(angle) * length / 2
            starts.append((y, x))
            ends.append((ny, nx))
            radii.append(radius)
            y, x = ny, nx
        spread = rng.uniform(0.25, 0.6)
        share = rng.uniform(0.35, 0.65)
        stack.append((y, x, angle + spread * share, radius * rng.uniform(0.68, 0.8), depth + 1))
        stack.append((y, x, angle - spread * (1 - share), radius * rng.uniform(0.68, 0.8), depth + 1))
    radius = np.asarray(radii, np.float32)
    draw_tubes(canvas, np.asarray(starts), np.asarray(ends), radius, radius / radius.max())
    return canvas


@lru_cache(maxsize=4)
def field_bank(size: int, n_vessel_trees: int = 4) -> FieldBank:
    """The texture bank for images of side ``size`` (built once per process and size, from a fixed seed)."""
    rng = np.random.default_rng([_BANK_SEED, size])
    period = 2 * size
    shape = (period, period)
    return FieldBank(
        size=size,
        period=period,
        low=_gaussian_noise(rng, shape, (size / 12.0, size / 12.0)),
        mid=_gaussian_noise(rng, shape, (size / 45.0, size / 45.0)),
        fine=_gaussian_noise(rng, shape, (max(size / 160.0, 0.8),) * 2),
        grain=_gaussian_noise(rng, shape, (0.6, 0.6)),
        vessels=np.stack([_vessel_tree(rng, size) for _ in range(n_vessel_trees)]),
    )


def smooth_step(x: np.ndarray, width: float) -> np.ndarray:
    """Linear ramp from 0 (``x <= -width/2``) to 1 (``x >= width/2``), float32 like ``x``."""
    return np.clip(x * (1.0 / width) + 0.5, 0.0, 1.0)


def binomial_blur(image: np.ndarray) -> np.ndarray:
    """Separable ``[1, 2, 1] / 4`` blur (sigma ~0.7 px), edges replicated; float32 ``[H, W]``."""
    padded = np.pad(image, 1, mode="edge")
    rows = 0.25 * (padded[:-2] + padded[2:]) + 0.5 * padded[1:-1]
    return 0.25 * (rows[:, :-2] + rows[:, 2:]) + 0.5 * rows[:, 1:-1]


def upsample(image: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a coarse ``[h, w]`` image by ``factor`` onto ``shape`` (cell-centred), float32."""

    def axis_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = (np.arange(n_out, dtype=np.float32) + 0.5) / factor - 0.5
        position = np.clip(position, 0, n_in - 1)
        low = np.minimum(position.astype(np.int64), n_in - 2) if n_in > 1 else np.zeros(n_out, np.int64)
        frac = (position - low).astype(np.float32) if n_in > 1 else np.zeros(n_out, np.float32)
        return low, np.minimum(low + 1, n_in - 1), frac

    y0, y1, fy = axis_weights(shape[0], image.shape[0])
    x0, x1, fx = axis_weights(shape[1], image.shape[1])
    rows = image[y0] * (1 - fy)[:, None] + image[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]
