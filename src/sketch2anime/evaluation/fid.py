"""Distribution metrics: Fréchet distance (FID) and kernel distance (KID) over image features.

Two feature extractors, chosen by name with ``make_feature_extractor``:

* ``"inception"`` — the standard FID network (``models/inception.py``), 2048-d pool3 features of
  images resized to 299x299 bilinearly. Only with the user-supplied pytorch-fid weights
  (``pt_inception-2015-12-05-6726825d.pth``) are the numbers comparable with published FIDs
  (``comparable_with_published`` is True only then).
* ``"hed-vgg"`` — the VGG16 body of the HED edge detector, whose weights ``sketch2anime weights hed``
  installs offline. Images are resized to 256x256 (bilinear, antialiased) and each of relu1_2,
  relu2_2, relu3_3, relu4_3, relu5_3 is global-average pooled; each pooled vector is L2-normalised
  and scaled by sqrt(its width) before concatenation (1472-d). That fixed, data-independent
  scaling keeps the deep, large-valued layers from drowning the colour-sensitive shallow ones and
  puts x·y/d near [0, 1], the range KID's cubic kernel expects. These numbers rank models of
  this project against each other; they are *not* comparable with any published FID.

KID (Bińkowski et al., 2018) is the unbiased MMD² with the kernel k(x, y) = (x·y / d + 1)^3,
averaged over random subsets; it is unbiased, so unlike FID it does not drift with sample count
and is the better number for the small test sets used here.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.inception import InceptionConfig, InceptionV3FID, load_fid_inception_weights

if TYPE_CHECKING:
    from .evaluate import EvaluateConfig

EXTRACTOR_NAMES = ("inception", "hed-vgg")
HED_VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
HED_VGG_SIZE = 256


# ---------------------------------------------------------------------------------------------
# statistics and distances

def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (unbiased, N-1) of features (N, D), float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"expected features of shape (N, D), got {features.shape}")
    if features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {features.shape[0]}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    # Singular products are expected (N <= D); the caller checks the result instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return np.asarray(scipy.linalg.sqrtm(sigma1 @ sigma2))


def _trace_sqrt_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    d = sigma1.shape[0]
    covmean = _sqrtm_product(sigma1, sigma2)
    if not np.isfinite(covmean).all() or (
            np.iscomplexobj(covmean) and np.abs(covmean.imag).max() > 1e-3):
        offset = np.eye(d) * eps
        covmean = _sqrtm_product(sigma1 + offset, sigma2 + offset)
    if not np.isfinite(covmean).all():
        raise ValueError("the covariance product has no finite square root even after regularisation")
    if np.iscomplexobj(covmean):
        largest = np.abs(covmean.imag).max()
        if largest > 1e-3:
            raise ValueError(f"the covariance product's square root has an imaginary part of {largest:.3g}; "
                             f"use more samples than feature dimensions ({d})")
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # Tr (S1 S2)^1/2 = Tr (S1^1/2 S2 S1^1/2)^1/2, a symmetric PSD matrix: two eigh calls,
    # ~25x faster than sqrtm at D = 2048 and free of imaginary round-off.
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2.0)
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, method: str = "sqrtm") -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) between two Gaussians.

    mu: (D,), sigma: (D, D). ``method="sqrtm"`` (default, the reference computation of FID
    implementations): ``scipy.linalg.sqrtm`` of S1 S2; when that is not finite (near-singular
    covariances, e.g. fewer samples than dimensions) it is recomputed with ``eps * I`` added to
    both covariances; tiny imaginary parts from round-off are dropped, large ones raise
    ValueError. ``method="eigh"``: the same trace through symmetric eigendecompositions (exact for
    PSD covariances, much faster for D = 2048). Round-off can push the result a hair below zero;
    it is clamped at 0.
    """
    if method not in ("sqrtm", "eigh"):
        raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}")
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be vectors of equal length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(sigma1).all()
            and np.isfinite(sigma2).all()):
        raise ValueError("means or covariances contain NaN or infinite values")
    diff = mu1 - mu2
    if method == "sqrtm":
        trace_sqrt = _trace_sqrt_sqrtm(sigma1, sigma2, eps)
    else:
        trace_sqrt = _trace_sqrt_eigh(sigma1, sigma2)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return max(float(value), 0.0)


def frechet_distance_of_samples(features1: np.ndarray, features2: np.ndarray) -> float:
    """The Fréchet distance of two feature samples (N1, D) and (N2, D), exactly as ``frechet_distance``
    of their ``feature_statistics``, computed in sample space.

    With fewer samples than dimensions (150 validation pictures, 1472 HED-VGG features) both
    covariances have rank below N, so with centred samples A and B, Tr (S1 S2)^½ is the sum of the
    singular values of A Bᵀ / sqrt((N1-1)(N2-1)): an N1 x N2 SVD instead of D x D eigendecompositions,
    fast enough for bootstrap intervals.
    """
    a = np.asarray(features1, dtype=np.float64)
    b = np.asarray(features2, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two feature sets (N, D) of equal width, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors in each set, got {a.shape[0]} and {b.shape[0]}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features contain NaN or infinite values")
    diff = a.mean(axis=0) - b.mean(axis=0)
    a_centred, b_centred = a - a.mean(axis=0), b - b.mean(axis=0)
    scale = math.sqrt((a.shape[0] - 1) * (b.shape[0] - 1))
    trace_sqrt = np.linalg.svd(a_centred @ b_centred.T / scale, compute_uv=False).sum()
    value = (diff @ diff + (a_centred ** 2).sum() / (a.shape[0] - 1) + (b_centred ** 2).sum() / (b.shape[0] - 1)
             - 2.0 * trace_sqrt)
    return max(float(value), 0.0)


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


def _kid_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel k(x, y) = (x·y / D + 1)^3 for every row pair: (N1, D), (N2, D) -> (N1, N2)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              rng: np.random.Generator | int | None = None) -> tuple[float, float]:
    """KID: mean and standard deviation over ``subsets`` of the unbiased MMD².

    f1: (N1, D), f2: (N2, D). Each subset draws ``m = min(subset_size, N1, N2)`` rows from each
    set without replacement; kernel k(x, y) = (x·y / D + 1)^3. ``rng`` is a Generator or a seed
    (None means seed 0, so results are reproducible). The estimate is unbiased, so it can be
    slightly negative for matching distributions.
    """
    f1 = np.asarray(f1, dtype=np.float64)
    f2 = np.asarray(f2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"expected two feature sets (N1, D) and (N2, D), got {f1.shape} and {f2.shape}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, f1.shape[0], f2.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {f1.shape[0]} and {f2.shape[0]}")
    generator = _as_rng(rng)
    values = np.empty(subsets)
    for i in range(subsets):
        x = f1[generator.choice(f1.shape[0], m, replace=False)]
        y = f2[generator.choice(f2.shape[0], m, replace=False)]
        kxx, kyy, kxy = _kid_kernel(x, x), _kid_kernel(y, y), _kid_kernel(x, y)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values[i] = within - 2.0 * kxy.sum() / (m * m)
    return float(values.mean()), float(values.std())


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` share of bootstrap ``samples``: (low, high) percentiles."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def paired_kid_difference(real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, draws: int = 1000,
                          level: float = 0.9, rng: np.random.Generator | int | None = None) -> dict[str, float]:
    """KID(fake_b) − KID(fake_a) against one real set, with a paired bootstrap interval.

    real: (M, D); fake_a, fake_b: (N, D) where row i of both comes from the same input (one drawing
    through two models), so resampling the inputs keeps the pairs. The real-real term of the two
    MMD² cancels; the cross terms average over every real row. In a bootstrap draw, pairs of
    positions that hold the same input are left out of the within-set mean, as the unbiased KID
    leaves out i = j. Returns ``{"difference", "low", "high", "draws", "level"}``: an interval that
    excludes 0 says the two models' realism differs beyond what the choice of inputs explains.
    """
    real = np.asarray(real, dtype=np.float64)
    fake_a = np.asarray(fake_a, dtype=np.float64)
    fake_b = np.asarray(fake_b, dtype=np.float64)
    if real.ndim != 2 or fake_a.ndim != 2 or fake_a.shape != fake_b.shape or real.shape[1] != fake_a.shape[1]:
        raise ValueError(f"expected real (M, D) and two paired fake sets (N, D), got {real.shape}, "
                         f"{fake_a.shape} and {fake_b.shape}")
    if fake_a.shape[0] < 3 or draws < 1 or not 0 < level < 1:
        raise ValueError(f"need at least 3 paired rows, draws >= 1 and 0 < level < 1, got {fake_a.shape[0]}, "
                         f"{draws} and {level}")
    n = fake_a.shape[0]
    # Per-model terms that differ between a and b: within-set kernel and mean kernel to the reals.
    within = _kid_kernel(fake_b, fake_b) - _kid_kernel(fake_a, fake_a)
    cross = _kid_kernel(fake_b, real).mean(1) - _kid_kernel(fake_a, real).mean(1)

    def difference(rows: np.ndarray) -> float:
        distinct = rows[:, None] != rows[None, :]
        return float(within[np.ix_(rows, rows)][distinct].mean() - 2.0 * cross[rows].mean())

    generator = _as_rng(rng)
    samples = np.array([difference(generator.integers(0, n, n)) for _ in range(draws)])
    low, high = _percentile_interval(samples, level)
    return {"difference": difference(np.arange(n)), "low": low, "high": high, "draws": draws, "level": level}


def paired_fid_difference(real: np.ndarray, fake_a: np.ndarray, fake_b: np.ndarray, draws: int = 500,
                          level: float = 0.9, rng: np.random.Generator | int | None = None) -> dict[str, float]:
    """FID(fake_b) − FID(fake_a) against ``real``, with a paired bootstrap interval over the inputs.

    real, fake_a, fake_b: (N, D), row i of each from the same input (the true image and two models'
    pictures of its sketch). A draw resamples the rows with replacement, the same rows in all three,
    so the interval holds what the choice of the N inputs explains. Duplicated rows inflate each
    resampled FID; in the difference that mostly cancels. Returns ``{"difference", "low", "high",
    "share_below", "draws", "level"}``; ``share_below``: the share of draws in which b scores below a.
    """
    real, fake_a, fake_b = (np.asarray(x, dtype=np.float64) for x in (real, fake_a, fake_b))
    if real.ndim != 2 or real.shape != fake_a.shape or real.shape != fake_b.shape:
        raise ValueError(f"expected three paired feature sets (N, D) of one shape, got {real.shape}, "
                         f"{fake_a.shape} and {fake_b.shape}")
    if real.shape[0] < 3 or draws < 2 or not 0 < level < 1:
        raise ValueError(f"need at least 3 paired rows, draws >= 2 and 0 < level < 1, got {real.shape[0]}, "
                         f"{draws} and {level}")
    n = real.shape[0]
    generator = _as_rng(rng)
    samples = np.empty(draws)
    for d in range(draws):
        rows = generator.integers(0, n, n)
        samples[d] = frechet_distance_of_samples(real[rows], fake_b[rows]) - frechet_distance_of_samples(real[rows], fake_a[rows])
    low, high = _percentile_interval(samples, level)
    difference = frechet_distance_of_samples(real, fake_b) - frechet_distance_of_samples(real, fake_a)
    return {"difference": float(difference), "low": low, "high": high,
            "share_below": float((samples < 0).mean()), "draws": draws, "level": level}


def fid_kid(real_features: np.ndarray, fake_features: np.ndarray,
            rng: np.random.Generator | int | None = None, kid_subsets: int = 100,
            kid_subset_size: int = 1000, fid_method: str = "sqrtm") -> dict[str, Any]:
    """FID and KID between two feature sets (N, D); a JSON-friendly dict with the sample counts.

    ``fid_method`` is passed to ``frechet_distance`` ("sqrtm" or the faster, equivalent "eigh").
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    mu_r, sigma_r = feature_statistics(real)
    mu_f, sigma_f = feature_statistics(fake)
    fid = frechet_distance(mu_r, sigma_r, mu_f, sigma_f, method=fid_method)
    kid_mean, kid_std = kernel_inception_distance(real, fake, kid_subsets, kid_subset_size, rng)
    return {
        "fid": fid,
        "fid_method": fid_method,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subsets": kid_subsets,
        "kid_subset_size": min(kid_subset_size, real.shape[0], fake.shape[0]),
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
        "feature_dim": int(real.shape[1]),
        # With N <= D the covariances are rank-deficient and FID is strongly biased: flag it.
        "fid_full_rank": bool(min(real.shape[0], fake.shape[0]) > real.shape[1]),
    }


# ---------------------------------------------------------------------------------------------
# feature extractors

class FeatureExtractor(ABC):
    """Images (N, 3, H, W) in [-1, 1] -> features (N, D) float64 numpy, in batches, no gradients."""

    name: str
    comparable_with_published: bool
    feature_dim: int

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", batch_size: int = 32,
                 weights: str = "random") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.batch_size = batch_size
        self.weights = weights

    @abstractmethod
    def _features(self, batch: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] on the device -> (B, D)."""

    def __call__(self, images: Tensor) -> np.ndarray:
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"expected RGB images as a tensor (N, 3, H, W) in [-1, 1], got {shape}")
        if images.shape[0] == 0:
            return np.zeros((0, self.feature_dim))
        low, high = float(images.min()), float(images.max())
        if low < -1.01 or high > 1.01:
            raise ValueError(f"images must be in [-1, 1], got values from {low:.3g} to {high:.3g}")
        chunks = []
        with torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                batch = images[start:start + self.batch_size].to(self.device, torch.float32)
                chunks.append(self._features(batch).double().cpu().numpy())
        return np.concatenate(chunks, axis=0)

    def extract(self, batches: Iterable[Tensor]) -> np.ndarray:
        """Features of a stream of image batches, concatenated: (sum of N, D)."""
        parts = [self(batch) for batch in batches]
        if not parts:
            raise ValueError("no images to extract features from")
        return np.concatenate(parts, axis=0)

    def describe(self) -> dict[str, Any]:
        """What a report should record next to the numbers."""
        return {"extractor": self.name, "feature_dim": self.feature_dim, "weights": self.weights,
                "comparable_with_published": self.comparable_with_published}


class InceptionFeatureExtractor(FeatureExtractor):
    """pool3 features of the FID Inception-v3 (inputs resized to 299 bilinearly inside the model)."""

    name = "inception"

    def __init__(self, model: InceptionV3FID, pretrained: bool, device: str | torch.device = "cpu",
                 batch_size: int = 32, weights: str = "random") -> None:
        super().__init__(model, device, batch_size, weights)
        self.feature_dim = model.out_features
        self.comparable_with_published = bool(pretrained and model.config.width == 1.0
                                              and model.config.resize_input and model.config.input_size == 299)

    def _features(self, batch: Tensor) -> Tensor:
        return self.model(batch)


class HedVggFeatureExtractor(FeatureExtractor):
    """Pooled, per-layer normalised HED VGG16 activations (see module docstring)."""

    name = "hed-vgg"
    comparable_with_published = False

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", batch_size: int = 32,
                 weights: str = "random", layers: tuple[str, ...] = HED_VGG_LAYERS,
                 size: int = HED_VGG_SIZE) -> None:
        super().__init__(model, device, batch_size, weights)
        self.layers = tuple(layers)
        self.size = size
        with torch.no_grad():
            probe = self.model.features(torch.zeros(1, 3, 32, 32, device=self.device), layers=self.layers)
        self.feature_dim = sum(int(t.shape[1]) for t in probe)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "input_size": self.size, "layers": list(self.layers)}

    def _features(self, batch: Tensor) -> Tensor:
        if tuple(batch.shape[-2:]) != (self.size, self.size):
            batch = F.interpolate(batch, size=(self.size, self.size), mode="bilinear",
                                  align_corners=False, antialias=True)
        pooled = []
        for activation in self.model.features(batch, layers=self.layers):
            vector = activation.mean(dim=(2, 3))
            vector = F.normalize(vector, dim=1, eps=1e-12) * math.sqrt(vector.shape[1])
            pooled.append(vector)
        return torch.cat(pooled, dim=1)


def make_feature_extractor(name: str, weights_path: str | Path | None = None, *,
                           device: str | torch.device = "cpu", batch_size: int = 32,
                           allow_random_weights: bool = False, seed: int = 0,
                           hed_input_size: int = HED_VGG_SIZE) -> FeatureExtractor:
    """Build the extractor ``name`` ("inception" or "hed-vgg").

    inception: ``weights_path`` is the pytorch-fid .pth (or a safetensors copy); required unless
    ``allow_random_weights`` (randomly initialised from ``seed``: smoke tests only, meaningless
    numbers). hed-vgg: ``weights_path`` defaults to the cache filled by ``sketch2anime weights
    hed``; raises ``MissingWeightsError`` (a ValueError) when absent, unless ``allow_random_weights``.
    ``hed_input_size``: the side images are resized to for hed-vgg (256 by default; 128 is ~2.5x
    faster on a CPU but gives different numbers — compare only runs with the same size).
    """
    if name not in EXTRACTOR_NAMES:
        raise ValueError(f"unknown feature extractor {name!r}; choose one of {', '.join(EXTRACTOR_NAMES)}")
    if name == "inception":
        if weights_path is None and not allow_random_weights:
            raise ValueError("the inception extractor needs the FID Inception weights: pass the path of "
                             "pt_inception-2015-12-05-6726825d.pth (from pytorch-fid), or use the "
                             "'hed-vgg' extractor, whose weights `sketch2anime weights hed` installs")
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(seed)
            model = InceptionV3FID(InceptionConfig())
        if weights_path is not None:
            model.load_state_dict(load_fid_inception_weights(weights_path))
        return InceptionFeatureExtractor(model, pretrained=weights_path is not None, device=device,
                                         batch_size=batch_size,
                                         weights=str(weights_path) if weights_path is not None else "random")
    # hed-vgg: imported lazily so the inception path never needs the HED module.
    from ..models.hed import HED, HEDConfig
    from ..weights import MissingWeightsError, load_pretrained_hed

    try:
        hed = load_pretrained_hed(weights_path)
        weights = str(weights_path) if weights_path is not None else "hed-bsds500 (cache)"
    except MissingWeightsError:
        if not allow_random_weights:
            raise
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            hed = HED(HEDConfig())
        weights = "random"
    return HedVggFeatureExtractor(hed, device=device, batch_size=batch_size, weights=weights, size=hed_input_size)


# ---------------------------------------------------------------------------------------------
# the extractor an evaluation run uses

def feature_extractor_for(config: EvaluateConfig, device: torch.device) -> tuple[Any | None, dict[str, Any]]:
    """(extractor or None, description); never raises for missing weights: FID is then skipped."""
    from ..weights import MissingWeightsError

    choice = config.fid
    if choice == "none":
        return None, {"skipped": "FID/KID disabled (--fid none)"}
    if choice == "inception" or (choice == "auto" and config.inception_weights):
        if not config.inception_weights:
            raise ValueError("--fid inception needs --inception-weights PATH (pt_inception-2015-12-05-6726825d.pth)")
        return make_feature_extractor("inception", config.inception_weights, device=device), {}
    try:
        return make_feature_extractor("hed-vgg", device=device, hed_input_size=config.fid_size), {}
    except MissingWeightsError as exc:
        if choice == "hed-vgg":
            raise
        return None, {"skipped": f"no --inception-weights given and the HED weights are missing ({exc})"}


def extractor_label(extractor: Any) -> str:
    if extractor.name == "inception" and extractor.comparable_with_published:
        return "inception (standard)"
    if extractor.name == "inception":
        return "inception (NOT comparable with published FID: non-standard weights)"
    size = getattr(extractor, "size", None)  # hed-vgg: numbers depend on the input side
    return f"{extractor.name}{f' at {size} px' if size else ''} (NOT comparable with published FID)"
