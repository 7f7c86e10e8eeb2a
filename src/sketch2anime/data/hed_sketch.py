"""The ``hed`` sketch extractor: HED edge probabilities turned into a clean line drawing.

colour image -> resize so the shorter side is at least ``work_size`` (HED was trained on ~500 px
photos; on 64 px faces it gives blobs, on the same face upscaled to 256 it gives lines) ->
reflect-pad (so the image border is not an edge) -> HED fused edge probability -> optional
non-maximum suppression across the ridge (thin lines) -> hysteresis (a line must reach
``threshold`` somewhere; it continues down to ``low_threshold``) -> drop short fragments ->
redraw at ``line_width`` with darkness ``min(1, gain * probability)`` -> resize back.

Lengths and widths are in output pixels at ``reference_size`` and scale with the output size, like
the other extractors, with a floor of ``min_line_width`` output pixels so 64 px sketches keep
visible one-pixel lines. The network runs in batches under ``torch.inference_mode``; the weights
load on first use (``sketch2anime weights hed`` installs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..models.hed import HED


@dataclass(frozen=True)
class HEDSketchConfig:
    """Settings of the HED extractor.

    threshold / low_threshold: hysteresis on the edge probability (0-1). thinning: ``nms`` thins
    HED's wide ridges to one-pixel centre lines before redrawing; ``none`` keeps the soft, wide
    ridges. gain: ink darkness = min(1, gain * probability). line_width: redrawn width (nms only)
    and min_line_length: shortest kept line, both in output px at ``reference_size``.
    min_line_width: floor of the line width in actual output px. work_size: shorter side HED sees
    (smaller images are upscaled); max_size: longer side cap (bigger ones are downscaled).
    border_pad: reflect padding in HED-input px. nms_sigma: smoothing (HED-input px) before
    estimating the ridge direction. batch_size: images per forward pass at 256x256 (scaled
    down for bigger inputs). device: torch device for HED, or ``auto`` (CUDA if present). weights: converted weights file; empty
    = the cache (``sketch2anime weights hed``).
    """

    threshold: float = 0.5
    low_threshold: float = 0.25
    thinning: Literal["nms", "none"] = "nms"
    gain: float = 2.0
    line_width: float = 2.0
    min_line_width: float = 1.0
    min_line_length: float = 12.0
    work_size: int = 256
    max_size: int = 1024
    border_pad: int = 8
    nms_sigma: float = 1.5
    reference_size: int = 256
    batch_size: int = 8
    device: str = "cpu"
    weights: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_threshold <= self.threshold <= 1.0:
            raise ValueError(f"need 0 <= low_threshold <= threshold <= 1, got {self.low_threshold} and {self.threshold}")
        if self.thinning not in ("nms", "none"):
            raise ValueError(f"thinning must be 'nms' or 'none', got {self.thinning!r}")
        if self.gain <= 0:
            raise ValueError(f"gain must be > 0, got {self.gain}")
        if self.line_width <= 0 or self.min_line_width < 0:
            raise ValueError(f"line_width must be > 0 and min_line_width >= 0, got {self.line_width}, {self.min_line_width}")
        if self.min_line_length < 0:
            raise ValueError(f"min_line_length must be >= 0, got {self.min_line_length}")
        if not 16 <= self.work_size <= self.max_size:
            raise ValueError(f"need 16 <= work_size <= max_size, got {self.work_size} and {self.max_size}")
        if self.border_pad < 0 or self.nms_sigma < 0:
            raise ValueError(f"border_pad and nms_sigma must be >= 0, got {self.border_pad}, {self.nms_sigma}")
        if self.reference_size < 1 or self.batch_size < 1:
            raise ValueError(f"reference_size and batch_size must be >= 1, got {self.reference_size}, {self.batch_size}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ValueError(f"device {self.device!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1', ...)") from None


def _check_rgb(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"the hed extractor needs a numpy HxWx3 uint8 image, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"the hed extractor needs uint8 pixels (0-255), got dtype {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"the hed extractor needs an HxWx3 RGB image, got shape {rgb.shape}")
    if min(rgb.shape[:2]) < 2:
        raise ValueError(f"image is too small for edge detection: {rgb.shape[0]}x{rgb.shape[1]}")
    return np.ascontiguousarray(rgb)


def ridge_nms(prob: np.ndarray, sigma: float) -> np.ndarray:
    """Boolean HxW mask of ridge centre pixels of an edge-probability map.

    At a ridge's centre the gradient vanishes, so the direction across the line comes from the
    Hessian (the eigenvector of its largest-magnitude eigenvalue). A pixel is kept if it is not lower
    than its two neighbours one pixel away along that direction (bilinear samples).
    """
    smooth = cv2.GaussianBlur(prob, (0, 0), sigma) if sigma > 0 else prob
    hxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
    hyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
    hxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
    # Eigen-directions of the Hessian; "across" is the one whose curvature is largest in
    # magnitude (negative at the crest, positive on the flanks, both across the line).
    first = 0.5 * np.arctan2(2.0 * hxy, hxx - hyy)
    half_trace = 0.5 * (hxx + hyy)
    root = np.sqrt((0.5 * (hxx - hyy)) ** 2 + hxy ** 2)
    across = np.where(np.abs(half_trace + root) >= np.abs(half_trace - root), first, first + 0.5 * np.pi)
    dx, dy = np.cos(across).astype(np.float32), np.sin(across).astype(np.float32)
    ys, xs = np.mgrid[0:prob.shape[0], 0:prob.shape[1]].astype(np.float32)
    ahead = cv2.remap(smooth, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    behind = cv2.remap(smooth, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (smooth >= ahead) & (smooth >= behind)


def hysteresis(prob: np.ndarray, candidates: np.ndarray, high: float, low: float, min_pixels: float) -> np.ndarray:
    """Keep 8-connected groups of candidate pixels >= ``low`` that reach ``high`` and have >= min_pixels."""
    weak = (candidates & (prob >= low)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[np.unique(labels[(prob >= high) & (weak > 0)])] = True
    keep &= stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False  # background label
    return keep[labels]


class HEDSketch:
    """Sketch extractor ``hed``: ``extractor(rgb) -> HxW uint8`` (255 paper, 0 ink, same size)."""

    name = "hed"

    def __init__(self, config: HEDSketchConfig) -> None:
        self.config = config
        self._model: HED | None = None

    # -----------------------------------------------------------------------------------------
    # network

    def _device(self) -> torch.device:
        if self.config.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"the hed extractor is set to device {self.config.device!r} but no CUDA GPU is "
                             "available; use device=cpu or device=auto")
        return device

    def _network(self) -> HED:
        if self._model is None:
            from ..weights import load_pretrained_hed  # raises MissingWeightsError with the fetch command

            self._model = load_pretrained_hed(self.config.weights or None).to(self._device()).eval()
        return self._model

    def _work_shape(self, height: int, width: int) -> tuple[int, int]:
        scale = max(1.0, self.config.work_size / min(height, width))
        scale = min(scale, self.config.max_size / max(height, width))
        return max(2, round(height * scale)), max(2, round(width * scale))

    def edge_probabilities(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """HED fused edge probability of each RGB image at its working size (float32 HxW in [0, 1])."""
        model = self._network()
        prepared = []
        for rgb in images:
            h, w = self._work_shape(*rgb.shape[:2])
            interpolation = cv2.INTER_CUBIC if h * w > rgb.shape[0] * rgb.shape[1] else cv2.INTER_AREA
            prepared.append(rgb if (h, w) == rgb.shape[:2] else cv2.resize(rgb, (w, h), interpolation=interpolation))
        results: list[np.ndarray | None] = [None] * len(images)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, rgb in enumerate(prepared):
            by_shape.setdefault(rgb.shape[:2], []).append(index)
        device = next(model.parameters()).device
        with torch.inference_mode():
            for (h, w), indices in by_shape.items():
                # Keep the activation memory of one pass near that of batch_size 256x256 images.
                per_pass = max(1, int(self.config.batch_size * 256 * 256 // (h * w)))
                pad = min(self.config.border_pad, h - 1, w - 1)
                for start in range(0, len(indices), per_pass):
                    chunk = indices[start:start + per_pass]
                    batch = torch.from_numpy(np.stack([prepared[i] for i in chunk])).to(device)
                    x = batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
                    if pad > 0:
                        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
                    edges = model.edges(x)[:, 0, pad:pad + h, pad:pad + w].float().cpu().numpy()
                    for i, prob in zip(chunk, edges):
                        results[i] = np.ascontiguousarray(prob, dtype=np.float32)
        return results  # type: ignore[return-value]

    # -----------------------------------------------------------------------------------------
    # drawing

    def render(self, prob: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
        """Edge probability at working size -> sketch (uint8, 255 paper / 0 ink) of ``out_shape``."""
        cfg = self.config
        out_h, out_w = out_shape
        work_per_out = prob.shape[0] / out_h  # HED-input px per output px
        out_per_ref = min(out_h, out_w) / cfg.reference_size
        if cfg.thinning == "nms":
            candidates = ridge_nms(prob, cfg.nms_sigma)
        else:
            candidates = np.ones(prob.shape, dtype=bool)
        min_pixels = cfg.min_line_length * out_per_ref * work_per_out
        if cfg.thinning == "none":
            min_pixels *= 3.0  # wide ridges: roughly length x ridge width pixels
        kept = hysteresis(prob, candidates, cfg.threshold, cfg.low_threshold, min_pixels)
        ink = np.where(kept, np.minimum(1.0, cfg.gain * prob), 0.0).astype(np.float32)
        if cfg.thinning == "nms":
            width = max(cfg.line_width * out_per_ref, cfg.min_line_width) * work_per_out
            diameter = int(round(width))
            if diameter > 1:
                disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
                ink = cv2.dilate(ink, disk)
        if ink.shape != (out_h, out_w):
            shrink = ink.shape[0] * ink.shape[1] > out_h * out_w
            ink = cv2.resize(ink, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.round(255.0 * (1.0 - np.clip(ink, 0.0, 1.0))).astype(np.uint8)

    # -----------------------------------------------------------------------------------------
    # extractor interface

    def extract_batch(self, images: list[np.ndarray], rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """Sketches of several HxWx3 uint8 RGB images (network in batches); deterministic, rng unused."""
        checked = [_check_rgb(rgb) for rgb in images]
        if not checked:
            return []
        probs = self.edge_probabilities(checked)
        return [self.render(prob, rgb.shape[:2]) for prob, rgb in zip(probs, checked)]

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """HxWx3 uint8 RGB -> HxW uint8 sketch (255 paper, 0 ink, dark lines), same size."""
        return self.extract_batch([rgb], rng)[0]


def line_coverage(sketch: np.ndarray) -> float:
    """Fraction of ink (sum of darkness / pixels) in a uint8 sketch; handy for tuning and tests."""
    return float((255.0 - sketch.astype(np.float64)).sum() / (255.0 * sketch.size))


__all__ = ["HEDSketch", "HEDSketchConfig", "ridge_nms", "hysteresis", "line_coverage"]
