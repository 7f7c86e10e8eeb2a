"""Input sensitivity: does the output change when the input changes, as much as the target does?

    sensitivity = mean over pairs (i, j) of L1(output_i, output_j)
                  / mean over the same pairs of L1(target_i, target_j)

L1 is the mean absolute difference on the [0, 1] scale between images area-averaged to 32x32.
The downscaling is deliberate: it compares layout and colour, so per-image noise or texture cannot
make a model that draws the same face for every input look input-dependent. A model that returns
one picture for every input scores 0; one whose outputs differ as much as the true images do, ~1
(well above 1: outputs vary more than the images, e.g. noise). Read it with SSIM: a model can vary
a lot and still be wrong.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SENSITIVITY_SIZE = 32
MAX_PAIRS = 20000


def small_images(images: torch.Tensor, size: int = SENSITIVITY_SIZE) -> torch.Tensor:
    """(B, 3, S, S) in [-1, 1] -> (B, 3 * size * size) float32 on the [0, 1] scale, area-averaged."""
    if images.ndim != 4:
        raise ValueError(f"expected (B, C, S, S) images, got shape {tuple(images.shape)}")
    side = min(size, images.shape[-1])
    small = F.interpolate(images.float(), size=(side, side), mode="area")
    return ((small + 1) / 2).flatten(1)


def pair_indices(n: int, seed: int = 0, max_pairs: int = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j of n items, or a seeded sample of ``max_pairs`` distinct-index pairs."""
    if n < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
        return i.astype(np.int64), j.astype(np.int64)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=max_pairs)
    j = (i + rng.integers(1, n, size=max_pairs)) % n  # never equal to i
    return i, j


def mean_pairwise_l1(flat: torch.Tensor, i: np.ndarray, j: np.ndarray, chunk: int = 4096) -> float:
    """Mean L1 between rows i and j of (N, D) ``flat``."""
    if len(i) == 0:
        return float("nan")
    total = 0.0
    for start in range(0, len(i), chunk):
        a = flat[torch.from_numpy(i[start:start + chunk])]
        b = flat[torch.from_numpy(j[start:start + chunk])]
        total += float((a - b).abs().mean(dim=1).double().sum())
    return total / len(i)


def input_sensitivity(outputs: torch.Tensor, targets: torch.Tensor, seed: int = 0,
                      max_pairs: int = MAX_PAIRS) -> dict[str, float | int | None]:
    """``outputs`` / ``targets``: (N, 3, S, S) in [-1, 1] (or already ``small_images`` rows, (N, D)).

    Returns ``sensitivity`` (None when there are fewer than 2 images or the targets are all equal),
    ``output_distance``, ``target_distance`` and the number of ``pairs``."""
    if len(outputs) != len(targets):
        raise ValueError(f"{len(outputs)} outputs but {len(targets)} targets")
    out = outputs if outputs.ndim == 2 else small_images(outputs)
    tgt = targets if targets.ndim == 2 else small_images(targets)
    i, j = pair_indices(len(out), seed, max_pairs)
    d_out, d_tgt = mean_pairwise_l1(out, i, j), mean_pairwise_l1(tgt, i, j)
    ratio = d_out / d_tgt if len(i) and d_tgt > 1e-12 else None
    return {"sensitivity": ratio, "output_distance": d_out if len(i) else None,
            "target_distance": d_tgt if len(i) else None, "pairs": int(len(i))}


def output_change(outputs: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean absolute difference on the [0, 1] scale between two runs on the same inputs, row by row.

    Both (N, 3, S, S) in [-1, 1] or ``small_images`` rows (N, D). The projection slider's effect:
    the same sketches at strength t against strength 0 (0 = the slider does nothing)."""
    a = outputs if outputs.ndim == 2 else small_images(outputs)
    b = reference if reference.ndim == 2 else small_images(reference)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"output_change needs two equal, non-empty batches, got {tuple(a.shape)} and {tuple(b.shape)}")
    return float((a - b).abs().double().mean())
