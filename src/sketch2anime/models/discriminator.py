"""PatchGAN discriminator on (image, sketch, hint) with spectral normalisation.

The input is the image concatenated with whatever conditions are given: the sketch ``(N,1,S,S)``
and the hint nearest-upsampled to image size ``(N,4,S,S)`` (default 3 + 1 + 4 = 8 channels).
Seeing the hint lets the discriminator punish outputs whose colours ignore it.
Layers: ``n_layers`` stride-2 conv4x4 (width doubling, capped), one stride-1 conv4x4, and a
stride-1 conv4x4 to one logit per patch. Each hidden activation is also returned, for a
feature-matching loss.

With ``scales`` > 1 (pix2pixHD's multi-scale discriminator) one such PatchGAN per scale judges the
inputs average-pooled by 1, 2, 4, ...: the coarse ones see the whole face in one patch, so colour
that changes without reason across the picture (magenta hair on top, green at the sides) can be
punished, which a 70 px patch at 128 px cannot see. Their logits come back as a list, one per scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..config import ConfigError
from ..hint_format import HINT_CHANNELS, hint_upsampled
from .blocks import IMAGE_SIZES, NORM_KINDS, check_image_batch, make_norm

IMAGE_CHANNELS, SKETCH_CHANNELS = 3, 1


def input_channels(sketch: bool, hint: bool) -> int:
    """Input channels of a discriminator that sees the image plus the sketch and/or the hint."""
    return IMAGE_CHANNELS + (SKETCH_CHANNELS if sketch else 0) + (HINT_CHANNELS if hint else 0)


# in_channels -> (sees the sketch, sees the hint): 3, 4, 7, 8
INPUT_LAYOUTS = {input_channels(s, h): (s, h) for s in (False, True) for h in (False, True)}


@dataclass(frozen=True)
class DiscriminatorConfig:
    image_size: int = 64
    in_channels: int = input_channels(sketch=True, hint=True)
    base_channels: int = 64
    max_channels: int = 512
    n_layers: int = 3
    spectral_norm: bool = True
    norm: Literal["instance", "group", "none"] = "none"
    scales: int = 1

    def __post_init__(self) -> None:
        if self.image_size not in IMAGE_SIZES:
            raise ConfigError(f"discriminator image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if self.in_channels not in INPUT_LAYOUTS:
            raise ConfigError(
                f"discriminator in_channels must be {input_channels(False, False)} (image), "
                f"{input_channels(True, False)} (+sketch), {input_channels(False, True)} (+hint) or "
                f"{input_channels(True, True)} (+sketch+hint), got {self.in_channels}"
            )
        if self.n_layers < 1 or self.image_size // 2**self.n_layers < 4:
            raise ConfigError(
                f"discriminator n_layers must be >= 1 and leave at least 4x4 before the last layers "
                f"(image_size {self.image_size} allows at most {(self.image_size // 4).bit_length() - 1}), got {self.n_layers}"
            )
        if self.base_channels < 1 or self.max_channels < self.base_channels:
            raise ConfigError("discriminator needs 1 <= base_channels <= max_channels")
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"discriminator norm must be one of {NORM_KINDS}, got {self.norm!r}")
        coarsest = self.image_size // 2 ** (self.scales - 1) if isinstance(self.scales, int) and self.scales >= 1 else 0
        if coarsest not in IMAGE_SIZES or coarsest // 2**self.n_layers < 4:
            raise ConfigError(
                f"discriminator scales must be >= 1 and leave the coarsest scale at one of {IMAGE_SIZES} px "
                f"with at least 4x4 after its {self.n_layers} layers (image_size {self.image_size}), got {self.scales!r}"
            )

    def at_scale(self, index: int) -> "DiscriminatorConfig":
        """The single-scale config of scale ``index`` (0: full size, each next one half the size)."""
        return replace(self, image_size=self.image_size // 2**index, scales=1)

    @property
    def sees_sketch(self) -> bool:
        return INPUT_LAYOUTS[self.in_channels][0]

    @property
    def sees_hint(self) -> bool:
        return INPUT_LAYOUTS[self.in_channels][1]


class PatchDiscriminator(nn.Module):
    """``forward(image (N,3,S,S), sketch (N,1,S,S)|None, hint (N,4,h,w)|None)``
    -> ``(logits (N, 1, h', w'), features: list of (N, C_i, H_i, W_i))``."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config

        def conv(in_ch: int, out_ch: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1)
            return _spectral_norm(layer) if config.spectral_norm else layer

        widths = [min(config.max_channels, config.base_channels * 2**i) for i in range(config.n_layers + 1)]
        layers: list[nn.Module] = [nn.Sequential(conv(config.in_channels, widths[0], 2), nn.LeakyReLU(0.2))]
        for i in range(1, config.n_layers):
            layers.append(
                nn.Sequential(conv(widths[i - 1], widths[i], 2), make_norm(config.norm, widths[i]), nn.LeakyReLU(0.2))
            )
        last = widths[config.n_layers]
        layers.append(
            nn.Sequential(conv(widths[config.n_layers - 1], last, 1), make_norm(config.norm, last), nn.LeakyReLU(0.2))
        )
        self.layers = nn.ModuleList(layers)
        self.to_logits = conv(last, 1, 1)

    def forward(
        self, image: torch.Tensor, sketch: torch.Tensor | None = None, hint: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = self.config.image_size
        check_image_batch(image, IMAGE_CHANNELS, size, "image")
        parts = [image]
        if sketch is not None:
            check_image_batch(sketch, SKETCH_CHANNELS, size, "sketch")
            parts.append(sketch)
        if hint is not None:
            if hint.dim() != 4 or hint.shape[1] != HINT_CHANNELS or size % hint.shape[-1] != 0 \
                    or hint.shape[-1] != hint.shape[-2]:
                raise ValueError(f"hint must be (N, {HINT_CHANNELS}, h, h) with h dividing {size}, "
                                 f"got {tuple(hint.shape)}")
            parts.append(hint_upsampled(hint, size))
        if any(p.shape[0] != image.shape[0] for p in parts):
            raise ValueError("image, sketch and hint must have the same batch size")
        x = torch.cat(parts, dim=1)
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"this discriminator expects {self.config.in_channels} input channels "
                f"(image {IMAGE_CHANNELS} + sketch {SKETCH_CHANNELS} + hint {HINT_CHANNELS} as configured), "
                f"got {x.shape[1]}; pass the sketch/hint it was built for"
            )
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return self.to_logits(x), features


class MultiScaleDiscriminator(nn.Module):
    """``scales`` PatchDiscriminators on the inputs at full, half, quarter ... size.

    ``forward(image (N,3,S,S), sketch (N,1,S,S)|None, hint (N,4,h,w)|None)`` ->
    ``(logits: list of (N, 1, h_i, w_i), one per scale, features: every scale's features in order)``.
    The losses average each scale's patches first, so every scale weighs the same.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(PatchDiscriminator(config.at_scale(i)) for i in range(config.scales))

    def forward(
        self, image: torch.Tensor, sketch: torch.Tensor | None = None, hint: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        check_image_batch(image, IMAGE_CHANNELS, self.config.image_size, "image")
        all_logits: list[torch.Tensor] = []
        all_features: list[torch.Tensor] = []
        for index, disc in enumerate(self.scales):
            if index:
                image = F.avg_pool2d(image, 2)
                sketch = F.avg_pool2d(sketch, 2) if sketch is not None else None
                size = disc.config.image_size
                if hint is not None and size % hint.shape[-1] != 0:  # a finer hint grid than this scale
                    hint = F.interpolate(hint, size=(size, size), mode="nearest")
            logits, features = disc(image, sketch, hint)
            all_logits.append(logits)
            all_features.extend(features)
        return all_logits, all_features


def make_discriminator(config: DiscriminatorConfig) -> PatchDiscriminator | MultiScaleDiscriminator:
    """The discriminator ``config`` describes: one PatchGAN, or one per scale when ``scales`` > 1."""
    return PatchDiscriminator(config) if config.scales == 1 else MultiScaleDiscriminator(config)
