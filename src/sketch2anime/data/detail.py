"""The Sketch2Anime "detail filter": simple, deliberately incomplete line drawings from colour images.

grayscale -> Gaussian blur -> Canny -> drop connected lines shorter than a minimum length ->
redraw the kept lines at a set width. Dropping the short fragments removes texture, shading
noise and JPEG speckle, so what is left looks like the few confident lines of a simple sketch.

Lengths and widths are given at a 256 px reference and scaled by ``min(H, W) / reference_size``,
so the same config gives comparable drawings at 64 px and at 512 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class DetailFilterConfig:
    """Parameters of the detail filter; pixel quantities are at ``reference_size``.

    blur_sigma: Gaussian blur before Canny (px). canny_low / canny_high: hysteresis thresholds on
    the blurred 8-bit grayscale. min_line_length: connected edge chains with fewer pixels than this
    are discarded (px; Canny chains are one pixel thin, so pixels ~ length). line_width: width of
    the redrawn lines (px; 1 = the raw one-pixel Canny line). connectivity: 4 or 8 for chains.
    min_blur_sigma: floor on the *scaled* blur in actual pixels, because JPEG noise and aliasing
    live at the pixel scale whatever the resolution (small images still need some blur).
    """

    blur_sigma: float = 1.2
    canny_low: float = 70.0
    canny_high: float = 160.0
    min_line_length: float = 24.0
    line_width: float = 2.0
    connectivity: int = 8
    min_blur_sigma: float = 1.0
    reference_size: int = 256

    def __post_init__(self) -> None:
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0, got {self.blur_sigma}")
        if not 0 <= self.canny_low <= self.canny_high:
            raise ValueError(f"need 0 <= canny_low <= canny_high, got {self.canny_low} and {self.canny_high}")
        if self.min_line_length < 0:
            raise ValueError(f"min_line_length must be >= 0, got {self.min_line_length}")
        if self.line_width <= 0:
            raise ValueError(f"line_width must be > 0, got {self.line_width}")
        if self.min_blur_sigma < 0:
            raise ValueError(f"min_blur_sigma must be >= 0, got {self.min_blur_sigma}")
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if self.reference_size < 1:
            raise ValueError(f"reference_size must be >= 1, got {self.reference_size}")


def check_image(rgb: Any, what: str = "image") -> np.ndarray:
    """Validate an extractor input: HxWx3 (or HxW grayscale) uint8; returns it as an array."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (HxWx3 uint8), got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (0-255), got dtype {rgb.dtype}")
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[-1] == 3)):
        raise ValueError(f"{what} must be HxWx3 RGB (or HxW gray), got shape {rgb.shape}")
    if min(rgb.shape[:2]) < 2:
        raise ValueError(f"{what} is too small: {rgb.shape[0]}x{rgb.shape[1]}")
    return rgb


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB uint8 (or HxW) -> HxW uint8 luminance."""
    return rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with an explicit kernel of +-3 sigma (OpenCV's automatic size is too short for small sigma)."""
    if sigma < 1e-3:
        return image
    radius = max(1, math.ceil(3.0 * sigma))
    return cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)


def redraw_width(ink: np.ndarray, width: float) -> np.ndarray:
    """Thicken a bool ink mask to about ``width`` px (round brush); width <= 1.5 leaves it as is."""
    size = int(round(width))
    if size <= 1:
        return ink
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(ink.astype(np.uint8), kernel).astype(bool)


class DetailFilter:
    """Colour image -> simple line drawing. ``__call__(rgb)``: HxWx3 uint8 -> HxW uint8 (255 paper, 0 ink)."""

    name = "detail"

    def __init__(self, config: DetailFilterConfig) -> None:
        self.config = config

    def edges(self, rgb: np.ndarray) -> np.ndarray:
        """Bool HxW mask of the kept (long enough) one-pixel Canny lines, before redrawing."""
        c = self.config
        gray = to_gray(check_image(rgb))
        scale = min(gray.shape) / c.reference_size
        blurred = gaussian(gray, max(c.blur_sigma * scale, c.min_blur_sigma))
        edges = cv2.Canny(blurred, c.canny_low, c.canny_high, L2gradient=True) > 0
        min_len = c.min_line_length * scale
        if min_len <= 1 or not edges.any():
            return edges
        count, labels, stats, _ = cv2.connectedComponentsWithStats(edges.astype(np.uint8), connectivity=c.connectivity)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_len
        keep[0] = False  # label 0 is the background
        return keep[labels]

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """HxWx3 uint8 RGB -> HxW uint8 sketch, same size. ``rng`` is unused (the filter is deterministic)."""
        ink = self.edges(rgb)
        scale = min(ink.shape) / self.config.reference_size
        ink = redraw_width(ink, self.config.line_width * scale)
        return np.where(ink, 0, 255).astype(np.uint8)

    def extract_batch(self, images: list[np.ndarray], rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """Apply to each HxWx3 image of a list; returns a list of HxW uint8 sketches."""
        return [self(image, rng) for image in images]
