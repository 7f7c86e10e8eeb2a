"""Colour hints for training: simulated round-brush strokes.

The hint format itself (``(4, h, w)`` at ``h = H // downscale``: RGB in [-1, 1], 0 where no hint,
the mask in channel 3; user RGBA layers -> tensors) lives in ``hint_format.py``.

Simulation (``simulate_hints``): a few strokes of a round brush (random radius, a short random
polyline each) are placed anywhere on the image, including the background: the original design
sampled the centre only, so background colours were never learnt. ``background_share`` of the
strokes start in a band along the border so backgrounds get hints even on centred subjects.
Colour is taken *per pixel* from the image downscaled to the hint resolution (area averaging), so
the hint colours equal the image colours under the mask exactly; a stroke that crosses from hair
to skin carries both colours, which is what the generator should copy anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The hint format (layout, RGBA <-> tensor) lives in hint_format.py; these names stay importable here.
from ..hint_format import (  # noqa: F401
    DEFAULT_DOWNSCALE,
    NO_HINT_WHITE,
    empty_hint,
    hint_layer,
    hint_size,
    hint_to_tensor,
    rgba_to_hint,
)


@dataclass(frozen=True)
class HintConfig:
    """Hint simulation. Ranges are ``(low, high)``; radii in hint pixels, lengths in hint-image sides.

    stroke_count: strokes per sample (inclusive). max_coverage: stop adding strokes once this share
    of the hint pixels is covered (the density limit). background_share: share of strokes starting
    within ``border_width`` (fraction of the side) of the image border. empty_probability: share of
    samples with no hint at all (the model must also work without hints).
    """

    downscale: int = DEFAULT_DOWNSCALE
    stroke_count: tuple[int, int] = (1, 12)
    brush_radius: tuple[float, float] = (0.5, 2.0)
    stroke_length: tuple[float, float] = (0.0, 0.3)
    max_coverage: float = 0.3
    background_share: float = 0.25
    border_width: float = 0.15
    empty_probability: float = 0.1

    def __post_init__(self) -> None:
        if self.downscale < 1:
            raise ValueError(f"downscale must be >= 1, got {self.downscale}")
        for name, low_bound in (("stroke_count", 0), ("brush_radius", 0.0), ("stroke_length", 0.0)):
            pair = getattr(self, name)
            if len(pair) != 2 or not low_bound <= pair[0] <= pair[1]:
                raise ValueError(f"{name} must be a range (low, high) with {low_bound} <= low <= high, got {pair}")
        for name in ("max_coverage", "background_share", "empty_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.border_width <= 0.5:
            raise ValueError(f"border_width must lie in (0, 0.5], got {self.border_width}")


def _stroke_points(h: int, w: int, config: HintConfig, rng: np.random.Generator) -> np.ndarray:
    """(P, 2) polyline (x, y) in hint pixel coordinates (pixel centres at i + 0.5)."""
    if rng.random() < config.background_share:
        band_y, band_x = max(1.0, config.border_width * h), max(1.0, config.border_width * w)
        side = int(rng.integers(4))
        if side < 2:  # top or bottom band
            x = rng.uniform(0, w)
            y = rng.uniform(0, band_y) if side == 0 else h - rng.uniform(0, band_y)
        else:  # left or right band
            y = rng.uniform(0, h)
            x = rng.uniform(0, band_x) if side == 2 else w - rng.uniform(0, band_x)
    else:
        x, y = rng.uniform(0, w), rng.uniform(0, h)
    length = rng.uniform(*config.stroke_length) * max(h, w)
    segments = int(rng.integers(1, 4))
    angle = rng.uniform(0, 2 * np.pi)
    points = [(x, y)]
    for _ in range(segments):
        angle += rng.normal(0.0, 0.7)  # a slightly curving hand movement
        x = float(np.clip(x + np.cos(angle) * length / segments, 0, w))
        y = float(np.clip(y + np.sin(angle) * length / segments, 0, h))
        points.append((x, y))
    return np.asarray(points, dtype=np.float64)


def _brush_mask(points: np.ndarray, radius: float, h: int, w: int) -> np.ndarray:
    """Bool (h, w): pixels whose centre is within ``radius`` of the polyline, plus the start pixel."""
    mask = np.zeros((h, w), dtype=bool)
    # Only the stroke's bounding box needs distances.
    x_lo = max(0, int(np.floor(points[:, 0].min() - radius)))
    x_hi = min(w, int(np.ceil(points[:, 0].max() + radius)) + 1)
    y_lo = max(0, int(np.floor(points[:, 1].min() - radius)))
    y_hi = min(h, int(np.ceil(points[:, 1].max() + radius)) + 1)
    gx = (np.arange(x_lo, x_hi) + 0.5)[None, :]
    gy = (np.arange(y_lo, y_hi) + 0.5)[:, None]
    dist2 = np.full((y_hi - y_lo, x_hi - x_lo), np.inf)
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        vx, vy = x1 - x0, y1 - y0
        norm2 = vx * vx + vy * vy
        t = 0.0 if norm2 < 1e-12 else np.clip(((gx - x0) * vx + (gy - y0) * vy) / norm2, 0.0, 1.0)
        dist2 = np.minimum(dist2, (gx - x0 - t * vx) ** 2 + (gy - y0 - t * vy) ** 2)
    mask[y_lo:y_hi, x_lo:x_hi] = dist2 <= radius * radius
    sx, sy = int(min(points[0, 0], w - 1e-6)), int(min(points[0, 1], h - 1e-6))
    mask[sy, sx] = True
    return mask


def simulate_hints(rgb: np.ndarray, config: HintConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random brush hints for an HxWx3 uint8 image -> (hint_rgb (h, w, 3) uint8, mask (h, w) bool).

    ``h = H // downscale``; ``hint_rgb`` is the area-downscaled image under the mask and 0 elsewhere.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"hint simulation needs an HxWx3 uint8 image, got {got}")
    h, w = rgb.shape[0] // config.downscale, rgb.shape[1] // config.downscale
    if h < 1 or w < 1:
        raise ValueError(f"image {rgb.shape[0]}x{rgb.shape[1]} is smaller than the hint downscale {config.downscale}")
    mask = np.zeros((h, w), dtype=bool)
    if rng.random() < config.empty_probability:
        return np.zeros((h, w, 3), dtype=np.uint8), mask
    small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    low, high = config.stroke_count
    for _ in range(int(rng.integers(low, high + 1))):
        radius = rng.uniform(*config.brush_radius)
        mask |= _brush_mask(_stroke_points(h, w, config, rng), radius, h, w)
        if mask.mean() >= config.max_coverage:
            break
    hint = np.where(mask[..., None], small, 0).astype(np.uint8)
    return hint, mask
