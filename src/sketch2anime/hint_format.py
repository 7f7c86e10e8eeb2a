"""The colour hint format: how a hint is laid out, converted, resized and shown.

A hint lives at the *hint resolution* ``h = image_size // downscale`` (default downscale 4, like
the original 128 px hints for 512 px images). As a tensor it is ``(4, h, w)`` float32, batched
``(N, 4, h, w)``: channels 0-2 the hint colour RGB in [-1, 1] (0 where nothing is hinted), channel
3 the mask (1 = hinted; after an area resize, the hinted fraction of the cell). A user's hint is an
RGBA layer whose alpha marks painted pixels.

Networks take their channel counts from ``HINT_CHANNELS``; simulation of training hints is in
``data/hints.py``; this module has what every user of a hint shares.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data.image_io import ImageInput, load_rgba

HINT_CHANNELS = 4  # RGB + mask
MASK_CHANNEL = 3
DEFAULT_DOWNSCALE = 4
# A hint layer without any transparent pixel (an RGB or JPEG file, or RGBA saved fully opaque) has
# no alpha to say what is hinted: taken as is it hints everything, mostly with its white paper, and
# gives a washed-out picture. Such layers follow the paint-on-paper rule instead: near-white = no hint.
NO_HINT_WHITE = 245
DISPLAY_BACKGROUND = 0.7  # light grey behind hint colours in sample grids ([-1, 1] scale)


def hint_size(image_size: int, downscale: int) -> int:
    """Side of the hint grid for a square image; ValueError when the image is smaller than one cell."""
    if downscale < 1 or image_size < downscale:
        raise ValueError(f"need 1 <= downscale <= image_size, got downscale {downscale} for size {image_size}")
    return image_size // downscale


def empty_hint(image_size: int, downscale: int) -> torch.Tensor:
    """A hint with no hinted pixel: zeros (4, h, h)."""
    h = hint_size(image_size, downscale)
    return torch.zeros(HINT_CHANNELS, h, h)


# ---------------------------------------------------------------------------------------------
# arrays and RGBA layers -> tensors

def hint_to_tensor(hint_rgb: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """(h, w, 3) uint8 colours + (h, w) bool mask -> float32 (4, h, w): RGB in [-1, 1] zeroed outside the mask, mask."""
    hint_rgb = np.asarray(hint_rgb)
    mask = np.asarray(mask).astype(bool)
    if hint_rgb.ndim != 3 or hint_rgb.shape[-1] != 3 or hint_rgb.shape[:2] != mask.shape:
        raise ValueError(f"hint colours {hint_rgb.shape} and mask {mask.shape} must be (h, w, 3) and (h, w)")
    m = torch.from_numpy(mask.astype(np.float32))
    colour = torch.from_numpy(hint_rgb.astype(np.float32)).permute(2, 0, 1).div(127.5).sub(1.0) * m
    return torch.cat([colour, m[None]], dim=0)


def _resize(array: np.ndarray, side: int) -> np.ndarray:
    import cv2  # here: the networks import this module for HINT_CHANNELS, and need no OpenCV

    shrinking = side < max(array.shape[:2])
    return cv2.resize(array, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def hint_layer(rgba: ImageInput) -> Image.Image:
    """Decode a user's hint layer to RGBA, applying the paint-on-paper rule to opaque layers.

    Alpha marks hinted pixels. When the layer has no transparent pixel at all, every pixel whose
    R, G and B are all >= ``NO_HINT_WHITE`` becomes transparent (no hint), every other pixel is a hint
    of its colour. So a hint drawn on white paper works; a white hint needs a layer with alpha.
    """
    layer = load_rgba(rgba)
    array = np.asarray(layer)
    if array[..., 3].min() < 255:
        return layer
    unhinted = (array[..., :3] >= NO_HINT_WHITE).all(axis=-1)
    out = array.copy()
    out[..., 3] = np.where(unhinted, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGBA")


def rgba_to_hint(rgba: ImageInput, image_size: int, downscale: int) -> torch.Tensor:
    """A user's hint layer (RGBA of any size; alpha marks painted pixels) -> (4, h, h) hint tensor.

    The layer is stretched to ``image_size`` square, then to the hint resolution, averaging
    *premultiplied* colour so that transparent (black-ish) pixels never bleed into painted ones;
    a hint pixel counts as hinted when its averaged alpha exceeds 0.5. A layer without transparent
    pixels follows ``hint_layer``'s rule (near-white = no hint).
    """
    h = hint_size(image_size, downscale)
    array = np.asarray(hint_layer(rgba), dtype=np.float32) / 255.0
    alpha = array[..., 3:4]
    premultiplied = np.concatenate([array[..., :3] * alpha, alpha], axis=-1)
    small = _resize(_resize(premultiplied, image_size), h)
    small_alpha = small[..., 3]
    mask = small_alpha > 0.5
    colour = small[..., :3] / np.maximum(small_alpha, 1e-6)[..., None]
    colour = np.clip(colour, 0.0, 1.0) * 2.0 - 1.0
    m = torch.from_numpy(mask.astype(np.float32))
    return torch.cat([torch.from_numpy(colour).permute(2, 0, 1).float() * m, m[None]], dim=0)


# ---------------------------------------------------------------------------------------------
# tensors: resize, upsample, display

def resize_hint(hint: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(N, 4, h, w)`` hint to ``size x size`` keeping hinted colours exact.

    Downscaling averages colours over hinted pixels only (un-hinted zeros would darken them);
    the mask channel becomes the hinted fraction of each cell. Upscaling is nearest.
    """
    if hint.shape[-1] <= size:
        if hint.shape[-1] == size and hint.shape[-2] == size:
            return hint
        return F.interpolate(hint, size=(size, size), mode="nearest")
    rgb = F.interpolate(hint[:, :MASK_CHANNEL], size=(size, size), mode="area")
    mask = F.interpolate(hint[:, MASK_CHANNEL:MASK_CHANNEL + 1], size=(size, size), mode="area")
    rgb = rgb / mask.clamp_min(1e-6) * (mask > 0).to(rgb.dtype)
    return torch.cat([rgb, mask], dim=1)


def hint_upsampled(hint: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, 4, h, w)`` hint -> ``(N, 4, size, size)`` by nearest upsampling."""
    if hint.dim() != 4 or hint.shape[1] != HINT_CHANNELS:
        raise ValueError(f"a hint must have shape (N, {HINT_CHANNELS}, h, w), got {tuple(hint.shape)}")
    return F.interpolate(hint, size=(size, size), mode="nearest")


def hint_to_display(hint: torch.Tensor, size: int, background: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 4, h, w) hint -> (N, 3, size, size) picture in [-1, 1]: the hint colour (nearest
    upsampling) where hinted, elsewhere light grey or ``background`` (N, 1 or 3, size, size)."""
    up = F.interpolate(hint.float(), size=(size, size), mode="nearest")
    colour, mask = up[:, :MASK_CHANNEL], up[:, MASK_CHANNEL:MASK_CHANNEL + 1]
    if background is None:
        background = torch.full_like(colour, DISPLAY_BACKGROUND)
    return colour * mask + background.float().expand(-1, 3, -1, -1) * (1 - mask)
