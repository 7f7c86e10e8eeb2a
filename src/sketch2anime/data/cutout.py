"""Figure cut-out augmentation: the picture cut to a closed silhouette, drawn on white paper.

Users draw a character with an outline and leave the paper around it white (the real line-art
pairs, the sprites). The training faces fill their frame, and the zoom-out augmentation (``zoom.py``)
pastes a whole rectangle on paper whose edge has no line, so nothing in the training data says
"outside the outline stays paper": the default painted magenta-and-green blotches over the white
background of every real pair. This augmentation keeps the picture inside a random smooth
silhouette, turns everything outside it to paper in the colour image and the sketch alike, and draws
the silhouette's outline into the sketch with a pen, so the outside is exactly the part that an
outline closes off from the figure.

Arrays are uint8 HxWx3 (colour) and HxW (sketch, 255 paper, 0 ink) of the same side; outputs keep it.
"""

from __future__ import annotations

import cv2
import numpy as np

PAPER = 255


def _check(color: np.ndarray, sketch: np.ndarray) -> int:
    if color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f"colour must be an HxWx3 uint8 array, got {color.dtype} {color.shape}")
    if sketch.dtype != np.uint8 or sketch.shape != color.shape[:2]:
        raise ValueError(f"sketch must be an HxW uint8 array the colour's size {color.shape[:2]}, "
                         f"got {sketch.dtype} {sketch.shape}")
    return int(min(color.shape[:2]))


def random_silhouette(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """HxW bool mask: a smooth blob of 2-4 overlapping ellipses around the centre, ~30-75% of the page.

    A head-like ellipse near the upper middle and body-like ones below it, some running off the
    bottom edge as a half-body drawing does.
    """
    if height < 8 or width < 8:
        raise ValueError(f"a silhouette needs a page of at least 8x8 px, got {width}x{height}")
    mask = np.zeros((height, width), dtype=np.uint8)
    side = min(height, width)
    count = int(rng.integers(2, 5))
    for k in range(count):
        # the first ellipse is the head: rounder and higher; the others spread downwards
        cy = rng.uniform(0.3, 0.5) if k == 0 else rng.uniform(0.45, 0.95)
        cx = rng.uniform(0.35, 0.65)
        ry = rng.uniform(0.18, 0.3) if k == 0 else rng.uniform(0.15, 0.4)
        rx = ry * rng.uniform(0.7, 1.3) if k == 0 else rng.uniform(0.1, 0.35)
        cv2.ellipse(mask, (int(cx * width), int(cy * height)),
                    (max(2, int(rx * side)), max(2, int(ry * side))),
                    float(rng.uniform(-25, 25)), 0, 360, 255, thickness=-1)
    # round the joins between ellipses so the outline reads as one figure
    blur = max(3, (side // 16) | 1)
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    return mask >= 128


def cut_out(color: np.ndarray, sketch: np.ndarray, silhouette: np.ndarray,
            outline_width: int = 1, outline_ink: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paper outside ``silhouette`` (HxW bool) in both arrays; its outline inked into the sketch."""
    _check(color, sketch)
    if silhouette.shape != sketch.shape or silhouette.dtype != np.bool_:
        raise ValueError(f"silhouette must be an HxW bool mask of the sketch's size {sketch.shape}, "
                         f"got {silhouette.dtype} {silhouette.shape}")
    if outline_width < 1:
        raise ValueError(f"outline_width must be >= 1, got {outline_width}")
    if not 0 <= outline_ink <= 255:
        raise ValueError(f"outline_ink must lie in [0, 255], got {outline_ink}")
    page_color = np.where(silhouette[..., None], color, PAPER).astype(np.uint8)
    page_sketch = np.where(silhouette, sketch, PAPER).astype(np.uint8)
    contours, _ = cv2.findContours(silhouette.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pen = np.full_like(sketch, PAPER)
    cv2.drawContours(pen, contours, -1, int(outline_ink), thickness=outline_width, lineType=cv2.LINE_AA)
    return page_color, np.minimum(page_sketch, pen)


def random_cut_out(color: np.ndarray, sketch: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``cut_out`` with a ``random_silhouette`` and a pen ~1 px per 128 px of page, dark grey to black."""
    side = _check(color, sketch)
    silhouette = random_silhouette(sketch.shape[0], sketch.shape[1], rng)
    width = max(1, int(round(side / 128 * rng.uniform(0.8, 1.6))))
    return cut_out(color, sketch, silhouette, outline_width=width, outline_ink=int(rng.integers(0, 70)))
