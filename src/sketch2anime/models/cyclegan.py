"""CycleGAN ResNet generator (Zhu et al. 2017, after Johnson et al. 2016).

Layout: c7s1-64, d128, d256, ``n_blocks`` x R256, u128, u64, c7s1-out, tanh. ``c7s1-k`` is a 7x7
stride-1 conv with reflection padding + instance norm + ReLU; ``dk`` a 3x3 stride-2 conv;
``Rk`` a residual block of two reflection-padded 3x3 convs; ``uk`` a 3x3 stride-1/2 transposed
conv. The paper uses 6 blocks at 128 px and 9 at 256 px; ``n_blocks = 0`` (default) picks that
from ``image_size`` (6 up to 128, 9 above).

CycleGAN trains two of these: G (sketch -> colour, 1 -> 3 channels) and F (colour -> sketch,
3 -> 1), plus two PatchGANs (``models/patchgan.py``). Hints: CycleGAN learns from *unpaired*
sketches and colour images, so there is no hint that belongs to a training sketch; the generator
accepts ``forward(x, hint=None)`` for the common evaluation interface and ignores the hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .patchgan import norm_layer


@dataclass(frozen=True)
class ResnetGeneratorConfig:
    """ResNet generator settings.

    image_size: the training resolution (any multiple of 4 runs; it only picks ``n_blocks`` when
    that is 0). in_channels/out_channels: 1 -> 3 for G (sketch -> colour), 3 -> 1 for F.
    base_channels: width of the first conv (64 in the paper). n_blocks: residual blocks
    (0 = paper's choice: 6 at <= 128 px, 9 at 256 px).
    """

    image_size: int = 64
    in_channels: int = 1
    out_channels: int = 3
    base_channels: int = 64
    n_blocks: int = 0
    norm: Literal["batch", "instance", "none"] = "instance"

    def __post_init__(self) -> None:
        if self.image_size < 4 or self.image_size % 4:
            raise ValueError(f"image_size must be a positive multiple of 4, got {self.image_size}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("in_channels and out_channels must be >= 1")
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {self.base_channels}")
        if not 0 <= self.n_blocks <= 64:  # bounded: a tampered config.json must not build for minutes
            raise ValueError(f"n_blocks must be between 0 and 64 (0 = 6 at <= 128 px, 9 above), got {self.n_blocks}")
        if self.norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {self.norm!r}")

    @property
    def blocks(self) -> int:
        if self.n_blocks:
            return self.n_blocks
        return 6 if self.image_size <= 128 else 9


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """``forward(x (N, in_channels, H, W), hint=None) -> (N, out_channels, H, W)`` in [-1, 1].

    H and W must be multiples of 4 (two stride-2 downsamplings). ``hint`` is accepted and ignored
    (CycleGAN is unpaired; see the module docstring).
    """

    def __init__(self, config: ResnetGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        base, norm = config.base_channels, config.norm
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(config.in_channels, base, 7), norm_layer(norm, base), nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [nn.Conv2d(base * mult, base * mult * 2, 3, 2, 1), norm_layer(norm, base * mult * 2), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(base * 4, norm) for _ in range(config.blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(base * mult, base * mult // 2, 3, 2, 1, output_padding=1),
                norm_layer(norm, base * mult // 2), nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(base, config.out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, hint: torch.Tensor | None = None) -> torch.Tensor:
        del hint  # unpaired training: no hint belongs to a sketch (documented above)
        channels = self.config.in_channels
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"this CycleGAN generator takes (N, {channels}, H, W) inputs, got {tuple(x.shape)}")
        if x.shape[-2] % 4 or x.shape[-1] % 4 or min(x.shape[-2:]) < 8:
            raise ValueError(f"CycleGAN input sides must be multiples of 4 and at least 8 px, got {tuple(x.shape[-2:])}")
        return self.net(x)
