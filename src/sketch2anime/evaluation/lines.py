"""Line fidelity: does the coloured output keep the lines of the input sketch?

A colourisation should paint *between* the user's lines, not invent a different drawing. We
compare the sketch's ink with the edges of the output:

* ``sketch_ink``: sketch pixels darker than mid-grey (value < 0 in [-1, 1]).
* ``edge_map``: Canny edges of the output's luminance (ITU-R BT.601 luma on 0..255), with fixed
  hysteresis thresholds 50 / 150 on the L2 gradient of a 3x3 Sobel, no pre-blur by default. Fixed
  thresholds keep numbers comparable between models and runs. A dark line of the output yields
  edges on both of its sides, each within half a line width of the ink's centre, so with the
  default tolerance of 2 px strokes up to ~4-5 px wide still count as kept.
* ``line_fscore``: distance-tolerant matching (as in edge-detection benchmarks, via the Euclidean
  distance transform). **Recall** = fraction of sketch ink pixels that lie within
  ``tolerance_px`` of an output edge: *the main number* — how much of the drawing survived.
  Precision = fraction of output edges within ``tolerance_px`` of ink; it is naturally below 1
  because colour boundaries, shading and highlights add edges the sketch does not have, so read
  it as "how much extra structure was invented", not as an error rate.
* ``chamfer_distance``: symmetric mean nearest-neighbour distance in pixels between two masks.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt
from torch import Tensor

CANNY_LOW = 50
CANNY_HIGH = 150
INK_THRESHOLD = 0.0
DEFAULT_TOLERANCE_PX = 2.0


def edge_map(images: Tensor, low: int = CANNY_LOW, high: int = CANNY_HIGH, blur_sigma: float = 0.0) -> np.ndarray:
    """Canny edges of the luminance: images (N, 3, H, W) in [-1, 1] -> bool (N, H, W)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got shape {tuple(images.shape)}")
    rgb = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    edges = np.zeros(rgb.shape[:3], dtype=bool)
    for i, image in enumerate(rgb):
        luma = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        if blur_sigma > 0:
            luma = cv2.GaussianBlur(luma, (0, 0), blur_sigma)
        edges[i] = cv2.Canny(luma, low, high, L2gradient=True) > 0
    return edges


def sketch_ink(sketch: Tensor, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Ink pixels of sketches (N, 1, H, W) in [-1, 1] (ink = -1): bool (N, H, W), value < threshold."""
    if sketch.ndim != 4 or sketch.shape[1] != 1:
        raise ValueError(f"expected sketches (N, 1, H, W), got shape {tuple(sketch.shape)}")
    return (sketch.detach().float().cpu()[:, 0] < threshold).numpy()


def _as_batch(mask: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 2:
        return mask[None]
    if mask.ndim != 3:
        raise ValueError(f"{what} must be a mask (H, W) or (N, H, W), got shape {mask.shape}")
    return mask


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Per pixel, the Euclidean distance to the nearest True pixel of a non-empty 2-D mask."""
    return distance_transform_edt(~mask)


def _single_fscore(ink: np.ndarray, edges: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    has_ink, has_edges = bool(ink.any()), bool(edges.any())
    if has_ink and has_edges:
        recall = float((_distance_to(edges)[ink] <= tolerance).mean())
        precision = float((_distance_to(ink)[edges] <= tolerance).mean())
    else:
        recall = 0.0 if has_ink else math.nan          # no ink: nothing to recall
        precision = 0.0 if has_edges else math.nan     # no edges: nothing to be precise about
    if math.isnan(recall):
        f = math.nan
    elif math.isnan(precision) or precision + recall == 0:
        f = 0.0                                        # ink but a blank output: nothing kept
    else:
        f = 2.0 * precision * recall / (precision + recall)
    return precision, recall, f


def line_fscore(sketch_ink: np.ndarray, output_edges: np.ndarray, tolerance_px: float = DEFAULT_TOLERANCE_PX
                ) -> tuple[Any, Any, Any]:
    """(precision, recall, F) of output edges against sketch ink, matched within ``tolerance_px``.

    Masks (H, W) give three floats; (N, H, W) give three float64 arrays (N,). Recall is NaN
    (and so is F) when a sketch has no ink; precision is NaN when an output has no edges (F is
    then 0 if the sketch had ink).
    """
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    single = np.ndim(sketch_ink) == 2
    ink = _as_batch(sketch_ink, "sketch_ink")
    edges = _as_batch(output_edges, "output_edges")
    if ink.shape != edges.shape:
        raise ValueError(f"sketch ink {ink.shape} and output edges {edges.shape} differ in size")
    scores = np.array([_single_fscore(ink[i], edges[i], tolerance_px) for i in range(ink.shape[0])]).reshape(-1, 3)
    if single:
        return float(scores[0, 0]), float(scores[0, 1]), float(scores[0, 2])
    return scores[:, 0], scores[:, 1], scores[:, 2]


def _single_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    has_a, has_b = bool(a.any()), bool(b.any())
    if not has_a and not has_b:
        return 0.0
    if not (has_a and has_b):
        # Nothing to match against: charge the largest possible distance, the image diagonal.
        return float(math.hypot(*a.shape))
    a_to_b = _distance_to(b)[a].mean()
    b_to_a = _distance_to(a)[b].mean()
    return float((a_to_b + b_to_a) / 2.0)


def chamfer_distance(a_mask: np.ndarray, b_mask: np.ndarray) -> Any:
    """Symmetric chamfer distance in pixels: mean of (mean distance a->b, mean distance b->a).

    Masks (H, W) give a float, (N, H, W) an array (N,). Two empty masks give 0; one empty mask
    gives the image diagonal (the worst possible) so a blank output is penalised, not skipped.
    """
    single = np.ndim(a_mask) == 2
    a = _as_batch(a_mask, "a_mask")
    b = _as_batch(b_mask, "b_mask")
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {a.shape} vs {b.shape}")
    values = np.array([_single_chamfer(a[i], b[i]) for i in range(a.shape[0])])
    return float(values[0]) if single else values


def line_fidelity(sketch: Tensor, output: Tensor, tolerance_px: float = DEFAULT_TOLERANCE_PX) -> dict[str, Any]:
    """All line metrics for a batch: sketch (N, 1, H, W) and output (N, 3, H, W), both in [-1, 1].

    Returns batch means (NaN-aware; None when undefined for every sample) of ``recall`` (main
    number), ``precision``, ``f`` and ``chamfer`` (pixels), plus the per-sample arrays.
    """
    if sketch.shape[0] != output.shape[0] or sketch.shape[-2:] != output.shape[-2:]:
        raise ValueError(f"sketch {tuple(sketch.shape)} and output {tuple(output.shape)} must have the same "
                         f"batch size and image size")
    ink = sketch_ink(sketch)
    edges = edge_map(output)
    precision, recall, f = line_fscore(ink, edges, tolerance_px)
    chamfer = chamfer_distance(ink, edges)

    def mean(values: np.ndarray) -> float | None:
        finite = values[~np.isnan(values)]
        return float(finite.mean()) if finite.size else None

    return {
        "recall": mean(recall), "precision": mean(precision), "f": mean(f), "chamfer": mean(chamfer),
        "tolerance_px": float(tolerance_px),
        "per_sample_recall": recall, "per_sample_precision": precision, "per_sample_f": f,
        "per_sample_chamfer": chamfer,
    }
