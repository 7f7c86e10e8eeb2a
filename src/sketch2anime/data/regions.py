"""Regions a sketch's lines enclose: one home for how flat colours (``flatten.py``) and the training
loss that asks for them (``training/losses.py: region_flatness_loss``) read a sketch.

A pixel is a line where the sketch's darkness exceeds ``ink_threshold``; lines are thickened by
``gap`` × side (at least 1 px) so that small breaks in a pen line still separate two regions, and
the rest of the picture splits into 4-connected regions. Label 0 is the walls (lines and their band).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

# How a pen line is read, shared by the flat colours and the training loss so both see the same regions.
DEFAULT_INK_THRESHOLD = 0.5
DEFAULT_GAP = 1.0 / 256.0


@dataclass(frozen=True)
class LineRegions:
    """``labels`` (H, W) int: 0 on the walls, 1..count per region; ``walls`` (H, W) bool;
    ``areas`` (count + 1,) pixels per label; ``touches_edge`` (count + 1,) bool: the region reaches the
    picture's border (background, or a form whose outline stays open)."""

    labels: np.ndarray
    walls: np.ndarray
    areas: np.ndarray
    touches_edge: np.ndarray

    @property
    def count(self) -> int:
        return len(self.areas) - 1


def line_regions(ink: np.ndarray, ink_threshold: float = DEFAULT_INK_THRESHOLD,
                 gap: float = DEFAULT_GAP) -> LineRegions:
    """``ink`` (H, W) in [0, 1] (0 paper, 1 full ink) -> the regions between its lines."""
    if ink.ndim != 2:
        raise ValueError(f"line regions need a (H, W) ink map, got shape {ink.shape}")
    lines = ink > ink_threshold
    band = max(1, round(gap * max(ink.shape)))
    walls = ndimage.binary_dilation(lines, iterations=band) if lines.any() else lines
    labels, count = ndimage.label(~walls)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    touches_edge = np.zeros(count + 1, dtype=bool)
    if count:
        touches_edge[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    touches_edge[0] = False
    return LineRegions(labels, walls, areas, touches_edge)


def region_labels(sketch: torch.Tensor, min_region: float = 0.005, ink_threshold: float = DEFAULT_INK_THRESHOLD,
                  gap: float = DEFAULT_GAP) -> torch.Tensor:
    """``sketch`` (N, 1, H, W) in [-1, 1] (paper +1) -> labels (N, H, W) int64, numbered across the batch
    (the regions of item n never share a number with item m's), 0 where no region counts: the walls and
    regions smaller than ``min_region`` × the picture's area (eyes, hatching cells)."""
    if sketch.dim() != 4 or sketch.shape[1] != 1:
        raise ValueError(f"region labels need sketches of shape (N, 1, H, W), got {tuple(sketch.shape)}")
    ink = (1.0 - (sketch.detach().float().cpu()[:, 0] + 1.0) / 2.0).clamp(0.0, 1.0).numpy()
    out = np.zeros(ink.shape, dtype=np.int64)
    offset = 0
    for index, item in enumerate(ink):
        regions = line_regions(item, ink_threshold, gap)
        keep = regions.areas >= min_region * item.size
        keep[0] = False
        renumber = np.zeros(regions.count + 1, dtype=np.int64)
        renumber[keep] = offset + 1 + np.arange(int(keep.sum()))
        out[index] = renumber[regions.labels]
        offset += int(keep.sum())
    return torch.from_numpy(out).to(sketch.device)
