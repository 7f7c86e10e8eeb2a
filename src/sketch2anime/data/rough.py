"""Turn a clean extracted sketch into what a novice might draw: rough, wobbly, incomplete.

Five effects, each applied with its own probability (drawn from the caller's rng, so the result
is a pure function of sketch, config and rng state):

* dropout: a random share of strokes is erased (forgotten lines);
* partial: only the first strokes in a simulated drawing order are kept (the drawing is still in
  progress; AniFaceDrawing's point that results must stay good throughout drawing). The order is
  either outward from a random start point or top to bottom, and a random share of the ink is kept;
* thickness: lines get thicker or thinner (a different pen);
* jitter: a smooth random displacement field bends every line (an unsteady hand);
* simplify (off unless ``simplify_probability`` > 0): a novice's few lines instead of an artist's
  many. Only the largest connected lines are kept, biggest first, up to a share of the ink (so
  hatching, highlights and loose strands go), and what is left is redrawn in black with one pen
  width. It runs first, so the other effects then roughen the simplified drawing.

A "stroke" is a connected ink component cut into pieces by a randomly offset square grid of pitch
``segment_length``, so that one long connected outline (face + hair) does not vanish as a whole.
Dropout and partial only ever erase ink; thickness and jitter change its shape.

Presets: ``RoughSketchConfig.preset("light" | "medium" | "heavy" | "unfinished")``; the plain defaults equal
"medium". Pixel quantities are at ``reference_size`` and scaled by ``min(H, W) / reference_size``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

_INK = 250  # anything darker than this is ink (keeps the grey fringe of anti-aliased lines with its stroke)


@dataclass(frozen=True)
class RoughSketchConfig:
    """Probabilities and strength ranges ``(low, high)`` of the four effects (see module docstring).

    dropout_share: fraction of strokes erased. partial_keep: fraction of the ink kept.
    thickness_change: px added to (negative: taken from) the line width. jitter_amplitude: std of
    the displacement (px); jitter_grid: control points per side of the displacement field (low =
    smooth bends, high = wobble). segment_length: stroke piece size (px; 0 = whole components).
    """

    dropout_probability: float = 0.5
    dropout_share: tuple[float, float] = (0.05, 0.3)
    partial_probability: float = 0.3
    partial_keep: tuple[float, float] = (0.4, 0.95)
    thickness_probability: float = 0.3
    thickness_change: tuple[float, float] = (-1.0, 2.0)
    jitter_probability: float = 0.8
    jitter_amplitude: tuple[float, float] = (1.5, 5.0)
    jitter_grid: int = 5
    segment_length: float = 48.0
    reference_size: int = 256
    simplify_probability: float = 0.0
    simplify_keep: tuple[float, float] = (0.75, 0.95)
    simplify_pen: tuple[float, float] = (2.0, 4.0)

    def __post_init__(self) -> None:
        for name in ("dropout_probability", "partial_probability", "thickness_probability", "jitter_probability",
                     "simplify_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        for name, low_bound, high_bound in (("dropout_share", 0.0, 1.0), ("partial_keep", 0.0, 1.0),
                                            ("thickness_change", -np.inf, np.inf), ("jitter_amplitude", 0.0, np.inf),
                                            ("simplify_keep", 0.0, 1.0), ("simplify_pen", 1.0, np.inf)):
            pair = getattr(self, name)
            if len(pair) != 2 or not low_bound <= pair[0] <= pair[1] <= high_bound:
                raise ValueError(f"{name} must be a range (low, high) with {low_bound} <= low <= high <= {high_bound}, got {pair}")
        if self.jitter_grid < 2:
            raise ValueError(f"jitter_grid must be >= 2, got {self.jitter_grid}")
        if self.segment_length < 0:
            raise ValueError(f"segment_length must be >= 0, got {self.segment_length}")
        if self.reference_size < 1:
            raise ValueError(f"reference_size must be >= 1, got {self.reference_size}")

    @classmethod
    def preset(cls, level: Literal["light", "medium", "heavy"]) -> RoughSketchConfig:
        """A ready-made config: "light", "medium" (the defaults) or "heavy"."""
        if level not in ROUGH_PRESETS:
            raise ValueError(f"unknown roughness level {level!r}; choose from: {', '.join(ROUGH_PRESETS)}")
        return dataclasses.replace(cls(), **ROUGH_PRESETS[level])


ROUGH_PRESETS: dict[str, dict[str, object]] = {
    "light": dict(dropout_probability=0.3, dropout_share=(0.02, 0.15), partial_probability=0.1,
                  partial_keep=(0.7, 0.95), thickness_probability=0.2, thickness_change=(-1.0, 1.5),
                  jitter_probability=0.6, jitter_amplitude=(1.0, 2.5)),
    "medium": {},
    "heavy": dict(dropout_probability=0.7, dropout_share=(0.1, 0.45), partial_probability=0.5,
                  partial_keep=(0.25, 0.9), thickness_probability=0.5, thickness_change=(-1.0, 4.0),
                  jitter_probability=1.0, jitter_amplitude=(2.5, 7.0), jitter_grid=7),
    # a drawing in progress: clean lines, only the first 35-60% of the ink in drawing order (what the
    # panel's live result sees while the user draws; where the projection slider should help most)
    "unfinished": dict(dropout_probability=0.0, partial_probability=1.0, partial_keep=(0.35, 0.6),
                       thickness_probability=0.0, jitter_probability=0.0),
}


def _check_sketch(sketch: np.ndarray) -> np.ndarray:
    if not isinstance(sketch, np.ndarray) or sketch.dtype != np.uint8 or sketch.ndim != 2:
        got = f"{sketch.dtype} array of shape {sketch.shape}" if isinstance(sketch, np.ndarray) else type(sketch).__name__
        raise ValueError(f"sketch must be an HxW uint8 array (255 paper, 0 ink), got {got}")
    if min(sketch.shape) < 2:
        raise ValueError(f"sketch is too small: {sketch.shape[0]}x{sketch.shape[1]}")
    return sketch


def _uniform(rng: np.random.Generator, pair: tuple[float, float]) -> float:
    return float(rng.uniform(pair[0], pair[1])) if pair[1] > pair[0] else float(pair[0])


def stroke_labels(ink: np.ndarray, segment_px: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Stroke id (0..S-1) per ink pixel (-1 on paper) and S: components cut by a random-offset grid."""
    _, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(ink)
    keys = labels[ys, xs].astype(np.int64)
    if segment_px > 0:
        pitch = max(4.0, segment_px)
        oy, ox = rng.uniform(0.0, pitch, 2)
        rows = int(np.ceil((ink.shape[0] + pitch) / pitch))
        cols = int(np.ceil((ink.shape[1] + pitch) / pitch))
        cells = ((ys + oy) // pitch).astype(np.int64) * cols + ((xs + ox) // pitch).astype(np.int64)
        keys = keys * (rows * cols) + cells
    ids = np.full(ink.shape, -1, dtype=np.int64)
    if keys.size == 0:
        return ids, 0
    unique, inverse = np.unique(keys, return_inverse=True)
    ids[ys, xs] = inverse
    return ids, len(unique)


def _progressive_keep(ids: np.ndarray, count: int, keep_share: float, rng: np.random.Generator) -> np.ndarray:
    """Bool per stroke: the strokes drawn first (in a random plausible order) up to ``keep_share`` of the ink."""
    ys, xs = np.nonzero(ids >= 0)
    sid = ids[ys, xs]
    sizes = np.bincount(sid, minlength=count).astype(np.float64)
    cy = np.bincount(sid, weights=ys, minlength=count) / sizes
    cx = np.bincount(sid, weights=xs, minlength=count) / sizes
    if rng.random() < 0.5:  # outward from where the pen first touched the paper
        start_y, start_x = rng.uniform(0, ids.shape[0]), rng.uniform(0, ids.shape[1])
        order = np.argsort(np.hypot(cy - start_y, cx - start_x), kind="stable")
    else:  # top to bottom
        order = np.argsort(cy, kind="stable")
    cumulative = np.cumsum(sizes[order])
    n_keep = int(np.searchsorted(cumulative, keep_share * cumulative[-1])) + 1
    keep = np.zeros(count, dtype=bool)
    keep[order[:n_keep]] = True
    return keep


def _change_thickness(sketch: np.ndarray, delta_px: float, rng: np.random.Generator) -> np.ndarray:
    # Stochastic rounding so sub-pixel changes at small sizes still happen some of the time.
    steps = int(np.floor(abs(delta_px))) + int(rng.random() < abs(delta_px) % 1.0)
    if steps == 0:
        return sketch
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (steps + 1, steps + 1))
    if delta_px > 0:
        return cv2.erode(sketch, kernel)  # min filter on white paper = thicker ink
    thinner = cv2.dilate(sketch, kernel)
    # Thin lines would vanish entirely; keep the pen unless at least half the ink survives.
    before = np.count_nonzero(sketch < 128)
    return thinner if np.count_nonzero(thinner < 128) >= 0.5 * before else sketch


def _jitter(sketch: np.ndarray, amplitude_px: float, grid: int, rng: np.random.Generator) -> np.ndarray:
    h, w = sketch.shape
    noise = rng.standard_normal((2, grid, grid)).astype(np.float32) * amplitude_px
    dx = cv2.resize(noise[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(noise[1], (w, h), interpolation=cv2.INTER_CUBIC)
    map_x = np.arange(w, dtype=np.float32)[None, :] + dx
    map_y = np.arange(h, dtype=np.float32)[:, None] + dy
    return cv2.remap(sketch, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=255)


def simplify(sketch: np.ndarray, keep_share: float, pen_px: float) -> np.ndarray:
    """The largest connected lines of ``sketch`` (HxW uint8) up to ``keep_share`` of its ink, in black,
    at least ``pen_px`` wide (one pen for every line, as a novice draws). The largest line is always kept."""
    ink = sketch < _INK
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if count <= 1:
        return sketch.copy()
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    order = np.argsort(-areas, kind="stable")
    n_keep = int(np.searchsorted(np.cumsum(areas[order]), keep_share * areas.sum())) + 1
    keep = np.zeros(count, dtype=bool)
    keep[order[:n_keep] + 1] = True
    out = np.where(keep[labels], 0, 255).astype(np.uint8)
    width = int(round(pen_px))
    if width > 1:  # a min filter on white paper widens every line to at least the pen
        out = cv2.erode(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    return out


def roughen(sketch: np.ndarray, config: RoughSketchConfig, rng: np.random.Generator) -> np.ndarray:
    """HxW uint8 sketch (255 paper, 0 ink) -> rough HxW uint8 sketch of the same size.

    Deterministic given the rng state. A sketch without ink is returned unchanged (as a copy).
    """
    c = config
    sketch = _check_sketch(sketch)
    scale = min(sketch.shape) / c.reference_size
    out = sketch.copy()
    use_dropout = rng.random() < c.dropout_probability
    use_partial = rng.random() < c.partial_probability
    use_thickness = rng.random() < c.thickness_probability
    use_jitter = rng.random() < c.jitter_probability
    # Drawn only when enabled, so configs without it keep their exact random stream (and sketches).
    if c.simplify_probability > 0 and rng.random() < c.simplify_probability:
        out = simplify(out, _uniform(rng, c.simplify_keep), _uniform(rng, c.simplify_pen) * scale)
    ink = out < _INK
    if (use_dropout or use_partial) and ink.any():
        ids, count = stroke_labels(ink, c.segment_length * scale, rng)
        keep = np.ones(count, dtype=bool)
        if use_partial:
            keep &= _progressive_keep(ids, count, _uniform(rng, c.partial_keep), rng)
        if use_dropout:
            dropped = rng.random(count) < _uniform(rng, c.dropout_share)
            if (keep & ~dropped).any():  # never erase the whole drawing
                keep &= ~dropped
        erase = (ids >= 0) & ~keep[np.maximum(ids, 0)]
        out[erase] = 255
    if use_thickness:
        out = _change_thickness(out, _uniform(rng, c.thickness_change) * scale, rng)
    if use_jitter:
        out = _jitter(out, _uniform(rng, c.jitter_amplitude) * scale, c.jitter_grid, rng)
    return out
