"""Seeded synthetic inputs: clustered latent banks, and sketch / hint pictures like the panel's.

Latents: a mixture of isotropic Gaussians in ``dim`` dimensions. A uniform cloud would make every
point about equally far from every other, which is the worst case for a graph index and nothing
like an autoencoder's latents; clusters give the search real structure. Queries are fresh draws
from the same mixture with extra noise, like the latent of a rough sketch that lies off the bank.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


class ClusteredGaussian:
    """``clusters`` centres ~ N(0, I); each cluster has its own spread in ``spread``."""

    def __init__(self, dim: int, clusters: int = 256, seed: int = 0, spread: tuple[float, float] = (0.3, 0.8)) -> None:
        if dim < 1 or clusters < 1:
            raise ValueError("dim and clusters must be positive")
        generator = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.centres = torch.randn(clusters, dim, generator=generator)
        low, high = spread
        self.sigmas = low + (high - low) * torch.rand(clusters, generator=generator)

    def sample(self, count: int, seed: int, noise_scale: float = 1.0, chunk: int = 100_000) -> torch.Tensor:
        """``(count, dim)`` float32, written chunk by chunk so a 1M x 512 bank needs ~2 GB, not 2x that."""
        generator = torch.Generator().manual_seed(seed)
        out = torch.empty(count, self.dim, dtype=torch.float32)
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            which = torch.randint(0, self.centres.shape[0], (stop - start,), generator=generator)
            noise = torch.randn(stop - start, self.dim, generator=generator)
            out[start:stop] = self.centres[which] + noise * (noise_scale * self.sigmas[which])[:, None]
        return out


def synthetic_sketch(size: int, seed: int = 0) -> Image.Image:
    """A white ``L`` picture with a face-like outline and a few random strokes (black ink)."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    s = size / 64
    width = max(1, round(1.5 * s))
    draw.ellipse([14 * s, 12 * s, 50 * s, 56 * s], outline=0, width=width)
    for _ in range(8):
        x0, y0, x1, y1 = (float(v) * s for v in rng.uniform(8, 56, 4))
        draw.line([x0, y0, x1, y1], fill=0, width=width)
    return image


def synthetic_hint(size: int, seed: int = 0, strokes: int = 4) -> Image.Image:
    """A transparent ``RGBA`` layer with a few opaque colour dabs, as the panel's hint canvas sends."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(strokes):
        x, y = (float(v) for v in rng.uniform(0.1 * size, 0.9 * size, 2))
        r = size * 0.04
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return image
