"""Quality filters for video frames (``sketch2anime frames``): what is not worth training on.

Every check works on one decoded frame (``HxWx3 uint8`` RGB) except the fade test, which compares
thumbnails a quarter second apart. A frame is judged in this order, and the first failing check
is the reason it is dropped:

1. ``black``: the 99th percentile of the luma is below ``black_level`` (black frames, the dark end
   of a fade; a night scene still has bright pixels);
2. ``text``: mostly text (credits, title cards): one background colour covers most of the frame,
   and what differs from it is many small glyph-sized blobs rather than a few large shapes;
3. letterbox bars (rows/columns at the edges that are uniformly near black) are cropped away, and
   everything below looks at the cropped picture only (``too_small`` if little is left, ``fade``
   when the frame is part of a fade, see ``FadeDetector``);
4. ``flat``: almost no structure (luma standard deviation below ``flat_std``: a solid colour, a
   fade to white);
5. ``blurred``: the sharpness score (``sharpness``) is below ``min_sharpness``, measured at most
   360 px high. It falls like 1/w² for edges blurred to width w, whatever the number of edges or
   their contrast, which suits anime, where a frame can be mostly flat colour; and it takes the
   worse of the x and y directions, so motion blur counts. Sharp sprite frames score 0.5-1.2, a
   Gaussian blur of sigma 1 px gives 0.10-0.16, a 25 px horizontal motion blur 0.12-0.17.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

_ANALYSIS_HEIGHT = 360  # sharpness and text are measured at most this high (resolution-independent)
THUMB_SIZE = (64, 36)  # width, height of the per-frame thumbnails (cuts, fades)


@dataclass(frozen=True)
class FrameFilterConfig:
    """Thresholds of the frame filters (see the module docstring for what each means).

    letterbox_level: bar rows/columns have a 99th-percentile luma at most this; max_letterbox:
    the largest fraction of the height (or width) cropped from each side. fade_step: a frame whose
    brightness changed by more than this fraction within a quarter second, with the picture
    otherwise the same, is part of a fade. text: detect mostly-text frames. min_side: frames whose cropped
    picture is smaller than this (pixels, shorter side) are dropped as ``too_small``.
    """

    black_level: float = 40.0
    letterbox_level: float = 24.0
    max_letterbox: float = 0.3
    flat_std: float = 8.0
    min_sharpness: float = 0.3
    fade_step: float = 0.06
    text: bool = True
    min_side: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.black_level <= 255 or not 0 <= self.letterbox_level <= 255:
            raise ValueError("black_level and letterbox_level are luma values in [0, 255]")
        if not 0 <= self.max_letterbox < 0.5:
            raise ValueError(f"max_letterbox must lie in [0, 0.5), got {self.max_letterbox}")
        if self.flat_std < 0 or self.min_sharpness < 0:
            raise ValueError("flat_std and min_sharpness must be >= 0 (0 turns the check off)")
        if not 0 < self.fade_step < 1:
            raise ValueError(f"fade_step must lie in (0, 1), got {self.fade_step}")
        if self.min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {self.min_side}")


@dataclass(frozen=True)
class Verdict:
    """Result of ``judge_frame``: ``reason`` is "" for a usable frame; ``box`` is the crop
    ``(x0, y0, x1, y1)`` without letterbox bars; ``sharpness`` the score of check 4 (0 if not reached)."""

    reason: str
    box: tuple[int, int, int, int]
    sharpness: float = 0.0


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Small float32 RGB thumbnail (area average) used for cut and fade detection."""
    return cv2.resize(rgb, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def is_black(gray: np.ndarray, level: float) -> bool:
    return float(np.percentile(gray[::2, ::2], 99)) < level


def thumb_is_black(thumb: np.ndarray, level: float) -> bool:
    """Cheap per-frame version of ``is_black`` on a thumbnail (its brightest block is dark)."""
    return float(thumb.max()) < level


def letterbox_box(gray: np.ndarray, level: float, max_fraction: float) -> tuple[int, int, int, int]:
    """Crop box ``(x0, y0, x1, y1)`` that removes near-black bars at the four edges.

    A bar row (column) has its 99th-percentile luma at most ``level``: uniformly dark, unlike a dark
    scene, which still has some lighter pixels. At most ``max_fraction`` of each side is removed.
    """
    height, width = gray.shape
    rows = np.percentile(gray, 99, axis=1) <= level
    cols = np.percentile(gray, 99, axis=0) <= level

    def run(flags: np.ndarray, limit: int) -> int:
        # Length of the all-dark run at the start of ``flags``, capped.
        dark = np.flatnonzero(~flags)
        length = int(dark[0]) if len(dark) else len(flags)
        return min(length, limit)

    top = run(rows, int(max_fraction * height))
    bottom = run(rows[::-1], int(max_fraction * height))
    left = run(cols, int(max_fraction * width))
    right = run(cols[::-1], int(max_fraction * width))
    return left, top, width - right, height - bottom


def _analysis_gray(gray: np.ndarray) -> np.ndarray:
    height = gray.shape[0]
    if height <= _ANALYSIS_HEIGHT:
        return gray
    width = max(1, int(round(gray.shape[1] * _ANALYSIS_HEIGHT / height)))
    return cv2.resize(gray, (width, _ANALYSIS_HEIGHT), interpolation=cv2.INTER_AREA)


def sharpness(gray: np.ndarray) -> float:
    """Second-derivative energy / first-derivative energy, along x and along y; the smaller one.

    An edge blurred to width w has a first derivative ~1/w and a second ~1/w², so the ratio falls
    like 1/w² whatever the number of edges or their contrast. Taking the worse direction catches
    motion blur, which smears along one direction only. A direction without edges is judged by its
    noise, whose ratio is high, so it never makes a sharp frame count as blurred.
    """
    g = _analysis_gray(gray).astype(np.float32)
    ratios = []
    for dx, dy in ((1, 0), (0, 1)):
        first = cv2.Sobel(g, cv2.CV_32F, dx, dy, ksize=3)
        second = cv2.Sobel(g, cv2.CV_32F, 2 * dx, 2 * dy, ksize=3)
        energy = float(np.sum(first * first))
        ratios.append(float(np.sum(second * second)) / energy if energy > 0 else 0.0)
    return min(ratios)


def is_mostly_text(gray: np.ndarray) -> bool:
    """Credits and title cards: one background covers >= 70% of the frame, and >= 12 small blobs
    (glyph-sized: 0.8-8% of the height) make up >= 60% of the rest."""
    g = _analysis_gray(gray)
    height = g.shape[0]
    histogram = np.bincount((g // 16).ravel(), minlength=16)
    background = int(np.argmax(histogram)) * 16 + 8
    foreground = (np.abs(g.astype(np.int16) - background) > 48).astype(np.uint8)
    share = float(foreground.mean())
    if share < 0.005 or share > 0.3:
        return False
    count, _, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    heights, areas = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    glyph = (heights >= 0.008 * height) & (heights <= 0.08 * height)
    if int(glyph.sum()) < 12:
        return False
    return float(areas[glyph].sum()) >= 0.6 * float(areas.sum())


def brightness_ratio(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Least-squares factor k with ``current ≈ k * previous`` and the relative residual of that fit.

    In a fade the picture stays and only its brightness scales (k != 1, small residual); motion or
    a cut leaves a large residual.
    """
    p = previous.ravel()
    c = current.ravel()
    denominator = float(p @ p)
    if denominator <= 1e-6:
        return (1.0 if float(c @ c) <= 1e-6 else float("inf")), 0.0
    k = float(p @ c) / denominator
    residual = float(np.linalg.norm(c - k * p)) / (float(np.linalg.norm(c)) + 1e-6)
    return k, residual


class FadeDetector:
    """Feed every frame's thumbnail; ``update`` says whether the frame is inside a fade.

    Compares with the thumbnail ``window`` frames earlier (about a quarter second), so a slow fade
    whose steps between single frames are tiny still shows: the picture is the same (residual under
    10%) but its brightness changed by more than ``step`` times. Call ``reset`` at a cut.
    """

    def __init__(self, step: float, window: int) -> None:
        self.step = step
        self._thumbs: deque[np.ndarray] = deque(maxlen=max(1, window))

    def reset(self) -> None:
        self._thumbs.clear()

    def update(self, thumb: np.ndarray) -> bool:
        earlier = self._thumbs[0] if self._thumbs else None
        self._thumbs.append(thumb)
        if earlier is None:
            return False
        k, residual = brightness_ratio(earlier, thumb)
        return abs(k - 1.0) > self.step and residual < 0.1


def judge_frame(rgb: np.ndarray, config: FrameFilterConfig, in_fade: bool = False) -> Verdict:
    """Apply the checks of the module docstring in order; ``in_fade`` comes from ``FadeDetector``."""
    gray = luma(rgb)
    full = (0, 0, gray.shape[1], gray.shape[0])
    if is_black(gray, config.black_level):
        return Verdict("black", full)
    if config.text and is_mostly_text(gray):  # before the bar crop, which would cut a black credits screen down to its text
        return Verdict("text", full)
    box = letterbox_box(gray, config.letterbox_level, config.max_letterbox)
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) < config.min_side:
        return Verdict("too_small", box)
    if in_fade:
        return Verdict("fade", box)
    gray = gray[y0:y1, x0:x1]
    if config.flat_std > 0 and float(gray.std()) < config.flat_std:
        return Verdict("flat", box)
    score = sharpness(gray)
    if score < config.min_sharpness:
        return Verdict("blurred", box, score)
    return Verdict("", box, score)
