"""A line style used only for evaluation: grey-level colour-gradient lines.

The models train on the ``detail`` (Canny), ``xdog`` and ``hed`` extractors. A model that only
works on those styles would look fine under the usual protocol and fail on a user's pen or another
extractor, so ``sketch2anime evaluate`` also scores every model on sketches from this extractor.
It is deliberately unlike the training ones:

* it works on colour, not luminance: the line strength is the largest **morphological gradient**
  (dilation minus erosion with a small disk) over the R, G and B channels, so a boundary between
  two colours of equal brightness still gets a line;
* lines are **grey-level** (anti-aliased, darker where the colour step is larger) and as thick as
  the structuring element, where ``detail`` draws binary 1-2 px lines and XDoG soft shading.

It is deterministic (no random draws) and deliberately **not** registered in
``data.extractors.EXTRACTORS``, so ``sketch2anime prepare`` cannot use it for training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HELDOUT_STYLE = "gradient-lines"


@dataclass(frozen=True)
class GradientLinesConfig:
    """blur_sigma: Gaussian blur before the gradient, in pixels at ``reference_size`` (scaled with
    the image). radius: disk radius of the gradient at ``reference_size`` (at least 1 px).
    low / high: gradient (0-255) mapped to paper / full ink, linear in between. min_area: ink specks
    smaller than this many pixels at ``reference_size`` are dropped (scaled by area)."""

    blur_sigma: float = 1.0
    radius: float = 1.5
    low: float = 28.0
    high: float = 110.0
    min_area: float = 24.0
    reference_size: int = 256

    def __post_init__(self) -> None:
        if self.blur_sigma < 0 or self.radius <= 0 or self.min_area < 0:
            raise ValueError("gradient-lines: blur_sigma and min_area must be >= 0 and radius > 0")
        if not 0 <= self.low < self.high <= 255:
            raise ValueError(f"gradient-lines: need 0 <= low < high <= 255, got low={self.low}, high={self.high}")
        if self.reference_size < 16:
            raise ValueError(f"gradient-lines: reference_size must be >= 16, got {self.reference_size}")


class GradientLines:
    """Colour image (H, W, 3) uint8 -> sketch (H, W) uint8, 255 paper / 0 ink."""

    name = HELDOUT_STYLE

    def __init__(self, config: GradientLinesConfig = GradientLinesConfig()) -> None:
        self.config = config

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"gradient-lines expects an HxWx3 uint8 image, got {rgb.shape} {rgb.dtype}")
        c = self.config
        scale = min(rgb.shape[:2]) / c.reference_size
        image = rgb.astype(np.float32)
        sigma = c.blur_sigma * scale
        if sigma >= 0.3:  # below that the blur does nothing but cost time
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        r = max(1, int(round(c.radius * scale)))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        gradient = cv2.morphologyEx(image, cv2.MORPH_GRADIENT, disk).max(axis=2)
        ink = np.clip((gradient - c.low) / (c.high - c.low), 0.0, 1.0)
        min_area = c.min_area * scale * scale
        if min_area >= 1:
            count, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
            small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
            small = small[small != 0]  # label 0 is the paper
            if small.size:
                ink[np.isin(labels, small)] = 0.0
        return np.round(255.0 * (1.0 - ink)).astype(np.uint8)

    def extract_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [self(image) for image in images]
