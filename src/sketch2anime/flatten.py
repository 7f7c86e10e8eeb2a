"""Cel flattening: one colour per closed region of the sketch, as an anime colourist fills it.

The generator hedges where the hints leave the colour open: blotches of magenta and green inside
one strand of hair, a face that drifts from pink to grey. A flat-colour pass (the "flat" layer of
line-art colouring tools) reads the regions the user's own lines enclose and paints each with the
median of what the model painted there:

* closed regions at least ``min_region`` of the picture (hair, face, clothes) become one colour;
* regions touching the picture's edge (the background, and long hair whose outline stays open at
  the bottom) are not one thing: by default they keep the model's colours. With ``open_radius`` > 0
  they are smoothed by a guided filter (He et al., 2010) with the picture's own lightness as guide,
  window ``open_radius`` × side, which averages away blotches of one lightness and another hue but
  keeps the edge between dark hair and light paper that no line closes. It is off by default
  because it made novice drawings much less like the training pictures (README, "Flat colours"):
  the model's shading there is worth more than its blotches cost;
* small regions (eyes, mouths, the cells of hatching in a tonal sketch) keep the model's colours,
  where its detail is the point;
* the lines and the thin band around them take the colour of the nearest region, and the model's
  own line pixels are kept where the sketch has ink.

``strength`` in [0, 1] blends the flattened picture with the model's (0 = off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from .data.image_io import ImageInput, load_sketch
from .data.regions import DEFAULT_GAP, DEFAULT_INK_THRESHOLD, line_regions
from .geometry import shrink_sketch


@dataclass(frozen=True)
class FlattenConfig:
    """How regions are found and filled (fractions are of the picture's side or area)."""

    ink_threshold: float = DEFAULT_INK_THRESHOLD  # sketch darkness in [0, 1] from which a pixel is a line
    gap: float = DEFAULT_GAP      # lines thickened by this × side (at least 1 px): closes small gaps
    min_region: float = 0.015     # closed regions smaller than this × area keep the model's colours
    open_radius: float = 0.0      # guided-filter window in regions that touch the picture's edge, × side (0: off)
    open_eps: float = 0.003       # its regulariser (lightness variance, [0, 1] scale): larger smooths more

    def __post_init__(self) -> None:
        for name in ("ink_threshold", "gap", "min_region", "open_radius", "open_eps"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FlattenConfig.{name} must be in [0, 1], got {value!r}")


def check_flatten(strength: Any) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"flatten must be a number in [0, 1] (0 = off, 1 = one colour per closed region), "
                         f"got {strength!r}")
    return float(strength)


def flatten_array(colour: np.ndarray, ink: np.ndarray, strength: float = 1.0,
                  config: FlattenConfig = FlattenConfig()) -> np.ndarray:
    """``colour`` (H, W, 3) float in [0, 1]; ``ink`` (H, W) in [0, 1] (0 paper, 1 full ink) at the same
    size. Returns the flattened (H, W, 3) float array."""
    strength = check_flatten(strength)
    if colour.ndim != 3 or colour.shape[2] != 3 or ink.shape != colour.shape[:2]:
        raise ValueError(f"flatten needs a (H, W, 3) picture and a (H, W) ink map of the same size, "
                         f"got {colour.shape} and {ink.shape}")
    if not strength:
        return colour
    height, width = ink.shape
    side = max(height, width)
    regions = line_regions(ink, config.ink_threshold, config.gap)
    labels, walls, areas, touches_edge = regions.labels, regions.walls, regions.areas, regions.touches_edge
    if regions.count == 0:
        return colour
    filled = colour.astype(np.float32).copy()
    radius = round(config.open_radius * side)
    smoothed = None
    for region in np.flatnonzero(areas >= config.min_region * height * width):
        if region == 0:
            continue
        mask = labels == region
        if touches_edge[region]:
            if radius < 1:
                continue
            if smoothed is None:
                smoothed = lightness_guided_filter(colour, radius, config.open_eps)  # the model's own picture
            filled[mask] = smoothed[mask]
        else:
            filled[mask] = np.median(colour[mask], axis=0)
    # The walls (lines and their band) take the nearest region's colour; real ink keeps the model's line.
    if walls.any():
        _, (rows, cols) = ndimage.distance_transform_edt(walls, return_indices=True)
        filled[walls] = filled[rows[walls], cols[walls]]
        keep_line = np.clip(ink, 0.0, 1.0)[..., None]
        filled = filled * (1.0 - keep_line) + colour * keep_line
    return colour + strength * (filled - colour)


def lightness_guided_filter(colour: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Guided filter of ``colour`` (H, W, 3) in [0, 1] with its own mean lightness as guide; box windows
    of side 2 ``radius`` + 1. Returns (H, W, 3)."""
    import cv2

    picture = colour.astype(np.float32)
    guide = picture.mean(axis=2)
    window = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, window, borderType=cv2.BORDER_REFLECT)

    mean_guide = box(guide)
    variance = box(guide * guide) - mean_guide ** 2
    out = np.empty_like(picture)
    for channel in range(3):
        values = picture[..., channel]
        mean_values = box(values)
        slope = (box(guide * values) - mean_guide * mean_values) / (variance + eps)
        offset = mean_values - slope * mean_guide
        out[..., channel] = box(slope) * guide + box(offset)
    return out


def flatten_picture(picture: Image.Image, sketch: ImageInput, strength: float = 1.0,
                    config: FlattenConfig = FlattenConfig()) -> Image.Image:
    """``picture`` (PIL RGB) flattened by the regions of ``sketch`` (any size: resized to the picture)."""
    strength = check_flatten(strength)
    lines = load_sketch(sketch)
    if lines.size != picture.size:  # shrunk as the model reads it: thin pen lines stay closed walls
        lines = shrink_sketch(lines, picture.size) if lines.size[0] > picture.size[0] else \
            lines.resize(picture.size, Image.Resampling.BICUBIC)
    ink = 1.0 - np.asarray(lines, dtype=np.float32) / 255.0
    colour = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    flat = flatten_array(colour, ink, strength, config)
    return Image.fromarray(np.clip(flat * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")


def flatten_tensor(image: torch.Tensor, sketch: torch.Tensor, strength: float = 1.0,
                   config: FlattenConfig = FlattenConfig()) -> torch.Tensor:
    """``image`` (B, 3, S, S) in [-1, 1] flattened by ``sketch`` (B, 1, S, S) in [-1, 1] (paper 1)."""
    strength = check_flatten(strength)
    if not strength:
        return image
    if image.shape[0] != sketch.shape[0] or image.shape[-2:] != sketch.shape[-2:]:
        raise ValueError(f"flatten needs the sketch at the picture's size, got {tuple(sketch.shape)} "
                         f"for {tuple(image.shape)}")
    colour = ((image.detach().float().cpu() + 1.0) / 2.0).permute(0, 2, 3, 1).numpy()
    ink = (1.0 - (sketch.detach().float().cpu()[:, 0] + 1.0) / 2.0).clamp(0.0, 1.0).numpy()
    flat = np.stack([flatten_array(c, k, strength, config) for c, k in zip(colour, ink)])
    return (torch.from_numpy(flat).permute(0, 3, 1, 2) * 2.0 - 1.0).to(image.dtype)
