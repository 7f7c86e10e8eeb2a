"""Zoom-out augmentation: the picture and its sketch shrunk onto a blank sheet of paper.

The training faces fill their frame, so a model trained on them alone paints a background of
hair-and-shadow colours wherever a sketch has no lines. Users draw full characters with white
paper around them (as in the real line-art pairs). Shrinking an item by ``s`` and placing it at a
random position on a white page teaches what empty paper around a drawing means: keep it paper.

Arrays are uint8 HxWx3 (colour) and HxW (sketch, 255 paper, 0 ink), of the same side ``S``;
outputs keep that side. Lines stay dark when shrunk: the sketch is min-filtered (ink widened to
about ``1/s`` px) before the area-average downscale, so a 1 px line at ``S`` is still a dark line
at ``s * S`` instead of fading to grey.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from .image_io import check_color_and_sketch

PAPER = 255


def _check(color: np.ndarray, sketch: np.ndarray) -> int:
    height, width = check_color_and_sketch(color, sketch)
    if height != width:
        raise ValueError(f"zoom-out needs square images, got {width}x{height}")
    return height


def zoom_out(color: np.ndarray, sketch: np.ndarray, scale: float,
             offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Shrink both by ``scale`` in (0, 1] and paste them at ``offset`` (x, y) on white paper."""
    side = _check(color, sketch)
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"zoom-out scale must lie in (0, 1], got {scale}")
    small = max(1, int(round(side * scale)))
    x, y = offset
    if not (0 <= x <= side - small and 0 <= y <= side - small):
        raise ValueError(f"offset {offset} puts a {small}px picture outside the {side}px page")
    if small == side:
        return color.copy(), sketch.copy()
    ink = Image.fromarray(sketch)
    grow = math.ceil(1.0 / scale - 0.5)  # ink ~1/scale px wide survives the average as a dark line
    grow += 1 - grow % 2  # PIL's min filter needs an odd size
    if grow > 1:
        ink = ink.filter(ImageFilter.MinFilter(grow))
    page_color = np.full_like(color, PAPER)
    page_sketch = np.full_like(sketch, PAPER)
    page_color[y:y + small, x:x + small] = np.asarray(
        Image.fromarray(color).resize((small, small), Image.Resampling.BOX))
    page_sketch[y:y + small, x:x + small] = np.asarray(ink.resize((small, small), Image.Resampling.BOX))
    return page_color, page_sketch


def random_zoom_out(color: np.ndarray, sketch: np.ndarray, scale_range: tuple[float, float],
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``zoom_out`` at a uniform scale in ``scale_range`` and a uniform position on the page."""
    side = _check(color, sketch)
    low, high = scale_range
    scale = float(rng.uniform(low, high)) if high > low else float(low)
    small = max(1, int(round(side * scale)))
    x, y = (int(v) for v in rng.integers(0, side - small + 1, size=2))
    return zoom_out(color, sketch, scale, (x, y))
