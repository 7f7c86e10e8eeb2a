"""The 70x70 PatchGAN discriminator of Pix2Pix (Isola et al. 2017), also used by CycleGAN.

Layout (``n_layers = 3``): C64 - C128 - C256 - C512 - conv to 1, all 4x4 convolutions with
padding 1; the first ``n_layers`` convs have stride 2, the last two stride 1; no normalisation on
the first conv; LeakyReLU(0.2). Each output logit judges one overlapping patch of the input; with
three stride-2 layers the patch (receptive field) is 70x70 pixels, hence the name. The output is a
map of raw logits (no sigmoid): the training stage picks the loss (BCE for Pix2Pix, least squares
for CycleGAN).

``receptive_field``/``patch_bounds``/``output_size`` give the geometry analytically so tests and
reports do not have to guess it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

KERNEL = 4
PADDING = 1


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Normalisation shared by the baselines: ``batch``, ``instance`` (affine) or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {kind!r}")


@dataclass(frozen=True)
class PatchGANConfig:
    """PatchGAN settings.

    in_channels: channels of the judged input: 4 for Pix2Pix (sketch + colour image concatenated,
    a conditional discriminator), 3 (colour) or 1 (sketch) for CycleGAN's unconditional ones.
    base_channels: width of the first conv (doubled per layer, capped at 8x). n_layers: number of
    stride-2 convs; 3 gives the paper's 70x70 patches (1 -> 16, 2 -> 34, 4 -> 142).
    """

    in_channels: int = 4
    base_channels: int = 64
    n_layers: int = 3
    norm: Literal["batch", "instance", "none"] = "instance"

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {self.base_channels}")
        if not 1 <= self.n_layers <= 6:
            raise ValueError(f"n_layers must be between 1 and 6, got {self.n_layers}")
        if self.norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {self.norm!r}")


def _strides(n_layers: int) -> list[int]:
    return [2] * n_layers + [1, 1]


def receptive_field(n_layers: int = 3) -> int:
    """Side in pixels of the input patch that one output logit sees (70 for n_layers = 3)."""
    field = 1
    for stride in reversed(_strides(n_layers)):
        field = (field - 1) * stride + KERNEL
    return field


def output_size(image_size: int, n_layers: int = 3) -> int:
    """Side of the logit map for a square ``image_size`` input (e.g. 256 -> 30, 64 -> 6)."""
    size = image_size
    for stride in _strides(n_layers):
        size = (size + 2 * PADDING - KERNEL) // stride + 1
    if size < 1:
        raise ValueError(f"a {image_size}px input is too small for a PatchGAN with {n_layers} layers")
    return size


def patch_bounds(index: int, n_layers: int = 3) -> tuple[int, int]:
    """Input pixel range ``[start, stop)`` (along one axis, may exceed the image) seen by output ``index``."""
    jump, offset = 1, 0
    for stride in _strides(n_layers):
        offset += PADDING * jump
        jump *= stride
    start = index * jump - offset
    return start, start + receptive_field(n_layers)


class PatchGAN(nn.Module):
    """``forward(x (N, in_channels, S, S)) -> (N, 1, output_size(S), output_size(S))`` logits."""

    def __init__(self, config: PatchGANConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_ch, width = config.in_channels, config.base_channels
        for index, stride in enumerate(_strides(config.n_layers)[:-1]):
            out_ch = config.base_channels * min(2 ** index, 8)
            layers.append(nn.Conv2d(in_ch, out_ch, KERNEL, stride, PADDING, bias=index == 0 or config.norm != "batch"))
            if index > 0:
                layers.append(norm_layer(config.norm, out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = width = out_ch
        layers.append(nn.Conv2d(width, 1, KERNEL, 1, PADDING))
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)  # the papers' N(0, 0.02) init
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"PatchGAN expects (N, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        output_size(min(x.shape[-2:]), self.config.n_layers)  # raises for too-small inputs
        return self.net(x)
