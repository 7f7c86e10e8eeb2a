"""Figure cut-out augmentation: the picture cut to a closed silhouette, drawn on white paper.

Users draw a character with an outline and leave the paper around it white (the real line-art
pairs, the sprites). The training faces fill their frame, and the zoom-out augmentation (``zoom.py``)
pastes a whole rectangle on paper whose edge has no line, so nothing in the training data says
"outside the outline stays paper": the default painted magenta-and-green blotches over the white
background of every real pair. This augmentation keeps the picture inside a random smooth
silhouette, turns everything outside it to paper in the colour image and the sketch alike, and draws
the silhouette's outline into the sketch with a pen, so the outside is exactly the part that an
outline closes off from the figure.

Paper is what the outside becomes when the user says nothing about it. A user who dabs a background
colour there must get it: trained on paper alone, the model painted white over the background dabs
of the showcase's novice faces. So a share of the cut-outs (``backdrop_probability``) fills the
outside with a flat colour instead and puts dabs of that colour on it into the hints
(``add_backdrop_hints``): a coloured backdrop always comes with a hint that asks for it.

Arrays are uint8 HxWx3 (colour) and HxW (sketch, 255 paper, 0 ink) of the same side; outputs keep it.
"""

from __future__ import annotations

import cv2
import numpy as np

from .image_io import check_color_and_sketch

PAPER = 255


def random_silhouette(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """HxW bool mask: a smooth blob of 2-4 overlapping ellipses around the centre, 17-60% of the page.

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


def cut_out(color: np.ndarray, sketch: np.ndarray, silhouette: np.ndarray, outline_width: int = 1,
            outline_ink: int = 0, backdrop: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paper outside ``silhouette`` (HxW bool) in both arrays; its outline inked into the sketch.

    ``backdrop``: an RGB colour for the outside of the colour image instead of paper (the sketch's
    outside stays paper either way).
    """
    check_color_and_sketch(color, sketch)
    if silhouette.shape != sketch.shape or silhouette.dtype != np.bool_:
        raise ValueError(f"silhouette must be an HxW bool mask of the sketch's size {sketch.shape}, "
                         f"got {silhouette.dtype} {silhouette.shape}")
    if outline_width < 1:
        raise ValueError(f"outline_width must be >= 1, got {outline_width}")
    if not 0 <= outline_ink <= 255:
        raise ValueError(f"outline_ink must lie in [0, 255], got {outline_ink}")
    if backdrop is not None and (len(backdrop) != 3 or not all(0 <= int(v) <= 255 for v in backdrop)):
        raise ValueError(f"backdrop must be an RGB triple of 0-255 values, got {backdrop}")
    outside = np.asarray(backdrop if backdrop is not None else (PAPER,) * 3, dtype=np.uint8)
    page_color = np.where(silhouette[..., None], color, outside).astype(np.uint8)
    page_sketch = np.where(silhouette, sketch, PAPER).astype(np.uint8)
    contours, _ = cv2.findContours(silhouette.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pen = np.full_like(sketch, PAPER)
    cv2.drawContours(pen, contours, -1, int(outline_ink), thickness=outline_width, lineType=cv2.LINE_AA)
    return page_color, np.minimum(page_sketch, pen)


def random_backdrop(rng: np.random.Generator) -> tuple[int, int, int]:
    """A flat background colour: any hue, muted to moderately saturated, mid to light."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.1, 0.7) * 255, rng.uniform(0.5, 1.0) * 255]]])
    r, g, b = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def random_pen(side: int, rng: np.random.Generator, backdrop_probability: float
               ) -> tuple[int, int, tuple[int, int, int] | None]:
    """(outline width ~1 px per 128 px of page, ink 0-69 (black to dark grey), a ``random_backdrop`` with
    ``backdrop_probability`` or None): the outline pen and outside of the cut-outs and the figures."""
    if not 0.0 <= backdrop_probability <= 1.0:
        raise ValueError(f"backdrop_probability must lie in [0, 1], got {backdrop_probability}")
    width = max(1, int(round(side / 128 * rng.uniform(0.8, 1.6))))
    ink = int(rng.integers(0, 70))
    backdrop = random_backdrop(rng) if rng.random() < backdrop_probability else None
    return width, ink, backdrop


def random_cut_out(color: np.ndarray, sketch: np.ndarray, rng: np.random.Generator,
                   backdrop_probability: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int] | None]:
    """``cut_out`` with a ``random_silhouette``, a pen ~1 px per 128 px of page (dark grey to black)
    and, with ``backdrop_probability``, a ``random_backdrop``.

    Returns (colour, sketch, outside HxW bool, backdrop colour or None).
    """
    side = min(check_color_and_sketch(color, sketch))
    silhouette = random_silhouette(sketch.shape[0], sketch.shape[1], rng)
    width, ink, backdrop = random_pen(side, rng, backdrop_probability)
    page_color, page_sketch = cut_out(color, sketch, silhouette, outline_width=width, outline_ink=ink,
                                      backdrop=backdrop)
    return page_color, page_sketch, ~silhouette, backdrop


def add_backdrop_hints(hint_rgb: np.ndarray, mask: np.ndarray, outside: np.ndarray,
                       backdrop: tuple[int, int, int], rng: np.random.Generator,
                       dabs: tuple[int, int] = (1, 3)) -> tuple[np.ndarray, np.ndarray]:
    """Round dabs of ``backdrop`` on the outside, added to simulated hints.

    hint_rgb (h, w, 3) uint8 and mask (h, w) bool at the hint resolution (``simulate_hints``);
    outside: HxW bool at the image's size. Dabs cover only hint cells that lie wholly outside, so a
    dab asks for the backdrop, not for the figure. Returns new arrays.
    """
    h, w = mask.shape
    if hint_rgb.shape != (h, w, 3) or outside.ndim != 2:
        raise ValueError(f"hints {hint_rgb.shape} / {mask.shape} and outside {outside.shape} do not match")
    clear = cv2.resize(outside.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 1.0
    hint_rgb, mask = hint_rgb.copy(), mask.copy()
    ys, xs = np.nonzero(clear)
    if len(ys) == 0:
        return hint_rgb, mask
    yy, xx = np.mgrid[:h, :w]
    for _ in range(int(rng.integers(dabs[0], dabs[1] + 1))):
        k = int(rng.integers(len(ys)))
        radius = rng.uniform(1.0, 2.5)
        dab = ((yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 <= radius * radius) & clear
        mask |= dab
        hint_rgb[dab] = backdrop
    return hint_rgb, mask
