"""Pix2Pix U-Net generator (Isola et al. 2017, "Image-to-Image Translation with Conditional GANs").

Encoder: ``depth = log2(image_size)`` stride-2 4x4 convs down to 1x1 (8 at 256 px as in the
paper, 6 at 64 px), widths 64-128-256-512-512-..., LeakyReLU(0.2), no norm on the first and the
innermost conv. Decoder: stride-2 4x4 transposed convs, ReLU, dropout 0.5 in the first three
blocks, each block's output concatenated with the mirrored encoder activation (the skip
connections that carry fine detail past the bottleneck); a last transposed conv to
``out_channels`` and tanh.

Hints: with ``use_hint`` (default True) the 4-channel hint map ``(N, 4, h, w)`` is upsampled
(nearest) to the sketch size and concatenated with the sketch, so the baseline sees the same
colour hints as the Sketch2Anime generator (a fair comparison). ``hint=None`` means "no hints"
(all zeros, mask 0). With ``use_hint=False`` a given hint is ignored, which is the plain
paper-style sketch -> colour model.

Normalisation: the paper trains with batch size 1, where its BatchNorm is instance norm; the
default here is instance norm, which also makes eval-mode output match training behaviour. Unlike
the paper, dropout is off in eval mode (the generator is deterministic at inference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..hint_format import HINT_CHANNELS
from .patchgan import norm_layer


@dataclass(frozen=True)
class UNetConfig:
    """U-Net settings.

    image_size: square input side, a power of two in 32..512; fixes the depth (log2(size)).
    in_channels: sketch channels (1). out_channels: image channels (3). base_channels: first
    conv width; widths double per level up to ``8 * base_channels``. dropout / dropout_blocks:
    dropout rate in the first ``dropout_blocks`` decoder blocks (paper: 0.5 in 3).
    """

    image_size: int = 64
    in_channels: int = 1
    out_channels: int = 3
    base_channels: int = 64
    use_hint: bool = True
    norm: Literal["batch", "instance", "none"] = "instance"
    dropout: float = 0.5
    dropout_blocks: int = 3

    def __post_init__(self) -> None:
        size = self.image_size
        if size < 32 or size > 512 or size & (size - 1):
            raise ValueError(f"image_size must be a power of two between 32 and 512, got {size}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("in_channels and out_channels must be >= 1")
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {self.base_channels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dropout_blocks < 0:
            raise ValueError(f"dropout_blocks must be >= 0, got {self.dropout_blocks}")
        if self.norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {self.norm!r}")

    @property
    def depth(self) -> int:
        """Number of stride-2 downsamplings (the bottleneck is 1x1)."""
        return int(math.log2(self.image_size))

    def width(self, level: int) -> int:
        return self.base_channels * min(2 ** level, 8)


def upsample_hint(hint: torch.Tensor | None, batch: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """``(N, 4, h, w)`` hint (or None = no hints) -> ``(N, 4, size, size)`` by nearest upsampling."""
    if hint is None:
        return like.new_zeros(batch, HINT_CHANNELS, size, size)
    if hint.ndim != 4 or hint.shape[1] != HINT_CHANNELS or hint.shape[0] != batch:
        raise ValueError(f"hint must have shape ({batch}, {HINT_CHANNELS}, h, w), got {tuple(hint.shape)}")
    hint = hint.to(dtype=like.dtype)
    if hint.shape[-2:] != (size, size):
        hint = F.interpolate(hint, size=(size, size), mode="nearest")
    return hint


class UNetGenerator(nn.Module):
    """``forward(sketch (N, 1, S, S), hint (N, 4, h, w) | None) -> (N, 3, S, S)`` in [-1, 1] (tanh)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        depth = config.depth
        in_ch = config.in_channels + (HINT_CHANNELS if config.use_hint else 0)
        bias = config.norm != "batch"
        self.down = nn.ModuleList()
        for level in range(depth):
            out_ch = config.width(level)
            # The first conv sees raw pixels and the innermost one a 1x1 map: no norm on either.
            plain = level == 0 or level == depth - 1
            self.down.append(nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=plain or bias),
                nn.Identity() if plain else norm_layer(config.norm, out_ch),
                nn.LeakyReLU(0.2, inplace=True),
            ))
            in_ch = out_ch
        self.up = nn.ModuleList()
        for index, level in enumerate(range(depth - 2, -1, -1)):
            out_ch = config.width(level)
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=bias),
                norm_layer(config.norm, out_ch),
                nn.Dropout(config.dropout) if index < config.dropout_blocks and config.dropout > 0 else nn.Identity(),
                nn.ReLU(inplace=True),
            ))
            in_ch = 2 * out_ch  # after concatenating the skip
        self.head = nn.Sequential(nn.ConvTranspose2d(in_ch, config.out_channels, 4, 2, 1), nn.Tanh())
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, sketch: torch.Tensor, hint: torch.Tensor | None = None) -> torch.Tensor:
        size = self.config.image_size
        if sketch.ndim != 4 or sketch.shape[1] != self.config.in_channels or sketch.shape[-2:] != (size, size):
            raise ValueError(
                f"this Pix2Pix generator takes sketches of shape (N, {self.config.in_channels}, {size}, {size}), "
                f"got {tuple(sketch.shape)}"
            )
        x = sketch
        if self.config.use_hint:
            x = torch.cat([sketch, upsample_hint(hint, sketch.shape[0], size, sketch)], dim=1)
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself is the decoder's input, not a skip
        for block in self.up:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return self.head(x)
