"""The patient frame of a rendered radiograph and the shape primitives drawn in it.

Anatomy is described in a normalised *patient frame* ``(u, v)``: ``u`` runs from the image's left to its
right (the patient's right to left on a frontal film, as radiographs are displayed), ``v`` from top to
bottom, and one unit is half the image side at zoom 1. A :class:`Frame` maps it onto the pixel grid
with a small rotation, shift and zoom, so the whole chest moves together and every mask is drawn in
image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Frame", "ellipsoid", "tube_profile"]


@dataclass
class Frame:
    """Patient-frame coordinates of every pixel of an ``S x S`` image.

    Args:
        size: image side ``S`` in pixels.
        shift: ``(du, dv)`` translation of the patient in frame units.
        zoom: magnification (pixels per frame unit are ``zoom * S / 2``).
        angle: in-plane rotation of the patient, radians (positive: clockwise on the image).

    Attributes:
        u, v: float32 ``[S, S]`` patient coordinates of each pixel.
        ppu: pixels per frame unit.
    """

    size: int
    shift: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    angle: float = 0.0
    u: np.ndarray = field(init=False, repr=False)
    v: np.ndarray = field(init=False, repr=False)
    ppu: float = field(init=False)

    def __post_init__(self) -> None:
        self.ppu = self.zoom * self.size / 2.0
        centre = (self.size - 1) / 2.0
        axis = (np.arange(self.size, dtype=np.float32) - centre) / np.float32(self.ppu)
        cos, sin = np.float32(math.cos(self.angle)), np.float32(math.sin(self.angle))
        x, y = axis[None, :], axis[:, None]
        self.u = (cos * x + sin * y - np.float32(self.shift[0])).astype(np.float32)
        self.v = (-sin * x + cos * y - np.float32(self.shift[1])).astype(np.float32)

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        """``(row, column)`` of the patient point ``(u, v)``."""
        uu, vv = u + self.shift[0], v + self.shift[1]
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        x, y = cos * uu - sin * vv, sin * uu + cos * vv
        centre = (self.size - 1) / 2.0
        return centre + y * self.ppu, centre + x * self.ppu

    def crop(self, u: float, v: float, radius: float) -> tuple[slice, slice]:
        """Pixel slices of the square around patient point ``(u, v)`` with half-side ``radius`` (frame units).

        The slices may be empty when the square lies outside the image.
        """
        row, col = self.to_pixel(u, v)
        reach = radius * self.ppu + 2.0
        clamp = lambda value: min(max(int(value), 0), self.size)  # noqa: E731
        return slice(clamp(row - reach), clamp(row + reach + 1)), slice(clamp(col - reach), clamp(col + reach + 1))

    def box(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Pixel slices covering the patient-frame rectangle ``[u0, u1] x [v0, v1]`` (may be empty)."""
        corners = [self.to_pixel(u, v) for u in (u0, u1) for v in (v0, v1)]
        rows, cols = [c[0] for c in corners], [c[1] for c in corners]
        clamp = lambda value: min(max(int(value), 0), self.size)  # noqa: E731
        return slice(clamp(min(rows) - 2), clamp(max(rows) + 3)), slice(clamp(min(cols) - 2), clamp(max(cols) + 3))


def ellipsoid(
    u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float, angle: float = 0.0
) -> np.ndarray:
    """Projected thickness of an ellipsoid, ``sqrt(1 - q)`` inside the ellipse and 0 outside.

    Args:
        u, v: patient coordinates (any shape).
        cu, cv: centre; ru, rv: semi-axes before rotation; angle: rotation of the axes, radians.

    Returns:
        float32 array like ``u`` in ``[0, 1]``.
    """
    du, dv = u - np.float32(cu), v - np.float32(cv)
    if angle:
        cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        du, dv = cos * du + sin * dv, -sin * du + cos * dv
    q = (du * np.float32(1.0 / ru)) ** 2 + (dv * np.float32(1.0 / rv)) ** 2
    return np.sqrt(np.maximum(np.float32(1.0) - q, np.float32(0.0)))


def tube_profile(distance: np.ndarray, radius: float) -> np.ndarray:
    """Projected thickness of a cylinder of ``radius`` at ``distance`` from its axis (same units), float32."""
    q = distance * np.float32(1.0 / radius)
    return np.sqrt(np.maximum(np.float32(1.0) - q * q, np.float32(0.0)))
