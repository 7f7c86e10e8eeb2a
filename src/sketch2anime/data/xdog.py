"""eXtended Difference of Gaussians (XDoG, Winnemöller et al. 2012) line drawings.

On the grayscale image ``I`` in [0, 1]::

    D = G_sigma * I - tau * G_{k sigma} * I
    T = 1                              where D >= eps
        1 + tanh(phi * (D - eps))      elsewhere

The dark side of every edge, where the fine blur is darker than (tau times) the coarse one,
becomes ink; with tau slightly below 1 flat regions stay white whatever their colour, so dark hair
is outlined instead of filled. A large ``phi`` makes the result nearly binary.

Several sigmas give line-width variety: ``sigmas`` is a tuple and ``__call__(rgb, rng)`` picks one
at random when an rng is given, the first otherwise. Sigmas are given at ``reference_size`` and
scaled by ``min(H, W) / reference_size``; below about 0.3 px the fine Gaussian is the identity
and XDoG finds nothing, so on small images all candidates are scaled up together until the
smallest one reaches ``min_sigma`` pixels (their ratios, hence the variety, are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detail import check_image, gaussian, to_gray


@dataclass(frozen=True)
class XDoGConfig:
    """XDoG parameters. ``sigmas`` (at ``reference_size`` px) overrides ``sigma`` when not empty.

    tau: weight of the coarse Gaussian (0.9-1); k: ratio of the two sigmas; phi: sharpness of the
    soft threshold (large = binary); eps: threshold on D (0 = ink only on the dark side of edges,
    > 0 thicker lines and filled dark areas, < 0 drops faint texture). min_sigma: floor in actual
    pixels for the smallest scaled candidate (see the module docstring).
    """

    sigma: float = 0.4
    sigmas: tuple[float, ...] = (0.3, 0.4, 0.5)
    k: float = 4.5
    tau: float = 0.95
    phi: float = 200.0
    eps: float = -0.02
    min_sigma: float = 0.3
    reference_size: int = 256

    def __post_init__(self) -> None:
        for s in (self.sigma, *self.sigmas):
            if not s > 0:
                raise ValueError(f"XDoG sigmas must be > 0, got {s}")
        if not self.k > 1:
            raise ValueError(f"k (ratio of the two sigmas) must be > 1, got {self.k}")
        if not 0 < self.tau <= 1.5:
            raise ValueError(f"tau must lie in (0, 1.5], got {self.tau}")
        if not self.phi > 0:
            raise ValueError(f"phi must be > 0, got {self.phi}")
        if self.min_sigma < 0:
            raise ValueError(f"min_sigma must be >= 0, got {self.min_sigma}")
        if self.reference_size < 1:
            raise ValueError(f"reference_size must be >= 1, got {self.reference_size}")

    @property
    def candidates(self) -> tuple[float, ...]:
        return self.sigmas if self.sigmas else (self.sigma,)


class XDoG:
    """Colour image -> XDoG line drawing. ``__call__(rgb, rng=None)``: HxWx3 uint8 -> HxW uint8."""

    name = "xdog"

    def __init__(self, config: XDoGConfig) -> None:
        self.config = config

    def pick_sigma(self, rng: np.random.Generator | None = None) -> float:
        """A sigma at the reference size: random from the candidates with ``rng``, else the first."""
        candidates = self.config.candidates
        if rng is None:
            return candidates[0]
        return candidates[int(rng.integers(len(candidates)))]

    def pixel_scale(self, height: int, width: int) -> float:
        """Factor from reference sigmas to pixel sigmas for an image of this size."""
        c = self.config
        return max(min(height, width) / c.reference_size, c.min_sigma / min(c.candidates))

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator | None = None, sigma: float | None = None) -> np.ndarray:
        """HxWx3 uint8 -> HxW uint8 sketch (255 paper, 0 ink). ``sigma`` (reference px) overrides the pick."""
        c = self.config
        gray = to_gray(check_image(rgb)).astype(np.float32) / 255.0
        base = self.pick_sigma(rng) if sigma is None else float(sigma)
        s = base * self.pixel_scale(*gray.shape)
        diff = gaussian(gray, s) - c.tau * gaussian(gray, c.k * s)
        out = np.where(diff >= c.eps, 1.0, 1.0 + np.tanh(c.phi * (diff - c.eps)))
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)

    def extract_batch(self, images: list[np.ndarray], rng: np.random.Generator | None = None) -> list[np.ndarray]:
        """Apply to each HxWx3 image of a list (one sigma drawn per image when ``rng`` is given)."""
        return [self(image, rng) for image in images]
