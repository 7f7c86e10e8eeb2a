"""Layers shared by the sketch autoencoder, the hint generator and the discriminator.

Nothing here keeps running statistics: every normalisation is per sample (instance / group) or
absent, so a model behaves the same in train and eval mode and at batch size 1.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# The hint format's resize and upsample (hint_format.py); importable from here as before.
from ..hint_format import hint_upsampled, resize_hint  # noqa: F401

NormKind = Literal["instance", "group", "none"]
NORM_KINDS: tuple[str, ...] = ("instance", "group", "none")
IMAGE_SIZES: tuple[int, ...] = (64, 128, 256, 512)


def is_power_of_two(value: int) -> bool:
    return value > 0 and (value & (value - 1)) == 0


def group_count(channels: int) -> int:
    """Largest group count (<= 32) that leaves at least 4 channels per group."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


def make_norm(kind: str, channels: int, affine: bool = True) -> nn.Module:
    """Per-sample normalisation layer for ``(N, channels, H, W)`` maps."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine, track_running_stats=False)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels, affine=affine)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (choose one of {', '.join(NORM_KINDS)})")


def level_channels(resolution: int, image_size: int, base: int, maximum: int) -> int:
    """Channel width at ``resolution``: ``base`` at full size, doubling per halving, capped."""
    return int(min(maximum, base * (image_size // resolution)))


def pyramid_resolutions(image_size: int, lowest: int = 4) -> list[int]:
    """``[lowest, 2*lowest, ..., image_size]``."""
    steps = int(round(math.log2(image_size // lowest)))
    return [lowest * 2**i for i in range(steps + 1)]


class ConvNormAct(nn.Sequential):
    """conv (k x k, given stride) -> norm -> LeakyReLU(0.2)."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, kernel: int = 3, stride: int = 1, act: bool = True) -> None:
        padding = (kernel - 1) // 2 if stride == 1 else (kernel - stride + 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=norm == "none"),
            make_norm(norm, out_ch),
        ]
        if act:
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        super().__init__(*layers)


def resize_map(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to ``size x size``: area-average down (thin lines survive as grey),
    nearest up (no colour bleeding)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="nearest")


class SpatialModulation(nn.Module):
    """SPADE-style layer: parameter-free norm, then per-pixel ``gamma``/``beta``.

    ``forward(x (N, C, H, W), features (N, hidden, H, W) or None)``: ``features`` come from a
    condition map through a shared conv (see :class:`ConditionNet`, computed once per block), and a
    1x1 conv turns them into ``gamma``/``beta`` (cheap at full resolution). With ``hidden == 0`` it
    is a plain affine norm (nothing to condition on).
    """

    def __init__(self, channels: int, hidden: int, norm: str) -> None:
        super().__init__()
        self.hidden = hidden
        if hidden > 0:
            self.norm = make_norm(norm, channels, affine=False)
            self.to_gamma_beta = nn.Conv2d(hidden, 2 * channels, 1)
        else:
            self.norm = make_norm(norm, channels, affine=True)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x)
        if self.hidden == 0:
            return x
        if features is None:
            raise ValueError("this layer needs condition features")
        gamma, beta = self.to_gamma_beta(features).chunk(2, dim=1)
        return x * (1 + gamma) + beta


class ConditionNet(nn.Sequential):
    """conv3x3 + ReLU turning a condition map ``(N, Cc, H, W)`` into ``(N, hidden, H, W)`` features."""

    def __init__(self, cond_channels: int, hidden: int) -> None:
        super().__init__(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))


class ModulatedConv(nn.Module):
    """conv3x3 -> SpatialModulation -> LeakyReLU(0.2)."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.mod = SpatialModulation(out_ch, hidden, norm)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        return self.act(self.mod(self.conv(x), features))


def check_image_batch(x: torch.Tensor, channels: int, size: int, what: str) -> None:
    """Raise ValueError unless ``x`` is ``(N, channels, size, size)`` floating point."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(f"{what} must have shape (N, {channels}, {size}, {size}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor, got {x.dtype}")
