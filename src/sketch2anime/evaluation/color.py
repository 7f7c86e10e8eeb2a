"""Colour metrics: sRGB -> CIELAB, CIEDE2000 colour difference, and colour-hint adherence.

Hint adherence asks: where the user put a colour hint, did the output take that colour? The output
is area-averaged down to the hint resolution (each hint pixel covers ``hint_downscale`` output
pixels per side, the same footprint the hint was simulated from) and compared with the hint colour
by CIEDE2000 at every hinted pixel. As a rule of thumb ΔE00 ≈ 1 is a just-noticeable difference,
below ~5 reads as "the same colour", above ~10-20 as clearly different.

Formulas:
* sRGB (IEC 61966-2-1) with the D65 white: linearise, multiply by the sRGB→XYZ matrix, then CIE
  1976 L*a*b* with the reference white X_n = 0.95047, Y_n = 1, Z_n = 1.08883.
* CIEDE2000 as written out by Sharma, Wu & Dalal (2005), with k_L = k_C = k_H = 1, including their
  conventions for the hue mean and difference when a chroma is zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

# sRGB (linear) -> XYZ, D65.
_RGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) -> CIELAB (..., 3) float64 (L in [0, 100]).

    uint8 input is read as 0..255; float input must already be in [0, 1] (values are clipped).
    """
    array = np.asarray(rgb)
    if array.shape[-1:] != (3,):
        raise ValueError(f"expected colours with a last axis of 3 (R, G, B), got shape {array.shape}")
    if array.dtype == np.uint8:
        srgb = array.astype(np.float64) / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        srgb = np.clip(array.astype(np.float64), 0.0, 1.0)
    else:
        raise ValueError(f"expected uint8 (0..255) or float (0..1) colours, got dtype {array.dtype}")
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _DELTA ** 3, np.cbrt(xyz), xyz / (3.0 * _DELTA ** 2) + 4.0 / 29.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference ΔE00 between Lab colours (..., 3) (broadcast), float64 (...)."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    if lab1.shape[-1:] != (3,) or lab2.shape[-1:] != (3,):
        raise ValueError(f"expected Lab colours with a last axis of 3, got shapes {lab1.shape} and {lab2.shape}")
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]

    # Stretch a* for near-neutral colours (G), then chroma and hue in the stretched plane.
    c_mean7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_mean7 / (c_mean7 + 25.0 ** 7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    # atan2(0, 0) is already 0, as the paper prescribes for zero chroma.
    zero_chroma = (c1p * c2p) == 0

    delta_l = l2 - l1
    delta_c = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(zero_chroma, 0.0, dh)
    delta_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2.0))

    l_mean = (l1 + l2) / 2.0
    c_mean = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) <= 180.0, h_sum / 2.0,
                      np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0))
    h_mean = np.where(zero_chroma, h_sum, h_mean)

    t = (1.0 - 0.17 * np.cos(np.radians(h_mean - 30.0)) + 0.24 * np.cos(np.radians(2.0 * h_mean))
         + 0.32 * np.cos(np.radians(3.0 * h_mean + 6.0)) - 0.20 * np.cos(np.radians(4.0 * h_mean - 63.0)))
    delta_theta = 30.0 * np.exp(-(((h_mean - 275.0) / 25.0) ** 2))
    c_mean_7 = c_mean ** 7
    r_c = 2.0 * np.sqrt(c_mean_7 / (c_mean_7 + 25.0 ** 7))
    l50 = (l_mean - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * c_mean
    s_h = 1.0 + 0.015 * c_mean * t
    r_t = -np.sin(np.radians(2.0 * delta_theta)) * r_c

    term_l = delta_l / s_l
    term_c = delta_c / s_c
    term_h = delta_h / s_h
    squared = term_l ** 2 + term_c ** 2 + term_h ** 2 + r_t * term_c * term_h
    return np.sqrt(np.maximum(squared, 0.0))


def _to_hwc01(images: Tensor) -> np.ndarray:
    """(N, 3, h, w) in [-1, 1] -> (N, h, w, 3) float64 in [0, 1]."""
    return ((images.detach().double().cpu().clamp(-1, 1) + 1.0) / 2.0).permute(0, 2, 3, 1).numpy()


def _percentiles(values: np.ndarray) -> tuple[float, float, float]:
    return float(np.median(values)), float(np.percentile(values, 90)), float(values.mean())


def hint_adherence(output: Tensor, hint: Tensor) -> dict[str, Any]:
    """How closely the output matches the colour hints, in ΔE00, at the hinted pixels.

    output: (N, 3, H, W) in [-1, 1]; hint: (N, 4, h, w) (RGB in [-1, 1] + mask) with h <= H, w <= W.
    Returns a dict:
      ``median``, ``p90``, ``mean``: pooled over all hinted pixels of the batch (None if none);
      ``count``: number of hinted pixels; ``samples_with_hints``: how many images had any;
      ``per_sample_median``, ``per_sample_p90``: float64 arrays (N,), NaN where an image has no
      hint; ``per_sample_count``: int array (N,).
    """
    if output.ndim != 4 or output.shape[1] != 3:
        raise ValueError(f"expected output images (N, 3, H, W), got shape {tuple(output.shape)}")
    if hint.ndim != 4 or hint.shape[1] != 4:
        raise ValueError(f"expected hints (N, 4, h, w) (RGB + mask), got shape {tuple(hint.shape)}")
    if hint.shape[0] != output.shape[0]:
        raise ValueError(f"{output.shape[0]} outputs but {hint.shape[0]} hints")
    height, width = hint.shape[-2:]
    if height > output.shape[2] or width > output.shape[3]:
        raise ValueError(f"hint resolution {height}x{width} is larger than the output {tuple(output.shape[-2:])}")
    small = F.interpolate(output.detach().double(), size=(height, width), mode="area")
    out_lab = rgb_to_lab(_to_hwc01(small))
    hint_lab = rgb_to_lab(_to_hwc01(hint[:, :3]))
    delta = ciede2000(out_lab, hint_lab)           # (N, h, w)
    mask = hint[:, 3].detach().cpu().numpy() > 0.5

    n = output.shape[0]
    medians = np.full(n, np.nan)
    p90s = np.full(n, np.nan)
    counts = mask.reshape(n, -1).sum(axis=1).astype(np.int64)
    for i in range(n):
        if counts[i]:
            medians[i], p90s[i], _ = _percentiles(delta[i][mask[i]])
    pooled = delta[mask]
    if pooled.size:
        median, p90, mean = _percentiles(pooled)
    else:
        median = p90 = mean = None
    return {
        "median": median, "p90": p90, "mean": mean, "count": int(pooled.size),
        "samples_with_hints": int((counts > 0).sum()),
        "per_sample_median": medians, "per_sample_p90": p90s, "per_sample_count": counts,
    }
