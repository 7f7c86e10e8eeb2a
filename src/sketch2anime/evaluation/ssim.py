"""Per-image reconstruction metrics: SSIM, PSNR and L1 between two batches of images.

All three take batches ``(N, C, H, W)`` in the package's ``[-1, 1]`` range, map them to ``[0, 1]``
(data range 1) and return one value per image, shape ``(N,)``, so callers can report means,
medians or bootstrap intervals as they like.

SSIM follows Wang et al. (2004) with the settings most papers report and scikit-image implements
as ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=-1)``: an 11-tap Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
statistics per channel, the SSIM map averaged over the "valid" region (pixels whose window lies
fully inside the image) and then over channels. It is computed in float64 so the numbers match
scikit-image to ~1e-6.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW_SIZE = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise ValueError("expected two torch tensors of images")
    if a.ndim != 4 or b.ndim != 4:
        raise ValueError(f"expected image batches (N, C, H, W), got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"the two image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.shape[0] == 0:
        raise ValueError("the image batches are empty")
    # [-1, 1] -> [0, 1]; float64 keeps SSIM's small differences of large sums exact enough.
    a01 = (a.detach().to(torch.float64) + 1.0) / 2.0
    b01 = (b.detach().to(torch.float64) + 1.0) / 2.0
    return a01, b01


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


BLOCK = 32  # outputs per matrix product in _filter_last_axis


def _filter_last_axis(x: Tensor, window: Tensor) -> Tensor:
    """Valid 1-D filter of ``window`` along the last axis: (..., W) -> (..., W - k + 1).

    Written as blocks of BLOCK outputs, each a product of a (BLOCK + k - 1)-sample slice with a
    banded matrix: a matrix product is several times faster on a CPU than a grouped float64
    convolution, and the result is the same to rounding (~1e-16)."""
    k, width = window.numel(), x.shape[-1]
    out = width - k + 1
    blocks = -(-out // BLOCK)
    padded = F.pad(x, (0, blocks * BLOCK + k - 1 - width))
    band = torch.zeros(BLOCK + k - 1, BLOCK, dtype=x.dtype, device=x.device)
    for j in range(BLOCK):
        band[j:j + k, j] = window
    return (padded.unfold(-1, BLOCK + k - 1, BLOCK) @ band).flatten(-2)[..., :out]


def _filter_valid(x: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter of (N, C, H, W) keeping only fully covered pixels."""
    x = _filter_last_axis(x, window)
    return _filter_last_axis(x.transpose(-1, -2), window).transpose(-1, -2)


def window_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (population) variance of ``x`` (N, C, H, W), any range, under SSIM's Gaussian window,
    on its valid grid (N, C, H - 10, W - 10), float64: the same windows ``ssim_terms`` compares."""
    x = x.detach().to(torch.float64)
    window = _gaussian_window(WINDOW_SIZE, SIGMA, x.dtype, x.device)
    mean = _filter_valid(x, window)
    return mean, _filter_valid(x * x, window) - mean * mean


def ssim_terms(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """SSIM's two factors per pixel: luminance (2 mu_a mu_b + c1) / (mu_a² + mu_b² + c1) and
    contrast-structure (2 cov + c2) / (var_a + var_b + c2); their product is the SSIM map.

    a, b: (N, C, H, W) in [-1, 1], H and W at least 11. Returns two float64 maps
    (N, C, H - 10, W - 10) over the valid region (pixel (i, j) is the window centred at (i + 5, j + 5)).
    Split, they say *why* a picture scores low: wrong brightness, or structure that does not match.
    """
    a01, b01 = _check_pair(a, b)
    height, width = a01.shape[-2:]
    if height < WINDOW_SIZE or width < WINDOW_SIZE:
        raise ValueError(f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE} pixels, got {height}x{width}")
    c1 = (K1 * 1.0) ** 2
    c2 = (K2 * 1.0) ** 2
    # Population (not sample) covariance, as use_sample_covariance=False.
    mu_a, var_a = window_statistics(a01)
    mu_b, var_b = window_statistics(b01)
    window = _gaussian_window(WINDOW_SIZE, SIGMA, a01.dtype, a01.device)
    cov = _filter_valid(a01 * b01, window) - mu_a * mu_b
    luminance = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    contrast_structure = (2 * cov + c2) / (var_a + var_b + c2)
    return luminance, contrast_structure


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Structural similarity per image.

    a, b: (N, C, H, W) in [-1, 1], H and W at least 11. Returns float64 (N,), 1.0 for identical
    images. Multi-channel images get the mean of the per-channel SSIMs.
    """
    luminance, contrast_structure = ssim_terms(a, b)
    return (luminance * contrast_structure).mean(dim=(1, 2, 3))


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 1 on the [0, 1] scale.

    a, b: (N, C, H, W) in [-1, 1]. Returns float64 (N,); identical images give ``inf`` (not
    capped: callers that average should drop or clip infinities explicitly).
    """
    a01, b01 = _check_pair(a, b)
    mse = ((a01 - b01) ** 2).mean(dim=(1, 2, 3))
    out = torch.full_like(mse, math.inf)
    nonzero = mse > 0
    out[nonzero] = 10.0 * torch.log10(1.0 / mse[nonzero])
    return out


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference per image on the [0, 1] scale (half the [-1, 1] difference).

    a, b: (N, C, H, W) in [-1, 1]. Returns float64 (N,) in [0, 1].
    """
    a01, b01 = _check_pair(a, b)
    return (a01 - b01).abs().mean(dim=(1, 2, 3))
