"""Edge-preserving clean-up of a generator's pictures: a bilateral filter (Tomasi & Manduchi, 1998).

The guided generator paints faint speckle and colour noise into regions an anime cel leaves flat
(skin, backgrounds, hair masses); its pictures carry more fine texture than the true images, and
the evaluation's deepest feature layer sees it (README, "Pix2Pix again": the band swaps). A
bilateral filter averages each pixel with its neighbours *of similar colour* only: differences
smaller than ``sigma_colour`` (speckle) are smoothed, the jump across an inked line or a colour
edge (tens to hundreds of levels) is kept. It has no weights; a pipeline folder switches it on with
a ``"denoise"`` entry in ``pipeline.json`` (``pipeline_format.py``).

Tensors: images ``(N, 3, H, W)`` float RGB in [-1, 1], returned in the same shape and range.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

MAX_DIAMETER = 15  # wider windows cost quadratically and stop being a clean-up


@dataclass(frozen=True)
class DenoiseConfig:
    """diameter: the window's side in pixels (odd, 3-15; a disc inside it is used). sigma_colour:
    the colour difference (Euclidean RGB distance on the 0-255 scale) whose weight falls to
    exp(-1/2). sigma_space: the same for the distance in pixels."""

    diameter: int = 7
    sigma_colour: float = 5.0
    sigma_space: float = 3.0

    def __post_init__(self) -> None:
        d = self.diameter
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 3 <= d <= MAX_DIAMETER or d % 2 == 0:
            raise ValueError(f"denoise diameter must be an odd whole number of pixels from 3 to {MAX_DIAMETER}, "
                             f"got {d!r}")
        for name in ("sigma_colour", "sigma_space"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"denoise {name} must be a number above 0, got {value!r}")
        object.__setattr__(self, "diameter", int(d))
        object.__setattr__(self, "sigma_colour", float(self.sigma_colour))
        object.__setattr__(self, "sigma_space", float(self.sigma_space))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_text(cls, text: str) -> "DenoiseConfig":
        """``"7,5,3"`` (diameter, colour sigma, space sigma) -> ``DenoiseConfig(7, 5.0, 3.0)``: the
        command-line form of the scripts; ValueError naming the form otherwise."""
        parts = str(text).split(",")
        try:
            if len(parts) != 3:
                raise ValueError(f"got {len(parts)} values")
            diameter, sigma_colour, sigma_space = int(parts[0]), float(parts[1]), float(parts[2])
        except ValueError as exc:
            raise ValueError(f"a denoise setting is DIAMETER,SIGMA_COLOUR,SIGMA_SPACE (e.g. 7,5,3), got {text!r} "
                             f"({exc})") from None
        return cls(diameter, sigma_colour, sigma_space)

    @classmethod
    def from_dict(cls, data: Any) -> "DenoiseConfig":
        """From ``pipeline.json``'s ``"denoise"`` object; unknown or missing keys are errors."""
        if not isinstance(data, dict):
            raise ValueError(f"denoise must be an object with diameter, sigma_colour and sigma_space, got {data!r}")
        expected = {"diameter", "sigma_colour", "sigma_space"}
        if set(data) != expected:
            raise ValueError(f"denoise must have exactly the keys {sorted(expected)}, got {sorted(data)}")
        return cls(**data)


def bilateral_denoise(images: torch.Tensor, config: DenoiseConfig) -> torch.Tensor:
    """``(N, 3, H, W)`` in [-1, 1] -> the same, each pixel the average of the pixels in a disc of
    ``config.diameter`` around it, weighted by closeness in place and in colour (reflected at the
    border)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"denoise needs images of shape (N, 3, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    radius = config.diameter // 2
    height, width = images.shape[-2:]
    if min(height, width) <= radius:
        raise ValueError(f"denoise with diameter {config.diameter} needs pictures larger than {radius} px, "
                         f"got {width}x{height}")
    levels = (images.float() + 1.0) * 127.5  # the sigmas are on the 0-255 scale
    padded = F.pad(levels, (radius, radius, radius, radius), mode="reflect")
    colour_scale = -0.5 / config.sigma_colour ** 2
    total = torch.zeros_like(levels)
    weights = torch.zeros_like(levels[:, :1])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            neighbour = padded[:, :, radius + dy:radius + dy + height, radius + dx:radius + dx + width]
            closeness = math.exp(-0.5 * (dx * dx + dy * dy) / config.sigma_space ** 2)
            weight = closeness * torch.exp(colour_scale * (neighbour - levels).square().sum(1, keepdim=True))
            total += weight * neighbour
            weights += weight
    return (total / weights / 127.5 - 1.0).clamp(-1, 1).to(images.dtype)
