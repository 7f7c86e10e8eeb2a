"""Guided U-Net: the Sketch2Anime generator that sees the user's lines at full resolution.

The original design drew the picture from the 512-d latent alone, and every face came out alike:
one vector cannot carry where each line is. Here (as in DeepFaceDrawing, which the design
follows) the projected latent *guides* an image-to-image network instead of replacing its input:

    input  (N, 6, S, S) = user sketch (1) | guide sketch (1) | hint upsampled to S (4)
    encoder: conv3x3 at S, then ``depth`` times [conv4x4 stride 2, conv3x3] (widths double,
             capped at ``max_channels``), each level's output kept as a skip
    bottleneck: ``res_blocks`` residual blocks whose norm is scaled and shifted by the latent z
             (FiLM), so the projected latent also sets global traits (hair length, face shape)
    decoder: per level, nearest x2 + conv3x3, then the skip, the hint and the guide resized to
             that level are concatenated and fused by a conv3x3 (hints at every scale)
    output: conv3x3 on the full-resolution features + the full-resolution hint, tanh

The *guide* is the autoencoder's decoding of the (projected) latent, upsampled to ``S``. Where the
user's lines are rough or missing, the network learns in training to take the form from the guide,
so projection strength t moves the result from "my lines" (t = 0, the guide equals the user's own
reconstruction) to "the nearest professional sketch" (t = 1).

The full-resolution layers carry no normalisation: instance norm removes each image's mean colour
per channel, and the hint colours must reach the output exactly.

Shapes: sketch and guide ``(N, 1, S, S)`` in [-1, 1] (paper +1, ink -1); hint ``(N, 4, S/d, S/d)``
(rgb in [-1, 1], 0 off-mask, mask in channel 3); z ``(N, latent_dim)`` or None when
``latent_dim == 0``. Output ``(N, 3, S, S)`` in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import ConfigError
from ..hint_format import HINT_CHANNELS, hint_upsampled, resize_hint
from .blocks import check_image_batch, is_power_of_two, make_norm, resize_map


@dataclass(frozen=True)
class GuidedUNetConfig:
    """image_size: square side S (power of two, 32-512). hint_downscale: S / hint side.
    latent_dim: size of z (0 = no latent input). base_channels / max_channels: widths at S and the
    cap. depth: stride-2 levels (S / 2**depth >= 4). res_blocks: latent-modulated blocks at the
    bottleneck. norm: normalisation below full resolution."""

    image_size: int = 128
    hint_downscale: int = 4
    latent_dim: int = 512
    base_channels: int = 16
    max_channels: int = 256
    depth: int = 4
    res_blocks: int = 2
    norm: Literal["instance", "group"] = "instance"

    def __post_init__(self) -> None:
        size = self.image_size
        if not is_power_of_two(size) or not 32 <= size <= 512:
            raise ConfigError(f"guided_unet image_size must be a power of two in 32..512, got {size}")
        if not is_power_of_two(self.hint_downscale) or size // self.hint_downscale < 4:
            raise ConfigError(f"guided_unet hint_downscale must be a power of two leaving hints of at least "
                              f"4x4 pixels, got {self.hint_downscale} for image_size {size}")
        if self.latent_dim < 0:
            raise ConfigError(f"guided_unet latent_dim must be 0 (no latent) or more, got {self.latent_dim}")
        if self.base_channels < 1 or self.max_channels < self.base_channels:
            raise ConfigError("guided_unet needs 1 <= base_channels <= max_channels")
        if self.depth < 1 or size >> self.depth < 4:
            raise ConfigError(f"guided_unet depth must be >= 1 and leave at least 4x4 at the bottleneck "
                              f"(image_size {size}), got {self.depth}")
        if not 0 <= self.res_blocks <= 64:  # bounded: a tampered config.json must not build for minutes
            raise ConfigError(f"guided_unet res_blocks must be between 0 and 64, got {self.res_blocks}")
        if self.norm not in ("instance", "group"):
            raise ConfigError(f"guided_unet norm must be 'instance' or 'group', got {self.norm!r}")

    @property
    def hint_size(self) -> int:
        return self.image_size // self.hint_downscale

    def width(self, level: int) -> int:
        return min(self.base_channels * 2 ** level, self.max_channels)


def _conv(in_ch: int, out_ch: int, norm: str | None, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1)]
    if norm is not None:
        layers.append(make_norm(norm, out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class LatentResBlock(nn.Module):
    """x + conv(act(FiLM_z(norm(conv(x))))): a residual block whose norm is modulated by z."""

    def __init__(self, channels: int, latent_dim: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = make_norm(norm, channels, affine=latent_dim == 0)
        self.film = nn.Linear(latent_dim, 2 * channels) if latent_dim > 0 else None
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = make_norm(norm, channels)
        if self.film is not None:  # start as the identity modulation: gamma = 1, beta = 0
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        h = self.norm1(self.conv1(x))
        if self.film is not None and z is not None:
            gamma, beta = self.film(z).chunk(2, dim=1)
            h = h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        h = nn.functional.leaky_relu(h, 0.2)
        return x + self.norm2(self.conv2(h))


class GuidedUNet(nn.Module):
    """``forward(sketch, guide, hint, z=None) -> (N, 3, S, S)``; see the module docstring."""

    def __init__(self, config: GuidedUNetConfig) -> None:
        super().__init__()
        self.config = config
        c, norm = config, config.norm
        extra = HINT_CHANNELS + 1  # hint + guide, concatenated at every decoder level
        self.stem = _conv(2 + HINT_CHANNELS, c.width(0), None)
        self.down = nn.ModuleList(
            nn.Sequential(_conv(c.width(i - 1), c.width(i), norm, kernel=4, stride=2), _conv(c.width(i), c.width(i), norm))
            for i in range(1, c.depth + 1)
        )
        self.middle = nn.ModuleList(LatentResBlock(c.width(c.depth), c.latent_dim, norm) for _ in range(c.res_blocks))
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for level in range(c.depth - 1, -1, -1):
            level_norm = norm if level > 0 else None
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                         _conv(c.width(level + 1), c.width(level), level_norm)))
            self.fuse.append(_conv(2 * c.width(level) + extra, c.width(level), level_norm))
        self.to_rgb = nn.Conv2d(c.width(0) + HINT_CHANNELS, 3, 3, padding=1)

    def _check(self, sketch: torch.Tensor, guide: torch.Tensor, hint: torch.Tensor, z: torch.Tensor | None) -> None:
        c = self.config
        check_image_batch(sketch, 1, c.image_size, "sketch")
        check_image_batch(guide, 1, c.image_size, "guide")
        check_image_batch(hint, HINT_CHANNELS, c.hint_size, "hint")
        n = sketch.shape[0]
        if guide.shape[0] != n or hint.shape[0] != n:
            raise ValueError(f"sketch, guide and hint batches differ: {n}, {guide.shape[0]}, {hint.shape[0]}")
        if c.latent_dim > 0:
            if z is None or z.dim() != 2 or z.shape != (n, c.latent_dim):
                shape = None if z is None else tuple(z.shape)
                raise ValueError(f"this generator needs z of shape ({n}, {c.latent_dim}), got {shape}")

    def forward(self, sketch: torch.Tensor, guide: torch.Tensor, hint: torch.Tensor,
                z: torch.Tensor | None = None) -> torch.Tensor:
        self._check(sketch, guide, hint, z)
        size = self.config.image_size
        full_hint = hint_upsampled(hint, size)
        x = self.stem(torch.cat([sketch, guide, full_hint], dim=1))
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.middle:
            x = block(x, z)
        for up, fuse in zip(self.up, self.fuse):
            x = up(x)
            r = x.shape[-1]
            level_hint = full_hint if r == size else resize_hint(hint, r)
            x = fuse(torch.cat([x, skips.pop(), level_hint, resize_map(guide, r)], dim=1))
        return torch.tanh(self.to_rgb(torch.cat([x, full_hint], dim=1)))


@torch.no_grad()
def recentre_latent_modulation(generator: GuidedUNet, mean_latent: torch.Tensor) -> None:
    """Make every FiLM layer ignore z while keeping the modulation it gave at ``mean_latent (D,)``.

    For fine-tuning onto another sketch autoencoder: the old FiLM weights would read its latents as
    noise. Folding ``W @ mean + b`` into the bias starts from the old generator's average behaviour,
    and training learns the dependence on the new z from zero, as a fresh generator does.
    """
    dim = generator.config.latent_dim
    if dim == 0:
        return
    if mean_latent.shape != (dim,):
        raise ValueError(f"mean latent must have shape ({dim},), got {tuple(mean_latent.shape)}")
    for block in generator.middle:
        film = block.film
        film.bias += film.weight @ mean_latent.to(film.weight)
        film.weight.zero_()
